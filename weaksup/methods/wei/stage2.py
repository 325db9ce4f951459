"""Wei et al. stage 2: localization maps and rough masks from the HCP network (Sec. 3.1-3.3).

1. :func:`score_proposals`: every proposal of every training image through HCP: softmax scores
   ``(K, C)`` and, for the candidates (confidence > ``SCORE_THRESH`` of a ground-truth label),
   penultimate features; one ``scores/<key>.npz`` per image, images sharded over the processes
   of the job, done images skipped (resume), progress bar.
2. :func:`refine`: PCA of all candidate features (``PCA_ENERGY``), then Eq. 1 per class across
   the images with that label (:class:`weaksup.methods.wei.localization.CrossImageRefinement`),
   streamed over the score files (memory independent of the number of candidates):
   ``refinement.json`` holds, per image and label, the kept candidates and all candidates (the
   "without refinement" ablation).
3. :func:`write_maps_and_masks`: per image (worker processes, resume, progress bar)
   ``maps/<key>.npz`` (Eq. 2, compressed, float16), ``maps_norefine/<key>.npz`` and
   ``rough_masks/<key>.png`` (Eq. 5 and the overlap rule; 0 background, class + 1).

Each step's folder holds a ``job.json`` fingerprint of its inputs and settings; a folder made with
other ones is emptied first, so stale files are never reused.
"""

import functools
import io
import logging
import os
from typing import Any, Dict, List, Sequence

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.utils import comm
from tqdm import tqdm

from weaksup.utils.file_io import write_atomic
from weaksup.engine.launch import wait_for_all
from weaksup.pseudo.candidate_cache import load_candidates
from weaksup.pseudo.proposals import PerImageFileJob, file_key

from .localization import (
    CrossImageRefinement,
    PCAMoments,
    localization_maps,
    pca_project,
    region_means,
    rough_mask,
    select_candidates,
    top_regions,
)

__all__ = [
    "hcp_image_scores",
    "refine",
    "score_proposals",
    "write_maps_and_masks",
]

logger = logging.getLogger(__name__)


def _candidates(scores: np.ndarray, labels: Sequence[int], thresh: float, min_candidates: int):
    """Sec. 3.1's candidates per label, at least ``min_candidates`` (most confident first) when
    fewer pass the threshold."""
    cands = select_candidates(scores, labels, thresh)
    for k in labels:
        if len(cands[k]) < min_candidates:
            cands[k] = np.argsort(-scores[:, k], kind="stable")[:min_candidates]
    return cands


def _score_boxes(cfg_hcp: CfgNode, model, aug, record: Dict, boxes: np.ndarray):
    """HCP softmax scores ``(n, C)`` and features of ``boxes`` (``(n, 4)``, original image
    coordinates) of the record's image, resized by ``aug`` as HCP's test input."""
    image = utils.read_image(record["file_name"], format=cfg_hcp.INPUT.FORMAT)
    utils.check_image_size(record, image)
    aug_input = T.AugInput(image, boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    aug(aug_input)
    tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
    scores, feats = model.score_hypotheses(tensor, torch.as_tensor(aug_input.boxes))
    return scores.cpu().numpy(), feats.cpu().numpy()


@torch.no_grad()
def hcp_image_scores(cfg_hcp: CfgNode, model, records: List[Dict]) -> np.ndarray:
    """``(N, C)`` HCP softmax scores of each record's whole image (the image as its only
    hypothesis), for the image-level AP (:mod:`.scoring`); main process."""
    model.eval()
    aug = T.ResizeShortestEdge(cfg_hcp.INPUT.MIN_SIZE_TEST, cfg_hcp.INPUT.MAX_SIZE_TEST)
    out = [
        _score_boxes(cfg_hcp, model, aug, r, [[0, 0, r["width"], r["height"]]])[0][0]
        for r in tqdm(records, desc="HCP on test images", unit="img")
    ]
    return np.stack(out) if out else np.zeros((0, model.num_classes), np.float32)


@torch.no_grad()
def score_proposals(
    cfg_hcp: CfgNode, model, records: List[Dict], score_dir: str, thresh: float, min_cands: int
) -> None:
    """Step 1 (module docstring), in every process of the job."""
    model.eval()
    aug = T.ResizeShortestEdge(cfg_hcp.INPUT.MIN_SIZE_TEST, cfg_hcp.INPUT.MAX_SIZE_TEST)
    mine = records[comm.get_rank() :: comm.get_world_size()]
    path = lambda r: os.path.join(score_dir, file_key(r["image_id"]) + ".npz")  # noqa: E731
    todo = [r for r in mine if not os.path.isfile(path(r))]
    logger.info(f"Scoring proposals: {len(mine) - len(todo)} of {len(mine)} images already done")
    for r in tqdm(todo, desc=f"HCP scores [{comm.get_rank()}]", unit="img"):
        boxes = load_candidates(r["proposal_file"]).boxes()
        scores, feats = _score_boxes(cfg_hcp, model, aug, r, boxes)
        cands = _candidates(scores, r["image_labels"], thresh, min_cands)
        index = np.unique(np.concatenate([c for c in cands.values()] + [np.zeros(0, np.int64)]))
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            scores=scores.astype(np.float32),
            feature_index=index.astype(np.int64),
            features=feats[index].astype(np.float16),
        )
        write_atomic(buf.getvalue(), path(r))
    wait_for_all()


