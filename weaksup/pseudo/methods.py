"""The pseudo-mask engine: one entry point for every method that turns boxes into masks.

Plain numpy + OpenCV (+ scikit-image): no torch, no Detectron2, so it runs in any worker process.
Methods are registered by name in :data:`METHODS`; each is a function

    ``method(image, boxes, seeds, cfg) -> List[Tuple[mask, fallback]]``

with ``image`` an ``(H, W, 3)`` uint8 BGR array, ``boxes`` an ``(N, 4)`` float array (``XYXY_ABS``),
``seeds`` one int per box (methods that draw random numbers seed themselves per box, so results
do not depend on call order, worker count or sharding), ``mask`` a bool ``(H, W)`` array and
``fallback`` None or the name of the fallback used. Methods only see boxes already clipped to the
image that cover at least one pixel centre. :func:`pseudo_masks_for_image` runs a method and adds
what all methods share: input checks, the optional merge step, box agreement and the validity flag.
The methods live in their own modules (:mod:`.grabcut`, :mod:`.candidates`, :mod:`.combined`),
registered when :mod:`weaksup.pseudo` is imported.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .fallback import with_fallback
from .geometry import box_agreement, box_mask, ellipse_mask
from .merge import merge_smaller_wins

__all__ = [
    "METHODS",
    "PseudoMask",
    "PseudoMaskConfig",
    "as_bgr_uint8",
    "per_box_method",
    "register_method",
    "pseudo_masks_for_image",
]

MethodFn = Callable[
    [np.ndarray, np.ndarray, Sequence[int], "PseudoMaskConfig"],
    List[Tuple[np.ndarray, Optional[str]]],
]
# A per-box function: ``box_fn(image, box, seed, cfg) -> mask or None`` (None: it failed).
BoxFn = Callable[[np.ndarray, np.ndarray, int, "PseudoMaskConfig"], Optional[np.ndarray]]
METHODS: Dict[str, MethodFn] = {}


def register_method(name: str) -> Callable[[MethodFn], MethodFn]:
    """Decorator registering a pseudo-mask method under ``name``."""

    def deco(fn: MethodFn) -> MethodFn:
        if name in METHODS:
            raise KeyError(f"pseudo-mask method {name!r} is already registered")
        METHODS[name] = fn
        return fn

    return deco


def per_box_method(
    box_fn: BoxFn, fallback: Optional[str] = None, invalid_falls_back: bool = False
) -> MethodFn:
    """The method that runs ``box_fn`` on every box and replaces its failed (None) or empty masks
    by a fallback (:func:`.fallback.with_fallback`, Hybrid Sec. 2.2).

    Args:
        box_fn: ``box_fn(image, box, seed, cfg) -> bool (H, W) mask or None``.
        fallback: the fallback kind ("ellipse" or "box"); None: ``cfg.fallback``.
        invalid_falls_back: also replace masks whose box agreement is below
            ``cfg.valid_threshold`` (the Hybrid Sec. 1 validity rule).
    """

    def method(image, boxes, seeds, cfg):
        kind = cfg.fallback if fallback is None else fallback
        threshold = cfg.valid_threshold if invalid_falls_back else None
        return [
            with_fallback(box_fn(image, box, seed, cfg), box, kind, image.shape[:2], threshold)
            for box, seed in zip(boxes, seeds)
        ]

    reasons = "failed, empty or invalid" if invalid_falls_back else "failed or empty"
    target = "``cfg.fallback``" if fallback is None else f"the {fallback}"
    method.__doc__ = f":func:`{box_fn.__name__}` per box; {reasons} -> {target}."
    method.__name__ = f"{box_fn.__name__}_method"
    return method


@dataclass(frozen=True)
class PseudoMaskConfig:
    """Parameters shared by the pseudo-mask methods (each documents the ones it reads)."""

    # Validity (Hybrid Sec. 1) and dropping by proxy box agreement (BoxCaseg Sec. 3.4): a mask is
    # valid (may train a mask head) when box_agreement >= this. Hybrid: 0.5; BoxCaseg Tab. 8: 0.95.
    valid_threshold: float = 0.5
    # Merge via "smaller object better" (BoxCaseg Sec. 3.4) after the method, before agreement.
    merge_smaller: bool = False
    # Fallback for empty/failed masks: "ellipse" (Hybrid Sec. 2.2) or "box" (filled box).
    fallback: str = "ellipse"
    # GrabCut crop (grabcut.crop_geometry): margin per side as a fraction of the box's longer side,
    grabcut_margin: float = 0.1
    # ... at least this many background pixels per side in the resized crop,
    grabcut_min_background: int = 8
    # ... crop resized so its longer side lies in [min_side, max_side] (reference: max 256 px),
    grabcut_min_side: int = 128
    grabcut_max_side: int = 256
    # ... margin outside the image padded by "reflect" (BORDER_REFLECT_101) or "replicate",
    grabcut_pad: str = "reflect"
    # ... and GrabCut iterations of crop GrabCut (grabcut, grabcut_ellipse, consensus). OpenCV's
    # sample uses 5; 3 measured as good or better and 1.3-1.6x faster (PennFudan 80 instances
    # 58.3 vs 57.2 mIoU, grabcut13 89.6 vs 89.3, ECSSD 40: 78.4 vs 78.4),
    grabcut_iters: int = 3
    # ... of the full-image reference (grabcut_full: OpenCV's sample, the baseline),
    grabcut_full_iters: int = 5
    # ... and of grabcut_prior (its 3-iteration runs measured 0.3-0.5 mIoU worse).
    prior_iters: int = 5
    # Shape prior of grabcut_prior / watershed: the inscribed ellipse shrunk by this factor about
    # the box centre is definite foreground (marker); 0.5 measured best of {0.3, 0.5} on PennFudan.
    prior_core: float = 0.5
    # grabcut_prior's edge-preserving smoothing: cv2.bilateralFilter(d, sigmaColor, sigmaSpace).
    prior_bilateral: Tuple[int, float, float] = (9, 50.0, 7.0)
    # consensus grows masks that stop short of a box side back to it (tightness.repair_tightness;
    # the tightness prior of BoxCaseg Sec. 3.1): PennFudan 69.0 -> 71.2 mIoU,
    tightness_repair: bool = True
    # ... a side counting as reached when the mask's gap to it is at most this fraction of the side.
    tightness_tolerance: float = 0.02
    # Candidate segments per image (candidates.candidate_segments; Wei Sec. 3.1: ~2,000 MCG).
    num_candidates: int = 1000


@dataclass
class PseudoMask:
    """One pseudo mask and what the engine knows about it."""

    mask: np.ndarray  # bool (H, W), at image resolution
    method: str
    box_agreement: float  # IoU(tight box of the mask, its box)
    mask_valid: bool  # may train a mask head
    fallback: Optional[str] = None  # None, or the fallback that produced the mask


@register_method("box")
def box_method(image, boxes, seeds, cfg):
    """The filled box (BoxSup Tab. 2 "rectangles")."""
    h, w = image.shape[:2]
    return [(box_mask(b, h, w), None) for b in boxes]


@register_method("ellipse")
def ellipse_method(image, boxes, seeds, cfg):
    """The inscribed ellipse (Hybrid Sec. 2.2's replacement for poor GrabCut masks)."""
    h, w = image.shape[:2]
    return [(ellipse_mask(b, h, w), None) for b in boxes]


def as_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """The engine's image contract: ``(H, W, 3)`` uint8 BGR.

    Converted: grayscale ``(H, W)`` / ``(H, W, 1)`` (channel repeated) and BGRA ``(H, W, 4)``
    (alpha dropped, as ``cv2.imread(..., IMREAD_COLOR)`` does). Anything else (other dtypes,
    channel counts) raises ``ValueError`` naming the shape and dtype.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype} {image.shape}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape[:2]:
        raise ValueError(
            f"expected an (H, W, 3) BGR image (grayscale and BGRA are converted), got {image.shape}"
        )
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    return np.ascontiguousarray(image[:, :, :3])


def pseudo_masks_for_image(
    image: np.ndarray,
    boxes: np.ndarray,
    method: str,
    seeds: Sequence[int],
    cfg: PseudoMaskConfig = PseudoMaskConfig(),
) -> List[PseudoMask]:
    """Pseudo masks for every box of one image with the named method.

    Boxes are clipped to the image first; box agreement is measured against the clipped box. A
    box that covers no pixel centre after clipping (zero area, or outside the image) gets an
    empty mask, agreement 0, ``mask_valid=False`` and ``fallback="empty_box"``, and is not shown
    to the method. With ``cfg.merge_smaller`` the masks are made disjoint
    (:func:`merge_smaller_wins`) before agreement and validity are computed, so the drop rule
    (``valid_threshold``) judges the merged masks, as in BoxCaseg Sec. 3.4 ("after the merging
    procedure, we further drop"). A mask the method replaced by a fallback is never valid: it is
    no segmentation of the object (Hybrid Sec. 1 counts failed GrabCut masks as invalid).

    Args:
        image: ``(H, W, 3)`` uint8 BGR (grayscale and BGRA are converted: :func:`as_bgr_uint8`).
        boxes: ``(N, 4)`` ``XYXY_ABS`` boxes; non-finite or inverted (x1 < x0) boxes raise.
        method: a name in :data:`METHODS`.
        seeds: one int per box (e.g. the annotation id), for reproducible randomness.
        cfg: method parameters.
    """
    if method not in METHODS:
        raise KeyError(f"unknown pseudo-mask method {method!r}; known: {sorted(METHODS)}")
    image = as_bgr_uint8(image)
    h, w = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(seeds) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(seeds)} seeds")
    bad = (
        ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"box {i} is not finite or has x1 < x0 / y1 < y0: {boxes[i].tolist()}")
    boxes = np.clip(boxes, 0, [w, h, w, h])
    keep = np.array([box_mask(b, h, w).any() for b in boxes], dtype=bool)
    masks = np.zeros((len(boxes), h, w), dtype=bool)
    fallbacks: List[Optional[str]] = ["empty_box"] * len(boxes)
    if keep.any():
        idx = np.flatnonzero(keep)
        outputs = METHODS[method](image, boxes[idx], [seeds[i] for i in idx], cfg)
        if len(outputs) != len(idx):
            raise RuntimeError(f"method {method!r} returned {len(outputs)} masks for {len(idx)}")
        for i, (mask, fallback) in zip(idx, outputs):
            masks[i], fallbacks[i] = mask, fallback
    if cfg.merge_smaller:
        masks = merge_smaller_wins(masks)
    results = []
    for mask, box, fallback in zip(masks, boxes, fallbacks):
        agreement = box_agreement(mask, box)
        # a fallback (ellipse / box for a failed, empty or invalid mask) is no segmentation of
        # the object: invalid whatever its agreement (Hybrid Sec. 1; the ellipse agrees 1.0)
        valid = fallback is None and agreement >= cfg.valid_threshold
        results.append(PseudoMask(mask, method, agreement, valid, fallback))
    return results
