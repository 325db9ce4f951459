"""BoxSup's label update (Dai et al. 2015, Sec. 4.2-4.3): per box, one candidate segment by cost.

Plain numpy. With the network fixed, every ground-truth box B "activates" exactly one candidate
segment S of its image, chosen by the cost of Eq. 4 restricted to that box,

    cost(S) = E_o(S) + lambda * E_r(S),

* ``E_o(S) = 1 - IoU(B, tight box of S)`` (Eq. 2 for the candidate labelled with B's class; the
  paper's ``1/N`` normalisation over the N candidates is the same for all of them and dropped);
* ``E_r(S)`` (``regression_cost="labelling"``, the default): Eq. 3 as written, the network's
  per-pixel loss (cross-entropy ``e = -log p``) over the whole labelling that choosing S makes:
  the pixels of S (clipped to B by default) labelled with B's class, every other pixel of the
  image background. It is taken per pixel of the image (the sum of Eq. 3 divided by the image's
  pixel count, as a normalised FCN loss is, so E_r is in nats per pixel and of the order of E_o in
  [0, 1] with lambda = 3). Only S's pixels depend on S:
  ``E_r(S) = (sum_p -log p_0(p) + sum_{p in S} (log p_0(p) - log p_c(p))) / N_pixels``, so a pixel
  the network calls class c lowers the cost of every segment that covers it, a pixel it calls
  background raises it. Each box is costed on its own (other boxes' pixels count as
  background: the greedy per-box update of Sec. 4.3).
* ``regression_cost="segment_mean"`` (weaksup's earlier choice, kept as an option): the mean of
  ``-log p_c`` over S's own pixels, no background term. It favours small, confidently predicted
  segments: a quarter of the box predicted at p_c = 0.9 beats the exact box whose other pixels
  are at 0.6 (``tests/methods/boxsup/test_boxsup_labels.py``), which can shrink the labels epoch after epoch.
  Both are computed per superpixel: bincounts and one matrix product for all candidates.

Selection (Sec. 4.3): uniformly among the ``k`` lowest-cost candidates (k = 5; k = 1 is the
deterministic 'w/o sampling' ablation of Tab. 2). The paper says "largest costs", but it minimises
the cost, so its first k candidates are the cheapest. Ties are ordered by more pixels inside the
box, then by the candidate rank. Candidates with no pixel inside the box are never chosen when
clipping (they would label nothing); a box that no candidate reaches gets its filled box.

Label map: 0 background, class ``c`` as ``c + 1``. Overlaps between the activated segments of one
image go to the smaller segment (:func:`merge_smaller_wins`, "smaller object better"): a smaller
segment overlapping a larger one is usually in front of it, and would vanish under the larger one
otherwise, while the larger one loses only the shared pixels.
"""

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from weaksup.pseudo.candidates import CandidateSet
from weaksup.pseudo.geometry import box_mask
from weaksup.pseudo.label_metrics import label_confusion, miou_from_confusion
from weaksup.pseudo.merge import merge_smaller_wins

__all__ = [
    "BoxSelection",
    "REGRESSION_COSTS",
    "overlap_cost",
    "regression_cost",
    "sample_top_k",
    "select_segments",
    "paint_label_map",
    "label_confusion",
    "miou_from_confusion",
    "resize_log_probs",
]


