"""Mask R-CNN mask loss restricted to instances whose (pseudo) mask may be trained on."""

from typing import List

import torch
from detectron2.layers import cat
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage

__all__ = ["flagged_mask_rcnn_loss"]


def flagged_mask_rcnn_loss(
    pred_mask_logits: torch.Tensor, instances: List[Instances], vis_period: int = 0
) -> torch.Tensor:
    """:func:`mask_rcnn_loss` over the instances with ``gt_mask_valid`` True only.

    Invalid GrabCut masks (Hybrid Sec. 1) and dropped proxy masks (BoxCaseg Sec. 3.4) are flagged
    False: their boxes and classes still train the box head, their masks train nothing. Instances
    without the field (fully supervised data) all count. With no usable mask in the batch the loss
    is a zero that still depends on every logit, so DDP sees gradients for all mask-head weights.

    Args:
        pred_mask_logits: (B, C or 1, M, M) logits for the foreground proposals of the batch.
        instances: per image, the foreground proposals with ``gt_*`` fields, in logit order.
    """
    device = pred_mask_logits.device
    keep = [
        (
            p.gt_mask_valid
            if p.has("gt_mask_valid")
            else torch.ones(len(p), dtype=torch.bool, device=device)
        )
        for p in instances
    ]
    keep_all = cat(keep, dim=0) if keep else torch.zeros(0, dtype=torch.bool, device=device)
    num_kept = int(keep_all.sum())
    storage = get_event_storage()
    storage.put_scalar(
        "mask_rcnn/usable_mask_fraction", num_kept / max(pred_mask_logits.size(0), 1)
    )
    if num_kept == 0:
        return pred_mask_logits.sum() * 0
    kept_instances = [p[k] for p, k in zip(instances, keep)]
    return mask_rcnn_loss(pred_mask_logits[keep_all], kept_instances, vis_period)