def _candidate_features(r: Dict, score_dir: str, thresh: float, min_cands: int):
    """One image's candidates per label (:func:`_candidates`), their HCP confidences and their
    float16 features, read from its score file."""
    with np.load(os.path.join(score_dir, file_key(r["image_id"]) + ".npz")) as z:
        scores, index, f = z["scores"], z["feature_index"], z["features"]
    cands = _candidates(scores, r["image_labels"], thresh, min_cands)
    row = {int(p): i for i, p in enumerate(index)}
    feats = {k: f[[row[int(p)] for p in c]] for k, c in cands.items()}
    return cands, {k: scores[c, k] for k, c in cands.items()}, feats


def refine(
    records: List[Dict],
    score_dir: str,
    thresh: float,
    min_cands: int,
    energy: float,
    keep: float,
    order: str,
) -> Dict[str, Any]:
    """Step 2 (module docstring). Returns ``{"refined": {key: {label: [proposal indices]}},
    "all": {...}, "pca": {"dims_in", "dims_out", "energy"}}``.

    Three passes over the score files (PCA moments, Eq. 1's per-image statistics, ranking), one
    image's features in memory at a time: memory is ``O(D^2)`` plus the candidate indices, not
    ``O(candidates x D)`` (:class:`~weaksup.methods.wei.localization.PCAMoments`).
    """
    read = functools.partial(
        _candidate_features, score_dir=score_dir, thresh=thresh, min_cands=min_cands
    )
    cands, confs, moments, dims_in = {}, {}, PCAMoments(), 0
    for r in tqdm(records, desc="Refinement PCA", unit="img", mininterval=10):
        key = file_key(r["image_id"])
        cands[key], confs[key], feats = read(r)
        for f in feats.values():
            moments.add(f)
            dims_in = f.shape[1]
    if not moments.n:
        raise RuntimeError("no proposal candidate in any training image; is the HCP trained?")
    mean, comps, kept_energy = moments.fit(energy)
    logger.info(
        f"Refinement PCA: {dims_in} -> {comps.shape[1]} dims, "
        f"{100 * kept_energy:.1f}% of the energy of {moments.n} candidate features"
    )
    refinements: Dict[int, CrossImageRefinement] = {}
    for r in tqdm(records, desc="Refinement Eq. 1", unit="img", mininterval=10):
        key = file_key(r["image_id"])
        for k, f in read(r)[2].items():
            refinements.setdefault(k, CrossImageRefinement(keep, order))
            refinements[k].add(key, pca_project(f, mean, comps))
    refined = {key: {} for key in cands}
    for r in records:
        key = file_key(r["image_id"])
        for k, f in read(r)[2].items():
            kept = refinements[k].keep(key, pca_project(f, mean, comps), confs[key][k])
            refined[key][k] = cands[key][k][kept]
    as_lists = lambda d: {  # noqa: E731
        key: {str(k): [int(i) for i in v] for k, v in per.items()} for key, per in d.items()
    }
    return {
        "refined": as_lists(refined),
        "all": as_lists(cands),
        "pca": {"dims_in": dims_in, "dims_out": comps.shape[1], "energy": kept_energy},
    }


def _save_maps(path: str, maps: np.ndarray, labels: Sequence[int]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, maps=maps.astype(np.float16), labels=np.asarray(labels, np.int64))
    write_atomic(buf.getvalue(), path)


