"""BoxInst's mask losses from boxes alone (Tian et al., "BoxInst: High-Performance Instance
Segmentation with Box Annotations", CVPR 2021, Sec. 3.2-3.3), on the ROI masks of Mask R-CNN.

BoxInst computes both terms on CondInst's full-image mask; here they are computed on each
foreground proposal's ``M x M`` mask of Mask R-CNN, so every image quantity is expressed on the ROI
grid (bin ``(v, u)`` of a proposal covers the image at ``x0 + (u + 1/2) w / M``, ``y0 + (v + 1/2)
h / M``, the bin centres ROIAlign samples with ``aligned=True``):

* **projection term** (Sec. 3.2): the max-projections of the mask onto the x and y axes of the ROI
  must equal those of the ground-truth box rasterized on the same grid (:func:`roi_box_masks`),
  compared with the dice loss of CondInst; ``L_proj = L(Proj_x(m), Proj_x(b)) + L(Proj_y(m),
  Proj_y(b))``, averaged over instances;
* **pairwise term** (Sec. 3.3): each ROI bin is a node; edges join it to its 8 neighbours of a 3 x
  3 kernel with dilation 2 (:mod:`weaksup.modeling.losses.pairwise`). ``P(y_e = 1) = m_i m_j + (1 - m_i)(1 - m_j)`` is the
  probability that the two ends take the same label, and ``L_pairwise = -1/N sum_e 1[S_e >= tau]
  log P(y_e = 1)`` over the edges whose centre bin lies inside the box, with the colour similarity
  ``S_e = exp(-||c_i - c_j|| / theta)`` of the two bins' Lab colours (theta 2, tau 0.3) and ``N``
  the number of such edges. The colours are the image's Lab values pooled on the ROI grid by
  :class:`weaksup.methods.boxinst.roi_heads.BoxInstROIHeads` (``Instances.proposal_lab``).
"""

from typing import Dict, List

import torch
import torch.nn.functional as F
from detectron2.layers import cat
from detectron2.structures import Instances

from weaksup.modeling.losses.pairwise import neighbour_values

__all__ = [
    "box_projection_loss",
    "boxinst_mask_rcnn_loss",
    "colour_similarity",
    "pairwise_affinity_loss",
    "rgb_to_lab",
    "roi_box_masks",
]

