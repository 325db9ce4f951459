"""Pseudo-label generation from boxes: plain numpy and OpenCV, no torch, no Detectron2."""

from .engine import METHODS, PseudoMask, PseudoMaskConfig, pseudo_masks_for_image, register_method
from .geometry import box_agreement, box_iou, box_mask, ellipse_mask, tight_box

__all__ = [
    "METHODS",
    "PseudoMask",
    "PseudoMaskConfig",
    "box_agreement",
    "box_iou",
    "box_mask",
    "ellipse_mask",
    "pseudo_masks_for_image",
    "register_method",
    "tight_box",
]
