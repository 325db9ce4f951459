"""Proposals of Wei et al. (Sec. 3.1): per-image candidate files, HCP hypotheses, file jobs.

Proposals are candidate segments (:mod:`.candidates`: official MCG files or the MCG-style
generator), kept once per image in the candidate cache of :mod:`.candidate_cache` (MCG's
encoding: superpixel map + superpixel ids per candidate). Their boxes are the candidates' tight
boxes; the few *hypotheses* of HCP's hypothesis fine-tuning are chosen from them by
:func:`select_hypotheses`.

:class:`PerImageFileJob` runs a per-image function whose results are files: images whose output
exists are skipped (resume), the rest run in worker processes with a progress bar, and every file
is written atomically by the function (:func:`weaksup.utils.file_io.write_atomic`). It differs from
:class:`~weaksup.pseudo.job.PseudoMaskJob`, which gathers json results per shard of images:
here every image's result is a file of its own (candidates, maps, masks), read back per image.
"""

import multiprocessing as mp
import os
import re
from typing import Any, Callable, Dict, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .candidate_cache import load_or_make_candidates, save_candidates
from .geometry import box_iou

__all__ = [
    "PerImageFileJob",
    "file_key",
    "make_proposal_file",
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


def make_proposal_file(
    image_loader: Callable[[], np.ndarray],
    file_name: str,
    height: int,
    width: int,
    path: str,
    num_candidates: int,
    max_side: int,
    mcg_dir: Optional[str] = None,
) -> None:
    """Write the candidate file ``path`` of one image: its official MCG proposals
    (``<mcg_dir>/<file stem>.mat``) converted to the cache format, else the generator's best
    ``num_candidates`` (:func:`~weaksup.pseudo.candidate_cache.load_or_make_candidates`)."""
    cands = load_or_make_candidates(
        image_loader, file_name, height, width, path, mcg_dir, num_candidates, max_side
    )
    if mcg_dir:
        save_candidates(cands, path)


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
