"""DASNet instance segmentation with position-sensitive score maps (Secs. 3.4.2 and 3.5)."""

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from detectron2.layers import ROIAlign, cat
from detectron2.structures import Boxes, pairwise_iou

__all__ = [
    "assemble_position_sensitive",
    "instance_score_logits",
    "instance_losses",
    "sample_instance_boxes",
]


def assemble_position_sensitive(
    score_maps: torch.Tensor, boxes: torch.Tensor, box_query: torch.Tensor, grid: int, size: int
) -> torch.Tensor:
    """Assemble (copy-paste) each box's inside/outside maps from ``2 k^2`` score maps (FCIS).

    The box is resampled to ``size x size`` (ROIAlign, aligned); the ``size / k`` rows and columns
    of grid cell (i, j) (row-major, ``c = i k + j``) are copied from inside map ``c`` and outside
    map ``k^2 + c``.

    Args:
        score_maps: (Q, 2 k^2, H, W) position-sensitive maps at network-input resolution.
        boxes: (R, 4) ``XYXY_ABS`` boxes in network-input pixels.
        box_query: (R,) long, the query (first dim of ``score_maps``) each box is read from.
        grid: k. size: output side, a multiple of k.

    Returns:
        (R, 2, size, size): inside scores (channel 0) and outside scores (channel 1).
    """
    if size % grid:
        raise ValueError(f"the assembled size {size} is not a multiple of the grid {grid}")
    num_boxes = len(boxes)
    rois = cat([box_query[:, None].to(boxes.dtype), boxes], dim=1)
    crops = ROIAlign((size, size), 1.0, 0, aligned=True)(score_maps, rois)
    crops = crops.view(num_boxes, 2, grid * grid, size, size)
    cell = torch.arange(size, device=boxes.device) * grid // size
    index = (cell[:, None] * grid + cell[None, :]).expand(num_boxes, 2, 1, size, size)
    return crops.gather(2, index).squeeze(2)


def instance_score_logits(assembled: torch.Tensor) -> torch.Tensor:
    """Per-box instance score (logit): the mean over the box of max(inside, outside) (FCIS)."""
    return assembled.max(dim=1).values.flatten(1).mean(dim=1)


def sample_instance_boxes(
    gt_boxes: torch.Tensor,
    image_gt_boxes: torch.Tensor,
    num_positive: int,
    num_negative: int,
    positive_iou: float,
    jitter: float,
    image_size: Tuple[int, int],
    pool_size: int = 32,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample p positive and n negative boxes per GT box (Sec. 3.5).

    Candidates are ``pool_size`` jittered copies of each GT box (centre shifted by
    ``U(-jitter, jitter)`` of its width/height, each side scaled by ``exp(U(-log(1 + jitter),
    log(1 + jitter)))``, clipped to the image). A candidate is positive if its IoU with its own GT
    box exceeds ``positive_iou`` and negative if its IoU with every GT box of the image is at most
    ``positive_iou``; ``num_positive`` / ``num_negative`` of each are drawn at random (fewer if the
    pool has fewer). Uses the global torch RNG.

    Args:
        gt_boxes: (G, 4) GT boxes to sample around; image_gt_boxes: (A, 4) all GT boxes of the
            image (for the negatives' test).

    Returns:
        boxes (S, 4), labels (S,) (1 positive, 0 negative), gt_index (S,) (into ``gt_boxes``).
    """
    device = gt_boxes.device
    num_gt = len(gt_boxes)
    wh = (gt_boxes[:, 2:] - gt_boxes[:, :2])[:, None]  # (G, 1, 2)
    centre = (gt_boxes[:, 2:] + gt_boxes[:, :2])[:, None] / 2
    rand = torch.rand(num_gt, pool_size, 4, device=device) * 2 - 1
    centre = centre + rand[..., :2] * jitter * wh
    half = wh / 2 * torch.exp(rand[..., 2:] * torch.log1p(torch.tensor(jitter, device=device)))
    candidates = torch.cat([centre - half, centre + half], dim=2)
    candidates[..., 0::2] = candidates[..., 0::2].clamp(0, image_size[1])
    candidates[..., 1::2] = candidates[..., 1::2].clamp(0, image_size[0])
    candidates = torch.cat([gt_boxes[:, None], candidates], dim=1)  # the GT box is a candidate
    flat = candidates.reshape(-1, 4)
    own_iou = pairwise_iou(Boxes(flat), Boxes(gt_boxes)).view(num_gt, pool_size + 1, num_gt)
    own_iou = own_iou[torch.arange(num_gt, device=device), :, torch.arange(num_gt, device=device)]
    max_iou = pairwise_iou(Boxes(flat), Boxes(image_gt_boxes)).max(dim=1).values
    max_iou = max_iou.view(num_gt, pool_size + 1)
    boxes, labels, gt_index = [], [], []
    for g in range(num_gt):
        for label, ok, count in (
            (1, own_iou[g] > positive_iou, num_positive),
            (0, max_iou[g] <= positive_iou, num_negative),
        ):
            idx = torch.nonzero(ok).squeeze(1)
            idx = idx[torch.randperm(len(idx), device=device)[:count]]
            boxes.append(candidates[g, idx])
            labels.append(torch.full((len(idx),), label, device=device, dtype=torch.long))
            gt_index.append(torch.full((len(idx),), g, device=device, dtype=torch.long))
    return cat(boxes, dim=0), cat(labels, dim=0), cat(gt_index, dim=0)


def instance_losses(
    assembled: torch.Tensor, labels: torch.Tensor, positive_targets: torch.Tensor
) -> Dict[str, torch.Tensor]:
    """The two per-box losses of Sec. 3.4.2, in equal weights.

    * ``loss_instance_score``: sigmoid cross-entropy of the instance score (1 for positive boxes,
      0 for negative ones), mean over boxes;
    * ``loss_instance_mask``: pixel-wise softmax over (inside, outside) against the foreground of
      the box's own GT instance, positive boxes only, mean over their pixels.

    Args:
        assembled: (R, 2, M, M) from :func:`assemble_position_sensitive`.
        labels: (R,) 1 / 0. positive_targets: (P, M, M) bool, the GT mask of each positive box
            (in the order of the positives in ``labels``) resampled to the box.
    """
    score = F.binary_cross_entropy_with_logits(
        instance_score_logits(assembled), labels.to(assembled.dtype)
    )
    positive = assembled[labels == 1]
    if len(positive) == 0:
        mask = assembled.sum() * 0
    else:
        # class 0 = inside, 1 = outside, as the channels of ``assembled``
        mask = F.cross_entropy(positive, (~positive_targets).long())
    return {"loss_instance_score": score, "loss_instance_mask": mask}
