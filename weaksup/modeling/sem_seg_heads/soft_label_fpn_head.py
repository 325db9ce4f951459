"""Detectron2's ``SemSegFPNHead`` that also trains on soft per-pixel targets (Wei et al. Eq. 4).

One network serves Wei et al.'s Network_A and Network_B (Sec. 3.3.1-3.3.2) inside Detectron2's
standard :class:`~detectron2.modeling.SemanticSegmentor`: the mapper gives ``sem_seg`` either as
an ``(H, W)`` long label map (rough masks: the parent's single-label cross-entropy with
``IGNORE_VALUE``) or as a ``(K, H, W)`` float map of class probabilities (normalised localization
maps: :func:`~weaksup.modeling.losses.soft_cross_entropy`).
"""

import torch
import torch.nn.functional as F
from detectron2.modeling.meta_arch.semantic_seg import SEM_SEG_HEADS_REGISTRY, SemSegFPNHead

from ..losses.soft_multilabel_loss import soft_cross_entropy

__all__ = ["SoftLabelSemSegFPNHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class SoftLabelSemSegFPNHead(SemSegFPNHead):
    """:class:`SemSegFPNHead` whose loss takes hard label maps or soft probability maps.

    Soft targets: ``SemanticSegmentor`` pads a batch of targets with ``IGNORE_VALUE`` (255), so a
    position whose target exceeds 1 in any channel is padding and is ignored, as is a position
    whose target sums to 0 (no supervision). Like the parent, the loss is computed on the logits
    upsampled to the input resolution (the paper computes it on the ``h x w`` score map; the mean
    over positions, ``eta = 1 / (N h w)``, is the same normalisation).
    """

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor):
        if targets.dtype in (torch.int64, torch.int32, torch.uint8):
            return super().losses(predictions, targets)
        predictions = F.interpolate(
            predictions.float(),
            scale_factor=self.common_stride,
            mode="bilinear",
            align_corners=False,
        )
        if predictions.shape != targets.shape:
            raise ValueError(
                f"soft sem_seg targets {tuple(targets.shape)} do not match the upsampled "
                f"predictions {tuple(predictions.shape)} (one channel per class expected)"
            )
        valid = (targets <= 1).all(dim=1) & (targets.sum(dim=1) > 0)
        loss = soft_cross_entropy(predictions, targets.clamp(max=1), valid, dim=1)
        return {"loss_sem_seg": loss * self.loss_weight}
