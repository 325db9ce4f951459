"""Pseudo-label generation from boxes: plain numpy and OpenCV, no torch, no Detectron2."""

from . import candidates, combined, grabcut, watershed  # noqa: F401  (register their methods)
from .candidates import CandidateSet, best_candidate_for_box, candidate_segments, load_mcg_mat
from .methods import (
    METHODS,
    PseudoMask,
    PseudoMaskConfig,
    as_bgr_uint8,
    per_box_method,
    pseudo_masks_for_image,
    register_method,
)
from .fallback import fallback_mask, with_fallback
from .geometry import box_agreement, box_iou, box_mask, ellipse_mask, tight_box
from .grabcut import box_crop, grabcut_crop, grabcut_full, grabcut_prior
from .watershed import watershed_box
from .combined import medoid_mask
from .merge import merge_smaller_wins

__all__ = [
    "CandidateSet",
    "best_candidate_for_box",
    "candidate_segments",
    "load_mcg_mat",
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
    "grabcut_prior",
    "box_crop",
    "medoid_mask",
    "watershed_box",
    "merge_smaller_wins",
    "per_box_method",
    "pseudo_masks_for_image",
    "register_method",
    "tight_box",
    "with_fallback",
]
