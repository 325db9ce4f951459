"""Meta-architectures shared by several methods (Detectron2's ``META_ARCH_REGISTRY``)."""

from .soft_target_segmentor import SoftTargetSegmentor, dense_soft_targets

__all__ = ["SoftTargetSegmentor", "dense_soft_targets"]
