"""Neighbour pairs of a pixel grid: the edge set shared by the pairwise terms of weaksup's losses.

Two methods put a pairwise term on the edges between each pixel and its 3 x 3 neighbours:

* BoxCaseg (Sec. 3.3.1, Eq. 2): the squared difference of the two probabilities, on 8-connected
  neighbours (dilation 1), each unordered pair once;
* BoxInst (Tian et al., CVPR 2021, Sec. 3.3): ``-log P(y_e = 1)`` (the two pixels take the same
  label) on the edges from each pixel to its 8 neighbours of a 3 x 3 kernel with dilation 2,
  weighted by the colour similarity of the same edges (Lab, ``exp(-||c_i - c_j|| / theta)``).

The per-edge quantities differ; what the two share, and what lives here once, is the edge set:
for every pixel, the values at its neighbours and whether each neighbour lies inside the grid.
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F

__all__ = ["neighbour_offsets", "neighbour_values"]


def neighbour_offsets(dilation: int = 1, unique: bool = False) -> List[Tuple[int, int]]:
    """The ``(dy, dx)`` offsets from a pixel to its neighbours in a dilated 3 x 3 kernel.

    Args:
        dilation: spacing of the kernel (1: the 8-connected neighbours; BoxInst uses 2).
        unique: keep one offset of each opposite pair (right, down and the two diagonals), so that
            every unordered pair of pixels is visited once; otherwise all 8 directed edges.
    """
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    offsets = [(dy * dilation, dx * dilation) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    if unique:
        offsets = [(dy, dx) for dy, dx in offsets if dy > 0 or (dy == 0 and dx > 0)]
    return offsets


def neighbour_values(
    x: torch.Tensor, dilation: int = 1, unique: bool = False
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The value of each pixel's neighbours, and which neighbours exist.

    Args:
        x: ``(N, C, H, W)`` maps.
        dilation, unique: the edge set, as :func:`neighbour_offsets`.

    Returns:
        ``values`` of shape ``(N, C, K, H, W)``: ``values[n, c, k, y, x]`` is
        ``x[n, c, y + dy_k, x + dx_k]`` (0 outside the grid), with ``K`` the number of offsets; and
        ``valid`` of shape ``(K, H, W)``, bool, True where that neighbour lies inside the grid.
    """
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) maps, got shape {tuple(x.shape)}")
    offsets = neighbour_offsets(dilation, unique)
    _, _, h, w = x.shape
    d = dilation
    padded = F.pad(x, (d, d, d, d))
    inside = F.pad(x.new_ones(1, 1, h, w), (d, d, d, d)) > 0
    values, valid = [], []
    for dy, dx in offsets:
        rows, cols = slice(d + dy, d + dy + h), slice(d + dx, d + dx + w)
        values.append(padded[:, :, rows, cols])
        valid.append(inside[0, 0, rows, cols])
    return torch.stack(values, dim=2), torch.stack(valid, dim=0)