def _palette(n: int) -> np.ndarray:
    """``(n, 3)`` BGR colours: black for background, then well-separated hues."""
    hsv = np.stack(
        [np.arange(n) * 180 // max(n, 1), np.full(n, 200), np.full(n, 255)], axis=1
    ).astype(np.uint8)
    out = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]
    out[0] = 0
    return out


def draw_maps_and_mask(image: np.ndarray, maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The BGR image with the fused foreground localization map as a heat map (Fig. 5) next to
    it with the rough mask in class colours."""
    heat = cv2.applyColorMap(
        (255 * np.clip(maps[1:].max(axis=0, initial=0), 0, 1)).astype(np.uint8), cv2.COLORMAP_JET
    )
    left = cv2.addWeighted(image, 0.5, heat, 0.5, 0)
    colours = _palette(int(mask.max()) + 1)
    right = np.where(mask[..., None] > 0, 0.5 * image + 0.5 * colours[mask], image).astype(np.uint8)
    return np.concatenate([left, right], axis=1)


def _image_maps_and_masks(item: Dict[str, Any], top_k: int) -> None:
    """One image of step 3; the rough mask (the completion marker) is written last."""
    cs = load_candidates(item["proposal_file"])
    h, w = cs.image_size
    labels = item["labels"]
    with np.load(item["score_file"]) as z:
        scores = z["scores"]
    if item.get("maps_norefine"):
        norefine = localization_maps([cs.masks(item["all"][k]) for k in labels], h, w)
        _save_maps(item["maps_norefine"], norefine, labels)
    maps = localization_maps([cs.masks(item["refined"][k]) for k in labels], h, w)
    _save_maps(item["maps"], maps, labels)
    class_masks = []
    for l, k in enumerate(labels):
        v = scores[:, k] + region_means(cs, maps[l + 1])  # Eq. 5
        class_masks.append(cs.masks(top_regions(v, top_k)).any(axis=0))
    mask = rough_mask(maps, class_masks, labels)
    if item.get("vis"):
        image = cv2.imread(item["file_name"], cv2.IMREAD_COLOR)
        ok, jpg = cv2.imencode(".jpg", draw_maps_and_mask(image, maps, mask))
        if ok:
            write_atomic(jpg.tobytes(), item["vis"])
    ok, png = cv2.imencode(".png", mask)
    if not ok:
        raise RuntimeError(f"cannot encode the rough mask of {item['proposal_file']}")
    write_atomic(png.tobytes(), item["rough_mask"])


def write_maps_and_masks(
    records: List[Dict],
    refinement: Dict[str, Any],
    score_dir: str,
    out_dirs: Dict[str, str],
    top_k: int,
    num_workers: int,
    num_vis: int = 0,
) -> None:
    """Step 3 (module docstring), main process. ``out_dirs``: ``maps``, ``rough_masks`` and,
    for the ablation, ``maps_norefine``. The first ``num_vis`` images are also drawn
    (:func:`draw_maps_and_mask`) into ``<rough_masks>/vis/``."""
    items = []
    for i, r in enumerate(records):
        key = file_key(r["image_id"])
        items.append(
            {
                "proposal_file": r["proposal_file"],
                "score_file": os.path.join(score_dir, key + ".npz"),
                "labels": list(r["image_labels"]),
                "refined": {int(k): v for k, v in refinement["refined"][key].items()},
                "all": {int(k): v for k, v in refinement["all"][key].items()},
                "maps": os.path.join(out_dirs["maps"], key + ".npz"),
                "maps_norefine": (
                    os.path.join(out_dirs["maps_norefine"], key + ".npz")
                    if "maps_norefine" in out_dirs
                    else ""
                ),
                "rough_mask": os.path.join(out_dirs["rough_masks"], key + ".png"),
                "file_name": r["file_name"],
                "vis": (
                    os.path.join(out_dirs["rough_masks"], "vis", key + ".jpg")
                    if i < num_vis
                    else ""
                ),
            }
        )
    job = PerImageFileJob(
        functools.partial(_image_maps_and_masks, top_k=top_k),
        lambda it: it["rough_mask"],
        "maps + rough masks",
    )
    n = job.run(items, num_workers=num_workers)
    logger.info(f"Localization maps and rough masks: {n} images computed, {len(items) - n} reused")
