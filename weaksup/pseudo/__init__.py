"""Pseudo-label generation from boxes: plain numpy and OpenCV, no torch, no Detectron2."""

from . import grabcut  # noqa: F401  (registers the GrabCut methods)
from .engine import (
    METHODS,
    PseudoMask,
    PseudoMaskConfig,
    as_bgr_uint8,
    pseudo_masks_for_image,
    register_method,
)
from .fallback import fallback_mask, with_fallback
from .geometry import box_agreement, box_iou, box_mask, ellipse_mask, tight_box
from .grabcut import grabcut_crop, grabcut_full
from .merge import merge_smaller_wins

__all__ = [
    "METHODS",
    "PseudoMask",
    "PseudoMaskConfig",
    "as_bgr_uint8",
    "box_agreement",
    "box_iou",
    "box_mask",
    "ellipse_mask",
    "fallback_mask",
    "grabcut_crop",
    "grabcut_full",
    "merge_smaller_wins",
    "pseudo_masks_for_image",
    "register_method",
    "tight_box",
    "with_fallback",
]