# sRGB (D65) to CIE XYZ, and the D65 reference white (the constants of IEC 61966-2-1 / CIE).
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_D65_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (D65) of ``(N, 3, H, W)`` sRGB values in ``[0, 1]``: L in [0, 100], a, b about
    [-128, 127], the scale on which BoxInst's theta = 2 and tau = 0.3 are set."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_D65_WHITE, dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear) / white[None, :, None, None]
    eps = (6.0 / 29.0) ** 3
    linear_part = xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0
    f = torch.where(xyz > eps, xyz.clamp(min=eps).pow(1.0 / 3.0), linear_part)
    fx, fy, fz = f.unbind(dim=1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def colour_similarity(lab: torch.Tensor, dilation: int = 2, theta: float = 2.0) -> torch.Tensor:
    """``S_e = exp(-||c_i - c_j|| / theta)`` of every edge of :func:`weaksup.modeling.losses.pairwise.neighbour_values`.

    Args:
        lab: ``(N, 3, H, W)`` Lab colours.
    Returns:
        ``(N, K, H, W)``: similarity of each bin to its ``K = 8`` neighbours, 0 for neighbours
        outside the grid.
    """
    neighbours, valid = neighbour_values(lab, dilation)
    distance = (lab[:, :, None] - neighbours).norm(dim=1)
    return torch.exp(-distance / theta) * valid


def roi_box_masks(proposal_boxes: torch.Tensor, gt_boxes: torch.Tensor, size: int) -> torch.Tensor:
    """The ground-truth box rasterized on each proposal's ``size x size`` ROI grid.

    A bin is inside when its centre lies in the box (closed interval), so a proposal equal to its
    box gives all ones. Args are ``(N, 4)`` XYXY image coordinates; returns ``(N, size, size)``
    float.
    """
    steps = torch.arange(size, device=proposal_boxes.device, dtype=proposal_boxes.dtype)
    centres = (steps + 0.5) / size
    x0, y0, x1, y1 = proposal_boxes.unbind(dim=1)
    xs = x0[:, None] + centres[None] * (x1 - x0)[:, None]  # (N, size)
    ys = y0[:, None] + centres[None] * (y1 - y0)[:, None]
    in_x = (xs >= gt_boxes[:, 0:1]) & (xs <= gt_boxes[:, 2:3])
    in_y = (ys >= gt_boxes[:, 1:2]) & (ys <= gt_boxes[:, 3:4])
    return (in_y[:, :, None] & in_x[:, None, :]).to(proposal_boxes.dtype)


def _dice_loss(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """CondInst's dice loss ``1 - 2 sum(x t) / (sum x^2 + sum t^2)`` per row of ``(N, L)``, with
    ``eps`` in both numerator and denominator so that ``x == t`` gives exactly 0."""
    intersection = (x * target).sum(dim=1)
    union = x.pow(2).sum(dim=1) + target.pow(2).sum(dim=1)
    return 1.0 - (2.0 * intersection + eps) / (union + eps)


def box_projection_loss(mask_probs: torch.Tensor, box_masks: torch.Tensor) -> torch.Tensor:
    """The projection term (Sec. 3.2, Eq. 2): dice loss between the max-projections of the
    ``(N, H, W)`` mask probabilities and of the ``(N, H, W)`` box masks onto the x axis (max over
    rows) and the y axis (max over columns), summed over the two axes and averaged over instances.
    """
    loss_x = _dice_loss(mask_probs.amax(dim=1), box_masks.amax(dim=1))
    loss_y = _dice_loss(mask_probs.amax(dim=2), box_masks.amax(dim=2))
    return (loss_x + loss_y).mean()


def pairwise_affinity_loss(
    mask_logits: torch.Tensor,
    similarity: torch.Tensor,
    box_masks: torch.Tensor,
    threshold: float = 0.3,
    dilation: int = 2,
) -> torch.Tensor:
    """The pairwise term (Sec. 3.3, Eq. 4): ``-log P(y_e = 1)`` averaged over the edges with
    ``S_e >= threshold`` whose centre bin lies inside the box.

    ``log P(y_e = 1) = log(m_i m_j + (1 - m_i)(1 - m_j))`` is computed from the logits as
    ``logaddexp(log m_i + log m_j, log(1 - m_i) + log(1 - m_j))``, which stays finite for
    saturated masks. No edge counts (0 returned, still a function of every logit) when none passes.
    Computed in float32 whatever the logits are: under AMP a float16 count of a batch's edges
    passes 65504 (inf), which made the loss 0.

    Args:
        mask_logits: ``(N, H, W)``.
        similarity: ``(N, K, H, W)`` from :func:`colour_similarity` with the same ``dilation``.
        box_masks: ``(N, H, W)`` from :func:`roi_box_masks`.
    """
    mask_logits = mask_logits.float()
    log_fg = F.logsigmoid(mask_logits)[:, None]  # (N, 1, H, W)
    log_bg = F.logsigmoid(-mask_logits)[:, None]
    neighbour_fg, valid = neighbour_values(log_fg, dilation)
    neighbour_bg, _ = neighbour_values(log_bg, dilation)
    log_same = torch.logaddexp(log_fg[:, :, None] + neighbour_fg, log_bg[:, :, None] + neighbour_bg)
    weights = (similarity >= threshold) & valid & (box_masks[:, None] > 0)
    weights = weights.to(mask_logits.dtype)
    return -(log_same[:, 0] * weights).sum() / weights.sum().clamp(min=1.0)


def boxinst_mask_rcnn_loss(
    pred_mask_logits: torch.Tensor,
    instances: List[Instances],
    *,
    dilation: int = 2,
    threshold: float = 0.3,
    theta: float = 2.0,
) -> Dict[str, torch.Tensor]:
    """BoxInst's two terms for the foreground proposals of a batch (unweighted).

    Args:
        pred_mask_logits: ``(B, C or 1, M, M)`` mask logits, in the order of ``instances``.
        instances: per image, the foreground proposals with ``proposal_boxes``, ``gt_boxes``,
            ``gt_classes`` and ``proposal_lab`` (``(n, 3, M, M)`` Lab colours on the ROI grid).

    Returns:
        ``{"loss_prj": ..., "loss_pairwise": ...}`` and, as a diagnostic, ``"edge_fraction"``: the
        share of in-box edges whose similarity passes the threshold (not a loss).
    """
    num_masks, num_classes, side = pred_mask_logits.shape[:3]
    if num_masks == 0:
        zero = pred_mask_logits.sum() * 0
        return {"loss_prj": zero, "loss_pairwise": zero, "edge_fraction": zero.detach()}
    if num_classes == 1:
        logits = pred_mask_logits[:, 0]
    else:
        classes = cat([p.gt_classes for p in instances])
        logits = pred_mask_logits[torch.arange(num_masks, device=classes.device), classes]
    proposal_boxes = cat([p.proposal_boxes.tensor for p in instances])
    gt_boxes = cat([p.gt_boxes.tensor for p in instances])
    lab = cat([p.proposal_lab for p in instances]).to(logits.dtype)
    if lab.shape[-2:] != logits.shape[-2:]:
        raise ValueError(
            f"proposal_lab is {tuple(lab.shape[-2:])} but the mask logits are "
            f"{tuple(logits.shape[-2:])}: BoxInstROIHeads must pool colours at the mask size"
        )
    with torch.no_grad():
        box_masks = roi_box_masks(proposal_boxes, gt_boxes, side)
        similarity = colour_similarity(lab, dilation, theta)
        _, valid = neighbour_values(box_masks[:, None], dilation)
        in_box_edges = valid[None] & (box_masks[:, None] > 0)
        passing = (similarity >= threshold) & in_box_edges
        edge_fraction = passing.sum() / in_box_edges.sum().clamp(min=1)
    return {
        "loss_prj": box_projection_loss(logits.sigmoid(), box_masks),
        "loss_pairwise": pairwise_affinity_loss(logits, similarity, box_masks, threshold, dilation),
        "edge_fraction": edge_fraction,
    }
