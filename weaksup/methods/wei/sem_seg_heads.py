"""Semantic-segmentation heads that also train on soft per-pixel targets (Wei et al. Eq. 4).

One network serves Wei et al.'s Network_A and Network_B (Sec. 3.3.1-3.3.2) inside Detectron2's
:class:`~detectron2.modeling.SemanticSegmentor`: the mapper gives ``sem_seg`` either as an
``(H, W)`` long label map (rough masks: the head's own single-label cross-entropy with
``IGNORE_VALUE``) or as a ``(K, H, W)`` float map of class probabilities (normalised localization
maps: :func:`~weaksup.modeling.losses.soft_cross_entropy`). :class:`SoftLabelLossMixin` adds the
soft case to any head with Detectron2's ``losses(predictions, targets)`` interface; two are
registered: Detectron2's FPN head and BoxSup's DeepLab-v2 ASPP head.
"""

from typing import Dict

import torch
import torch.nn.functional as F
from detectron2.modeling.meta_arch.semantic_seg import SEM_SEG_HEADS_REGISTRY, SemSegFPNHead

from weaksup.modeling.losses.soft_multilabel_loss import soft_cross_entropy
from weaksup.modeling.sem_seg_heads.atrous_head import AtrousSemSegHead

__all__ = ["SoftLabelAtrousSemSegHead", "SoftLabelLossMixin", "SoftLabelSemSegFPNHead"]


class SoftLabelLossMixin:
    """``losses(predictions, targets)`` for hard label maps (the head's own loss) and soft
    probability maps (Eq. 4), to be placed before the head class in the bases.

    Soft targets: ``SemanticSegmentor`` pads a batch of targets with ``IGNORE_VALUE`` (255), so a
    position whose target exceeds 1 in any channel is padding and is ignored, as is a position
    whose target sums to 0 (no supervision). The logits are upsampled (bilinear) to the target
    size, as the heads do for hard labels (the paper computes the loss on the ``h x w`` score map;
    the mean over positions, ``eta = 1 / (N h w)``, is the same normalisation).
    """

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        if not targets.is_floating_point():
            return super().losses(predictions, targets)
        predictions = F.interpolate(
            predictions.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False
        )
        if predictions.shape != targets.shape:
            raise ValueError(
                f"soft sem_seg targets {tuple(targets.shape)} do not match the upsampled "
                f"predictions {tuple(predictions.shape)} (one channel per class expected; a "
                "mapper's compact soft targets need MODEL.META_ARCHITECTURE SoftTargetSegmentor)"
            )
        valid = (targets <= 1).all(dim=1) & (targets.sum(dim=1) > 0)
        loss = soft_cross_entropy(predictions, targets.clamp(max=1), valid, dim=1)
        return {"loss_sem_seg": loss * self.loss_weight}


@SEM_SEG_HEADS_REGISTRY.register()
class SoftLabelSemSegFPNHead(SoftLabelLossMixin, SemSegFPNHead):
    """Detectron2's :class:`SemSegFPNHead` with soft targets (:class:`SoftLabelLossMixin`)."""


@SEM_SEG_HEADS_REGISTRY.register()
class SoftLabelAtrousSemSegHead(SoftLabelLossMixin, AtrousSemSegHead):
    """BoxSup's DeepLab-v2 ASPP head with soft targets (:class:`SoftLabelLossMixin`): the
    DeepLab-style network of the paper (Sec. 3.3.1) for the VOC configs."""
