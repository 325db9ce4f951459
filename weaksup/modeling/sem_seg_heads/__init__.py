"""Semantic-segmentation heads (Detectron2's ``SEM_SEG_HEADS_REGISTRY``)."""

from .atrous_head import AtrousSemSegHead

__all__ = ["AtrousSemSegHead"]
