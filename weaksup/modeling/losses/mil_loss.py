"""Multiple-instance-learning loss of BBTP / BoxCaseg (BoxCaseg Sec. 3.1 and 3.3.1, Eq. 1-2)."""

import torch
import torch.nn.functional as F

from .pairwise import neighbour_values

__all__ = ["mil_unary_loss", "pairwise_smoothness_loss"]


def mil_unary_loss(logits: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The unary MIL term of Eq. 1: bag classification with max-pooled scores.

    For each patch, every row and every column is one bag:

    * a row that crosses the box (``y0 <= y < y1``) is a *positive* bag made of its pixels inside
      the box (``x0 <= x < x1``): the tightness prior says each holds an object pixel;
    * a row outside the box is a *negative* bag made of all its pixels; columns likewise.

    The bag score is the max of the pixel probabilities, i.e. ``sigmoid(max logit)``, and each bag
    takes the binary cross-entropy against its label. The loss of a patch is the mean over its
    bags (BBTP's sum divided by the bag count, so patch size does not scale the loss); the result
    is the mean over patches. A box empty along one axis has no positive bags.

    Args:
        logits: ``(N, H, W)`` pixel logits.
        boxes: ``(N, 4)`` integer pixel boxes ``x0, y0, x1, y1`` (``x1``, ``y1`` exclusive),
            inside ``[0, W] x [0, H]``.
    """
    n, h, w = logits.shape
    boxes = boxes.to(device=logits.device)
    ys = torch.arange(h, device=logits.device)
    xs = torch.arange(w, device=logits.device)
    in_row = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])  # (N, H)
    in_col = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])  # (N, W)
    lowest = torch.finfo(logits.dtype).min
    row_in_box = logits.masked_fill(~in_col[:, None, :], lowest).amax(dim=2)
    col_in_box = logits.masked_fill(~in_row[:, :, None], lowest).amax(dim=1)
    # positive bags need a non-empty box along the other axis
    pos_row = in_row & in_col.any(dim=1, keepdim=True)
    pos_col = in_col & in_row.any(dim=1, keepdim=True)
    bag_logits = torch.cat(
        [
            torch.where(pos_row, row_in_box, logits.amax(dim=2)),
            torch.where(pos_col, col_in_box, logits.amax(dim=1)),
        ],
        dim=1,
    )
    labels = torch.cat([pos_row, pos_col], dim=1)
    valid = torch.cat([pos_row | ~in_row, pos_col | ~in_col], dim=1).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(bag_logits, labels.to(logits.dtype), reduction="none")
    per_patch = (bce * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
    return per_patch.mean()


def pairwise_smoothness_loss(probs: torch.Tensor) -> torch.Tensor:
    """The pairwise term of Eq. 2: squared probability difference of 8-connected neighbours.

    The mean over all neighbouring pixel pairs of each ``(N, H, W)`` map (each unordered pair once:
    right, down and the two diagonals; the edge set of :mod:`.pairwise`, shared with BoxInst),
    averaged over the batch. Computed in float32 whatever ``probs`` is (under AMP a float16 sum
    of a map's squared differences overflows to inf).
    """
    probs = probs.float()
    neighbours, valid = neighbour_values(probs[:, None], dilation=1, unique=True)
    sq_diff = (probs[:, None, None] - neighbours).pow(2) * valid
    return (sq_diff.flatten(1).sum(dim=1) / valid.sum().clamp(min=1)).mean()
