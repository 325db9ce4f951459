"""Soft (multi-label) cross-entropy of Wei et al. (Eq. 4), shared by HCP and Network_A."""

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["soft_cross_entropy"]


def soft_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: Optional[torch.Tensor] = None,
    dim: int = 1,
) -> torch.Tensor:
    """Cross-entropy against a probability target, averaged over positions (Wei et al. Eq. 4).

    ``J = -eta * sum_t sum_(i,j) sum_m p_hat^m log p^m`` with ``p = softmax(logits)`` along
    ``dim`` (Eq. 3) and ``eta = 1 / (number of positions)``: the mean over every position (all
    dims but ``dim``) of ``-sum_m target^m log p^m``. With one-hot targets it equals
    ``F.cross_entropy``; HCP's multi-label loss is the same function on ``(N, C)`` image scores
    against the normalised label vectors ``y / |y|_1`` (Wei et al. 2014, Sec. 3).

    Args:
        logits: ``(N, C, ...)`` scores (class axis ``dim``).
        target: same shape, non-negative, summing to 1 along ``dim`` where valid.
        valid: bool mask of the positions that count, shape of ``logits`` without ``dim``;
            None: all. No valid position gives ``0 * logits.sum()`` (zero, still connected to
            the graph so DDP sees every parameter used).
    """
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != logits {tuple(logits.shape)}")
    per_position = -(target * F.log_softmax(logits.float(), dim=dim)).sum(dim=dim)
    if valid is None:
        return per_position.mean()
    if not valid.any():
        return 0.0 * logits.sum()
    return per_position[valid].mean()
