"""Semantic-segmentation heads (Detectron2's ``SEM_SEG_HEADS_REGISTRY``)."""

from .atrous_head import AtrousSemSegHead
from .soft_label_heads import (
    SoftLabelAtrousSemSegHead,
    SoftLabelLossMixin,
    SoftLabelSemSegFPNHead,
)

__all__ = [
    "AtrousSemSegHead",
    "SoftLabelAtrousSemSegHead",
    "SoftLabelLossMixin",
    "SoftLabelSemSegFPNHead",
]
