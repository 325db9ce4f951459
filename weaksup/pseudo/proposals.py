"""Per-image proposal files and per-image file jobs (Wei et al. Sec. 3.1; HCP hypotheses).

Proposals (candidate segments, :mod:`.candidates`) are computed once per image and stored as a
compressed ``.npz`` in MCG's encoding (superpixel map + membership bits), with their tight boxes
and the few *hypotheses* HCP's hypothesis fine-tuning uses (:func:`select_hypotheses`).

:class:`PerImageFileJob` runs a per-image function whose results are files: images whose output
exists are skipped (resume), the rest run in worker processes with a progress bar, and every file
is written atomically by the function (:func:`weaksup.pseudo.job.write_atomic`). It differs from
:class:`~weaksup.pseudo.job.PseudoMaskJob`, which gathers json results per shard of images:
here every image's result is a file of its own (maps, masks), read back per image by training.
"""

import io
import multiprocessing as mp
import os
import re
from typing import Any, Callable, Dict, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .candidates import CandidateSet, candidate_segments, load_mcg_mat
from .geometry import box_iou
from .job import write_atomic

__all__ = [
    "PerImageFileJob",
    "file_key",
    "load_proposals",
    "make_proposals",
    "save_proposals",
    "select_hypotheses",
]


def file_key(image_id: Any) -> str:
    """A file-name-safe key of an image id (``"pennfudan:12"`` -> ``"pennfudan_12"``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(image_id))


def select_hypotheses(
    boxes: np.ndarray,
    num: int,
    max_iou: float = 0.5,
    min_area: float = 900.0,
    max_aspect_ratio: float = 4.0,
) -> np.ndarray:
    """HCP's few training hypotheses (Wei et al. Sec. 3.1: 10 per image, after HCP [30]).

    HCP drops proposals smaller than 900 pixels or with aspect ratio above 4, clusters the rest
    by box IoU (normalised cut) and takes the best-ranked proposal of each cluster. Here the
    clusters are formed greedily in rank order: a proposal starts a new cluster unless its box
    IoU with an already chosen one exceeds ``max_iou`` (NMS), which gives ``num`` well-ranked,
    mutually different boxes without the spectral clustering. Falls back to the best-ranked
    unfiltered boxes when too few survive.

    Args:
        boxes: ``(K, 4)`` ``XYXY_ABS`` boxes in rank order (best first).

    Returns:
        indices into ``boxes``, at most ``num``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    ok = (w * h >= min_area) & (
        np.maximum(w, h) <= max_aspect_ratio * np.maximum(np.minimum(w, h), 1e-9)
    )
    chosen = []
    for pool in (np.flatnonzero(ok), np.flatnonzero(~ok)):
        for i in pool:
            if len(chosen) == num:
                return np.asarray(chosen, dtype=np.int64)
            if all(box_iou(boxes[i], boxes[j]) <= max_iou for j in chosen):
                chosen.append(int(i))
    return np.asarray(chosen, dtype=np.int64)


def save_proposals(path: str, candidates: CandidateSet, hypotheses: np.ndarray) -> None:
    """Write ``candidates`` (+ their boxes and the hypothesis indices) as compressed npz."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        superpixels=candidates.superpixels.astype(np.int32),
        membership=np.packbits(candidates.membership(), axis=1),
        num_superpixels=np.int64(int(candidates.superpixels.max()) + 1),
        scores=np.asarray(candidates.scores, dtype=np.float32),
        image_size=np.asarray(candidates.image_size, dtype=np.int64),
        boxes=candidates.boxes().astype(np.float32),
        hypotheses=np.asarray(hypotheses, dtype=np.int64),
    )
    write_atomic(buf.getvalue(), path)


def load_proposals(path: str) -> Dict[str, Any]:
    """Read a proposal file: ``candidates`` (:class:`CandidateSet`), ``boxes`` ``(K, 4)`` and
    ``hypotheses``. Errors name the file."""
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable proposal file ({e})") from e
    member = np.unpackbits(data["membership"], axis=1, count=int(data["num_superpixels"]))
    labels = [np.flatnonzero(row) for row in member.astype(bool)]
    cs = CandidateSet(data["superpixels"], labels, data["scores"], tuple(data["image_size"]))
    return {"candidates": cs, "boxes": data["boxes"], "hypotheses": data["hypotheses"]}


def make_proposals(
    image_bgr: np.ndarray,
    path: str,
    num_candidates: int,
    max_side: int,
    num_hypotheses: int,
    mcg_file: Optional[str] = None,
    hypothesis_kwargs: Optional[Dict[str, float]] = None,
) -> None:
    """Proposals of one image (an official MCG ``.mat`` file when given, else the MCG-style
    generator, best ``num_candidates``) and its hypotheses, written to ``path``."""
    if mcg_file:
        cs = load_mcg_mat(mcg_file)
        if cs.image_size != image_bgr.shape[:2]:
            raise ValueError(f"{mcg_file}: size {cs.image_size} != image {image_bgr.shape[:2]}")
        cs = CandidateSet(
            cs.superpixels, cs.labels[:num_candidates], cs.scores[:num_candidates], cs.image_size
        )
    else:
        cs = candidate_segments(image_bgr, num_candidates=num_candidates, max_side=max_side)
    hyp = select_hypotheses(cs.boxes(), num_hypotheses, **(hypothesis_kwargs or {}))
    save_proposals(path, cs, hyp)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _call(args):
    fn, item = args
    fn(item)
    return 1


class PerImageFileJob:
    """Run ``fn(item)`` for every item whose ``output_path(item)`` does not exist yet.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one) and
    write its file(s) atomically, the one named by ``output_path`` last, so that an interrupted
    job resumes where it stopped (module docstring).
    """

    def __init__(self, fn: Callable[[Any], None], output_path: Callable[[Any], str], desc: str):
        self.fn, self.output_path, self.desc = fn, output_path, desc

    def run(self, items: Sequence[Any], num_workers: int = 0, progress: bool = True) -> int:
        """Process the missing items (``num_workers`` processes; 0: this one); returns how many
        were computed."""
        todo = [it for it in items if not os.path.isfile(self.output_path(it))]
        bar = tqdm(
            total=len(items),
            initial=len(items) - len(todo),
            desc=self.desc,
            unit="img",
            disable=not progress,
        )
        # forkserver: workers never inherit this process's OpenCV / torch thread pools
        pool = (
            mp.get_context("forkserver").Pool(num_workers, initializer=_worker_init)
            if num_workers > 0 and len(todo) > 1
            else None
        )
        try:
            args = [(self.fn, it) for it in todo]
            outputs = pool.imap_unordered(_call, args) if pool else map(_call, args)
            for n in outputs:
                bar.update(n)
        finally:
            bar.close()
            if pool:
                pool.terminate()
                pool.join()
        return len(todo)
