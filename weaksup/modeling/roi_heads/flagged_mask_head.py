"""Mask head whose loss skips masks flagged unusable (``Instances.gt_mask_valid``)."""

from typing import Dict, List, Union

import torch
from detectron2.modeling.roi_heads.mask_head import (
    ROI_MASK_HEAD_REGISTRY,
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
)
from detectron2.structures import Instances

from ..losses import flagged_mask_rcnn_loss

__all__ = ["FlaggedMaskRCNNConvUpsampleHead"]


@ROI_MASK_HEAD_REGISTRY.register()
class FlaggedMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """Detectron2's conv-upsample mask head trained with :func:`flagged_mask_rcnn_loss`.

    Select it with ``MODEL.ROI_MASK_HEAD.NAME: FlaggedMaskRCNNConvUpsampleHead``; with fully
    supervised data (no flags) it trains exactly as the parent.
    """

    def forward(
        self, x: torch.Tensor, instances: List[Instances]
    ) -> Union[Dict[str, torch.Tensor], List[Instances]]:
        x = self.layers(x)
        if self.training:
            loss = flagged_mask_rcnn_loss(x, instances, self.vis_period)
            return {"loss_mask": loss * self.loss_weight}
        mask_rcnn_inference(x, instances)
        return instances