def overlap_cost(candidate_boxes: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """``E_o = 1 - IoU(box, tight box of S)`` for every candidate (Eq. 2), ``(K,)`` float64."""
    cb = np.asarray(candidate_boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(cb[:, 2], box[2]) - np.maximum(cb[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(cb[:, 3], box[3]) - np.maximum(cb[:, 1], box[1]), 0, None)
    inter = iw * ih
    union = (cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1]) + (box[2] - box[0]) * (box[3] - box[1])
    return 1.0 - inter / np.maximum(union - inter, 1e-9)


def _box_at(box: Sequence[float], image_size: Tuple[int, int], size: Tuple[int, int]):
    """``box`` (image pixels) in the pixels of a ``size = (h, w)`` map of the same image."""
    sy, sx = size[0] / image_size[0], size[1] / image_size[1]
    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]


REGRESSION_COSTS = ("labelling", "segment_mean")


def regression_cost(
    log_probs: np.ndarray,
    superpixels: np.ndarray,
    membership: np.ndarray,
    box: Sequence[float],
    category: int,
    image_size: Tuple[int, int],
    clip_to_box: bool = True,
    mode: str = "labelling",
) -> np.ndarray:
    """``E_r`` of every candidate for one box (module docstring), ``(K,)`` float64; ``+inf`` for
    a candidate that labels no pixel.

    Args:
        log_probs: ``(C + 1, h, w)`` per-pixel log-probabilities of the network (channel 0
            background, ``c + 1`` class ``c``) at the superpixel map's resolution.
        superpixels: ``(h, w)`` superpixel ids; ``membership``: ``(K, S)`` bool
            (:meth:`CandidateSet.membership`).
        box: the ground-truth box in image pixels; ``category``: its class ``c``.
        image_size: ``(H, W)`` of the image.
        clip_to_box: the label is ``S`` clipped to the box (else all of ``S``).
        mode: ``"labelling"`` (Eq. 3: the loss of the whole labelling, per image pixel) or
            ``"segment_mean"`` (the mean of ``-log p_c`` over S's pixels).
    """
    if mode not in REGRESSION_COSTS:
        raise ValueError(f"unknown BoxSup regression cost {mode!r}; known: {REGRESSION_COSTS}")
    h, w = superpixels.shape
    if log_probs.shape[1:] != (h, w):
        raise ValueError(f"log_probs {log_probs.shape} do not match superpixels {(h, w)}")
    region = (
        box_mask(_box_at(box, image_size, (h, w)), h, w) if clip_to_box else np.ones((h, w), bool)
    )
    num_sp = membership.shape[1]
    loss = -log_probs[category + 1].astype(np.float64)
    if mode == "labelling":  # the change of the labelling's loss when S's pixels become class c
        loss = loss + log_probs[0].astype(np.float64)
    sp_loss = np.bincount(superpixels[region], weights=loss[region], minlength=num_sp)[:num_sp]
    sp_count = np.bincount(superpixels[region], minlength=num_sp)[:num_sp].astype(np.float64)
    count = membership @ sp_count
    if mode == "labelling":
        background = -log_probs[0].astype(np.float64).sum()
        cost = (background + membership @ sp_loss) / (h * w)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = (membership @ sp_loss) / count
    return np.where(count > 0, cost, np.inf)


def sample_top_k(
    costs: np.ndarray, k: int, rng: np.random.Generator, tiebreak: Optional[np.ndarray] = None
) -> Tuple[int, np.ndarray]:
    """Draw uniformly among the ``k`` lowest costs (Sec. 4.3); ``k = 1`` is the argmin.

    Args:
        costs: ``(K,)``; ``+inf`` marks candidates that may not be chosen (never drawn unless all
            are ``+inf``).
        tiebreak: ``(K,)``, higher first among equal costs (e.g. pixels inside the box); then
            the lower index.

    Returns:
        the chosen index and the (at most ``k``) indices it was drawn from, cheapest first.
    """
    if k < 1:
        raise ValueError(f"top-k sampling needs k >= 1, got {k}")
    costs = np.asarray(costs, dtype=np.float64)
    if costs.size == 0:
        raise ValueError("no candidates to sample from")
    keys = [np.arange(costs.size)]
    if tiebreak is not None:
        keys.append(-np.asarray(tiebreak, dtype=np.float64))
    order = np.lexsort(keys + [costs])
    finite = order[np.isfinite(costs[order])]
    pool = (finite if finite.size else order)[:k]
    return int(pool[rng.integers(len(pool))] if len(pool) > 1 else pool[0]), pool


class BoxSelection:
    """What the update chose for one box: candidate index (-1: filled-box fallback), its cost
    terms, the pool it was drawn from, and the mask it labels (bool, image resolution)."""

    def __init__(self, index: int, e_o: float, e_r: float, pool: np.ndarray, mask: np.ndarray):
        self.index, self.e_o, self.e_r, self.pool, self.mask = index, e_o, e_r, pool, mask


def select_segments(
    candidates: CandidateSet,
    boxes: np.ndarray,
    categories: Sequence[int],
    rng: np.random.Generator,
    top_k: int = 5,
    log_probs: Optional[np.ndarray] = None,
    regression_weight: float = 3.0,
    clip_to_box: bool = True,
    regression_mode: str = "labelling",
) -> List[BoxSelection]:
    """One candidate per box (module docstring); ``log_probs=None`` uses ``E_o`` alone (the first
    labelling, before any training).

    Args:
        candidates: the image's candidate segments.
        boxes: ``(N, 4)`` ``XYXY_ABS`` ground-truth boxes; ``categories``: their classes.
        rng: draws the top-k samples, box after box.
        top_k: k of the sampling.
        log_probs: ``(C + 1, h, w)`` network log-probabilities at the superpixel resolution.
        regression_weight: lambda of Eq. 4 (3 in the paper).
        clip_to_box: label the candidate clipped to its box.
        regression_mode: the form of E_r (:func:`regression_cost`'s ``mode``).
    """
    h, w = candidates.image_size
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(candidates) == 0:
        raise ValueError("the image has no candidate segments")
    cboxes = candidates.boxes()
    member = candidates.membership()
    sp = candidates.superpixels
    out = []
    for box, category in zip(boxes, categories):
        inside_sp = box_mask(_box_at(box, (h, w), sp.shape), *sp.shape)
        inside = (
            member
            @ np.bincount(sp[inside_sp], minlength=member.shape[1]).astype(np.float64)[
                : member.shape[1]
            ]
        )
        e_o = overlap_cost(cboxes, box)
        e_r = (
            np.zeros_like(e_o)
            if log_probs is None
            else regression_cost(
                log_probs, sp, member, box, category, (h, w), clip_to_box, regression_mode
            )
        )
        cost = e_o + regression_weight * e_r
        if clip_to_box:
            cost = np.where(inside > 0, cost, np.inf)
        index, pool = sample_top_k(cost, top_k, rng, tiebreak=inside)
        bm = box_mask(box, h, w)
        if np.isfinite(cost[index]):
            mask = candidates.masks([index])[0]
            if clip_to_box:
                mask &= bm
        else:
            index, mask = -1, bm
        if not mask.any():  # box thinner than a pixel after clipping: keep its box
            index, mask = -1, bm
        out.append(
            BoxSelection(
                index,
                float(e_o[index]) if index >= 0 else 1.0,
                float(e_r[index]) if index >= 0 else 0.0,
                pool,
                mask,
            )
        )
    return out


def paint_label_map(
    masks: Sequence[np.ndarray], categories: Sequence[int], image_size: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray]:
    """The label map (uint8, 0 background, class ``c`` as ``c + 1``) of one image's activated
    masks, overlaps resolved by :func:`merge_smaller_wins`; also returns the merged masks."""
    h, w = image_size
    label = np.zeros((h, w), dtype=np.uint8)
    if len(masks) == 0:
        return label, np.zeros((0, h, w), dtype=bool)
    if max(categories) + 1 > 254:
        raise ValueError(f"class {max(categories)} does not fit a uint8 label map with 255 ignore")
    merged = merge_smaller_wins(np.stack(masks))
    for mask, c in zip(merged, categories):
        label[mask] = c + 1
    return label, merged


def resize_log_probs(log_probs: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` log-probabilities resized bilinearly to ``size = (h', w')`` and
    re-normalised (log-softmax over channels)."""
    c = log_probs.shape[0]
    planes = [
        cv2.resize(
            log_probs[i].astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR
        )
        for i in range(c)
    ]
    out = np.stack(planes)
    m = out.max(axis=0, keepdims=True)
    return out - (m + np.log(np.exp(out - m).sum(axis=0, keepdims=True)))
