"""Fully-connected CRF post-processing by mean-field inference, in torch (CPU or GPU).

Krähenbühl & Koltun (NIPS 2011), as DeepLab-CRF (Chen et al. 2015) and BoxSup's FCN baseline
(Sec. 3) apply it to the network's scores: unary ``-log p(l_i)``, Potts pairwise
``mu(l_i, l_j) = [l_i != l_j]`` with the kernel

    k(i, j) = w_bi exp(-|p_i - p_j|^2 / 2 s_xy^2 - |I_i - I_j|^2 / 2 s_rgb^2)
            + w_pos exp(-|p_i - p_j|^2 / 2 s_pos^2).

Mean-field update: ``Q <- softmax(log p + sum_j k(i, j) Q_j)`` (the Potts message of label ``l``
is the total message minus its own, and the total is the same for every label).

Exact fully-connected filtering needs the permutohedral lattice (``pydensecrf``, C++); that
package ships as source only (no wheel; it builds with a C++ compiler), so weaksup does not depend
on it. Here the kernel is truncated to a ``(2r + 1)^2`` window of pixel offsets spaced
``dilation`` apart, as ConvCRF (Teichmann & Cipolla, BMVC 2019) does: exact for the positional
kernel, an approximation for the long-range bilateral one. Cost: ``(2r + 1)^2`` shifted products
of the ``(C, H, W)`` scores per iteration, memory ``O(C H W)``.
"""

from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ["dense_crf"]


def _offset_kernels(
    image: torch.Tensor,
    radius: int,
    dilation: int,
    bilateral: Tuple[float, float, float],
    positional: Tuple[float, float],
):
    """Per window offset ``(dy, dx)`` (``(0, 0)`` excluded): the kernel ``k(i, i + offset)`` as
    an ``(H, W)`` map (0 where ``i + offset`` leaves the image)."""
    w_bi, s_xy, s_rgb = bilateral
    w_pos, s_pos = positional
    _, h, w = image.shape
    pad = radius * dilation
    padded = F.pad(image[None], (pad, pad, pad, pad), mode="replicate")[0]
    inside = F.pad(image.new_ones(1, 1, h, w), (pad, pad, pad, pad))[0, 0]
    out = []
    for oy in range(-radius, radius + 1):
        for ox in range(-radius, radius + 1):
            if oy == 0 and ox == 0:
                continue
            dy, dx = oy * dilation, ox * dilation
            ys, xs = slice(pad + dy, pad + dy + h), slice(pad + dx, pad + dx + w)
            dist2 = float(dy * dy + dx * dx)
            color2 = ((image - padded[:, ys, xs]) ** 2).sum(dim=0)
            k = w_bi * torch.exp(-dist2 / (2 * s_xy**2) - color2 / (2 * s_rgb**2))
            k = k + w_pos * torch.exp(torch.tensor(-dist2 / (2 * s_pos**2)))
            out.append(((dy, dx), k * inside[ys, xs]))
    return out, pad


def dense_crf(
    log_probs: torch.Tensor,
    image: torch.Tensor,
    iterations: int = 5,
    bilateral: Tuple[float, float, float] = (4.0, 50.0, 5.0),
    positional: Tuple[float, float] = (3.0, 3.0),
    radius: int = 5,
    dilation: int = 2,
) -> torch.Tensor:
    """Mean-field inference of the dense CRF (module docstring).

    Args:
        log_probs: ``(C, H, W)`` log-probabilities of the network (the unary is their negative).
        image: ``(3, H, W)`` colour image, 0-255, of the same size.
        iterations: mean-field iterations (0 returns ``softmax(log_probs)``).
        bilateral: ``(w_bi, s_xy, s_rgb)``; positional: ``(w_pos, s_pos)``. Defaults are
            DeepLab-CRF's ``w = 4, s_rgb = 5, w_pos = 3, s_pos = 3``, with ``s_xy`` reduced to the
            window's reach (``radius * dilation`` pixels).
        radius, dilation: the truncated window.

    Returns:
        ``(C, H, W)`` marginals ``Q`` (they sum to 1 over classes).
    """
    if log_probs.dim() != 3 or image.shape != (3,) + tuple(log_probs.shape[1:]):
        raise ValueError(
            f"dense_crf expects (C, H, W) scores and a (3, H, W) image of the same size, got "
            f"{tuple(log_probs.shape)} and {tuple(image.shape)}"
        )
    q = F.softmax(log_probs, dim=0)
    if iterations <= 0:
        return q
    kernels, pad = _offset_kernels(image.to(log_probs), radius, dilation, bilateral, positional)
    _, h, w = log_probs.shape
    for _ in range(iterations):
        padded = F.pad(q, (pad, pad, pad, pad))
        message = torch.zeros_like(q)
        for (dy, dx), k in kernels:
            message += k * padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
        q = F.softmax(log_probs + message, dim=0)
    return q
