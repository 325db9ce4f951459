"""The pseudo-mask engine: one entry point for every method that turns boxes into masks.

Plain numpy + OpenCV (+ scikit-image): no torch, no Detectron2, so it runs in any worker process.
Methods are registered by name in :data:`METHODS`; each is a function

    ``method(image, boxes, seeds, cfg) -> List[Tuple[mask, fallback]]``

with ``image`` an ``(H, W, 3)`` uint8 BGR array, ``boxes`` an ``(N, 4)`` float array (``XYXY_ABS``),
``seeds`` one int per box (methods that draw random numbers seed themselves per box, so results
do not depend on call order, worker count or sharding), ``mask`` a bool ``(H, W)`` array and
``fallback`` None or the name of the fallback used. :func:`pseudo_masks_for_image` runs a method and
adds what all methods share: box agreement, the validity flag, and the optional merge step.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .geometry import box_agreement, box_mask, ellipse_mask

__all__ = [
    "METHODS",
    "PseudoMask",
    "PseudoMaskConfig",
    "register_method",
    "pseudo_masks_for_image",
]

MethodFn = Callable[
    [np.ndarray, np.ndarray, Sequence[int], "PseudoMaskConfig"],
    List[Tuple[np.ndarray, Optional[str]]],
]
METHODS: Dict[str, MethodFn] = {}


def register_method(name: str) -> Callable[[MethodFn], MethodFn]:
    """Decorator registering a pseudo-mask method under ``name``."""

    def deco(fn: MethodFn) -> MethodFn:
        if name in METHODS:
            raise KeyError(f"pseudo-mask method {name!r} is already registered")
        METHODS[name] = fn
        return fn

    return deco


@dataclass(frozen=True)
class PseudoMaskConfig:
    """Parameters shared by the pseudo-mask methods (each documents the ones it reads)."""

    # Validity (Hybrid Sec. 1): a mask is valid when box_agreement >= this.
    valid_threshold: float = 0.5


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


def pseudo_masks_for_image(
    image: np.ndarray,
    boxes: np.ndarray,
    method: str,
    seeds: Sequence[int],
    cfg: PseudoMaskConfig = PseudoMaskConfig(),
) -> List[PseudoMask]:
    """Pseudo masks for every box of one image with the named method.

    Args:
        image: ``(H, W, 3)`` uint8 BGR.
        boxes: ``(N, 4)`` ``XYXY_ABS`` boxes inside the image.
        method: a name in :data:`METHODS`.
        seeds: one int per box (e.g. the annotation id), for reproducible randomness.
        cfg: method parameters.
    """
    if method not in METHODS:
        raise KeyError(f"unknown pseudo-mask method {method!r}; known: {sorted(METHODS)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(seeds) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(seeds)} seeds")
    results = []
    for (mask, fallback), box in zip(METHODS[method](image, boxes, seeds, cfg), boxes):
        agreement = box_agreement(mask, box)
        results.append(
            PseudoMask(mask, method, agreement, agreement >= cfg.valid_threshold, fallback)
        )
    return results
