"""HRNetV2 backbone (Wang et al., TPAMI 2020), the feature extractor of BoxCaseg (Sec. 3.2).

Module and parameter names follow the official implementation (``conv1``, ``layer1``,
``transition1``, ``stage2.0.branches...``, ``fuse_layers``), so the official ImageNet checkpoints
load with ``MODEL.WEIGHTS: <file>.pth?matching_heuristics=True``. The backbone returns all four
resolutions (``hr2``..``hr5``, strides 4..32); HRNetV2's representation head (upsample every
branch to stride 4 and concatenate) is done by the model that consumes them (e.g. BoxCaseg).
"""

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

__all__ = ["add_hrnet_config", "HRNet", "build_hrnet_backbone"]


def add_hrnet_config(cfg: CfgNode) -> CfgNode:
    """Add ``cfg.MODEL.HRNET`` (HRNetV2, ``MODEL.BACKBONE.NAME: "build_hrnet_backbone"``; BoxCaseg
    Sec. 3.2) in place and return the config."""
    _C = cfg
    _C.MODEL.HRNET = CfgNode()
    # Channels W of the highest-resolution branch; branches have W, 2W, 4W, 8W (W48 in the paper).
    _C.MODEL.HRNET.WIDTH = 48
    # Modules in stages 1-4 (HRNetV2: 1, 1, 4, 3; stage 1 must have one).
    _C.MODEL.HRNET.NUM_MODULES = [1, 1, 4, 3]
    # Residual blocks per branch in stages 1-4 (HRNetV2: 4 each).
    _C.MODEL.HRNET.NUM_BLOCKS = [4, 4, 4, 4]
    # Normalization of every conv ("BN", "SyncBN", "GN", "FrozenBN").
    _C.MODEL.HRNET.NORM = "BN"
    # Returned resolutions: hr2..hr5 are strides 4..32.
    _C.MODEL.HRNET.OUT_FEATURES = ["hr2", "hr3", "hr4", "hr5"]
    return cfg


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, ch: int, norm: str, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, ch, stride)
        self.bn1 = get_norm(norm, ch)
        self.conv2 = _conv3x3(ch, ch)
        self.bn2 = get_norm(norm, ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, ch: int, norm: str, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = get_norm(norm, ch)
        self.conv2 = _conv3x3(ch, ch, stride)
        self.bn2 = get_norm(norm, ch)
        self.conv3 = nn.Conv2d(ch, ch * 4, 1, bias=False)
        self.bn3 = get_norm(norm, ch * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


def _make_layer(block, in_ch: int, ch: int, num_blocks: int, norm: str) -> nn.Sequential:
    downsample = None
    if in_ch != ch * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, ch * block.expansion, 1, bias=False),
            get_norm(norm, ch * block.expansion),
        )
    layers = [block(in_ch, ch, norm, downsample=downsample)]
    layers += [block(ch * block.expansion, ch, norm) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks followed by all-to-all multi-resolution fusion; with
    ``outputs`` (branch indices), only those fused outputs are made (the others are None)."""

    def __init__(
        self, channels: List[int], num_blocks: int, norm: str, outputs: Optional[List[int]] = None
    ):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            _make_layer(BasicBlock, c, c, num_blocks, norm) for c in channels
        )
        self.fuse_layers = nn.ModuleList()
        for i in range(n):
            if outputs is not None and i not in outputs:
                self.fuse_layers.append(None)
                continue
            layers = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 conv, upsampled in forward
                    layers.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], 1, bias=False),
                            get_norm(norm, channels[i]),
                        )
                    )
                elif j == i:
                    layers.append(None)
                else:  # higher resolution: i - j strided 3x3 convs
                    convs = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out_ch = channels[i] if last else channels[j]
                        convs.append(
                            nn.Sequential(
                                _conv3x3(channels[j], out_ch, 2),
                                get_norm(norm, out_ch),
                                *([] if last else [nn.ReLU(inplace=True)]),
                            )
                        )
                    layers.append(nn.Sequential(*convs))
            self.fuse_layers.append(nn.ModuleList(layers))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            if fuse is None:
                out.append(None)
                continue
            y = xs[i]
            for j, layer in enumerate(fuse):
                if j < i:
                    y = y + layer(xs[j])
                elif j > i:
                    y = y + F.interpolate(
                        layer(xs[j]), size=xs[i].shape[-2:], mode="bilinear", align_corners=False
                    )
            out.append(self.relu(y))
        return out


def _make_transition(pre: List[int], cur: List[int], norm: str) -> nn.ModuleList:
    """Adapt existing branches (``None`` if unchanged) and add a strided branch for each new one."""
    layers = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(
                None
                if c == pre[i]
                else nn.Sequential(_conv3x3(pre[i], c), get_norm(norm, c), nn.ReLU(inplace=True))
            )
        else:
            convs = []
            for k in range(i + 1 - len(pre)):
                out_ch = c if k == i - len(pre) else pre[-1]
                convs.append(
                    nn.Sequential(
                        _conv3x3(pre[-1], out_ch, 2), get_norm(norm, out_ch), nn.ReLU(inplace=True)
                    )
                )
            layers.append(nn.Sequential(*convs))
    return nn.ModuleList(layers)


class HRNet(Backbone):
    """HRNetV2: a stride-4 stem, a bottleneck stage, then stages of 2, 3 and 4 parallel branches of
    widths ``W, 2W, 4W, 8W``, every module ending in multi-resolution fusion.

    Outputs ``hr2``, ``hr3``, ``hr4``, ``hr5`` (strides 4, 8, 16, 32; channels ``W, 2W, 4W, 8W``).
    """

    def __init__(
        self,
        width: int = 48,
        num_modules: List[int] = (1, 1, 4, 3),
        num_blocks: List[int] = (4, 4, 4, 4),
        norm: str = "BN",
        out_features: Optional[List[str]] = None,
    ):
        """
        Args:
            width: channels ``W`` of the highest-resolution branch (18, 32, 48 in the paper).
            num_modules: modules of stages 1-4 (stage 1 must have one; HRNetV2: 1, 1, 4, 3).
            num_blocks: residual blocks per branch in stages 1-4 (HRNetV2: 4 each).
            norm: Detectron2 norm name ("BN", "SyncBN", "GN", "FrozenBN").
            out_features: subset of ``hr2``..``hr5`` (default all); the last module fuses only
                these, so every parameter trains (DDP requires it) and no unused map is made.
        """
        super().__init__()
        if len(num_modules) != 4 or len(num_blocks) != 4 or num_modules[0] != 1:
            raise ValueError(f"bad HRNet stages: modules {num_modules}, blocks {num_blocks}")
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = get_norm(norm, 64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = get_norm(norm, 64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, 64, 64, num_blocks[0], norm)
        pre = [64 * Bottleneck.expansion]
        names = [f"hr{i + 2}" for i in range(4)]
        self._out_features = list(out_features or names)
        for n in self._out_features:
            if n not in names:
                raise ValueError(f"unknown HRNet output {n!r}; available: {names}")
        last_outputs = [names.index(n) for n in self._out_features]
        for s in (2, 3, 4):
            cur = [width * 2**i for i in range(s)]
            setattr(self, f"transition{s - 1}", _make_transition(pre, cur, norm))
            count = num_modules[s - 1]
            modules = [
                HighResolutionModule(
                    cur, num_blocks[s - 1], norm, last_outputs if (s, m) == (4, count - 1) else None
                )
                for m in range(count)
            ]
            setattr(self, f"stage{s}", nn.Sequential(*modules))
            pre = cur
        self._out_feature_strides = {n: 4 * 2**i for i, n in enumerate(names)}
        self._out_feature_channels = {n: width * 2**i for i, n in enumerate(names)}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        xs = [self.layer1(self.relu(self.bn2(self.conv2(x))))]
        for s in (2, 3, 4):
            transition = getattr(self, f"transition{s - 1}")
            xs = [
                xs[min(i, len(xs) - 1)] if t is None else t(xs[min(i, len(xs) - 1)])
                for i, t in enumerate(transition)
            ]
            xs = getattr(self, f"stage{s}")(xs)
        return {f"hr{i + 2}": x for i, x in enumerate(xs) if f"hr{i + 2}" in self._out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            n: ShapeSpec(
                channels=self._out_feature_channels[n], stride=self._out_feature_strides[n]
            )
            for n in self._out_features
        }

    @property
    def size_divisibility(self) -> int:
        return 32


@BACKBONE_REGISTRY.register()
def build_hrnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> HRNet:
    """HRNetV2 from ``cfg.MODEL.HRNET`` (``MODEL.BACKBONE.NAME: build_hrnet_backbone``)."""
    if input_shape.channels != 3:
        raise ValueError(f"HRNet takes 3-channel images, got {input_shape.channels}")
    h = cfg.MODEL.HRNET
    return HRNet(h.WIDTH, h.NUM_MODULES, h.NUM_BLOCKS, h.NORM, h.OUT_FEATURES)
