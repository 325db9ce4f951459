"""DASNet segmentation module (Sec. 3.4.1): a top-down deconvolution network over ``F^l``."""

import math
from typing import List

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import ConvTranspose2d, ShapeSpec, get_norm
from torch import nn

__all__ = ["DASNetDecoder", "semantic_loss"]


def _deconv(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    """x2 deconvolution (kernel 4, stride 2, padding 1), normalization and ReLU."""
    layers = [
        ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not norm),
        get_norm(norm, out_channels),
        nn.ReLU(inplace=True),
    ]
    weight_init.c2_msra_fill(layers[0])
    return nn.Sequential(*[m for m in layers if m is not None])


class DASNetDecoder(nn.Module):
    """Top-down decoder of Sec. 3.4.1 with the two predictors of Secs. 3.4.1 and 3.4.2.

    ``f_m`` (the coarsest map) is deconvolved to the size and channel number of ``f_{m-1}`` and
    concatenated with it; the concatenation is deconvolved and concatenated with ``f_{m-2}``, and
    so on down to ``f_1``. Further deconvolutions (``head_dim`` channels) bring the last
    concatenation to the network-input resolution ("deconv1"), where 1x1 convolutions predict the
    2-channel (background, foreground) class-agnostic map and the ``2 k^2`` position-sensitive
    inside/outside maps (Sec. 3.4.2).
    """

    def __init__(self, input_shapes: List[ShapeSpec], head_dim: int, norm: str, ps_grid: int):
        """
        Args:
            input_shapes: shapes of ``f_1 .. f_m``, finest first; strides must double per level.
            head_dim: channels of the deconvolutions above ``f_1``.
            norm: normalization after each deconvolution ("" for none).
            ps_grid: ``k`` of the position-sensitive grid.
        """
        super().__init__()
        strides = [s.stride for s in input_shapes]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"DASNet features must halve in resolution per level, got {strides}")
        if strides[0] & (strides[0] - 1):
            raise ValueError(f"the finest DASNet feature needs a power-of-2 stride: {strides[0]}")
        channels = [s.channels for s in input_shapes]
        self.lateral = nn.ModuleList()  # lateral[k] brings level k+1's output to level k
        in_channels = channels[-1]
        for c in reversed(channels[:-1]):
            self.lateral.insert(0, _deconv(in_channels, c, norm))
            in_channels = 2 * c
        self.to_input_size = nn.Sequential(
            *[
                _deconv(in_channels if i == 0 else head_dim, head_dim, norm)
                for i in range(int(math.log2(strides[0])))
            ]
        )
        out_channels = head_dim if len(self.to_input_size) else in_channels
        self.semantic_predictor = nn.Conv2d(out_channels, 2, 1)
        self.ps_predictor = nn.Conv2d(out_channels, 2 * ps_grid**2, 1)
        for layer in (self.semantic_predictor, self.ps_predictor):
            nn.init.normal_(layer.weight, std=0.001)
            nn.init.constant_(layer.bias, 0)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            features: class-specific maps ``f_k^l`` (Q, C_k, H_k, W_k), finest first.

        Returns:
            the decoder's top features (Q, D, H, W) at the network-input size. The predictors
            turn them into semantic logits (``semantic_predictor``: (Q, 2, H, W), channel 1 the
            foreground) and position-sensitive maps (``ps_predictor``: (Q, 2 k^2, H, W), the k^2
            inside maps then the k^2 outside maps, each group row-major over the grid cells).
        """
        x = features[-1]
        for k in range(len(features) - 2, -1, -1):
            # a level of odd size below the padding's divisor (e.g. RetinaNet's p6 = ceil(p5 / 2))
            # upsamples one cell past the finer level: crop to it
            height, width = features[k].shape[-2:]
            x = torch.cat([self.lateral[k](x)[..., :height, :width], features[k]], dim=1)
        return self.to_input_size(x)


def semantic_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_value: int) -> torch.Tensor:
    """Pixel-wise 2-class softmax loss (Sec. 3.4.1), mean over the pixels not ignored.

    Args:
        logits: (Q, 2, H, W); targets: (Q, H, W) long, 1 foreground, 0 background and
            ``ignore_value`` for pixels outside the class-specific boxes (Sec. 3.5) or unlabelled.
    """
    valid = int((targets != ignore_value).sum())
    if valid == 0:
        return logits.sum() * 0
    loss = F.cross_entropy(logits, targets, ignore_index=ignore_value, reduction="sum")
    return loss / valid
