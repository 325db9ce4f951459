"""Enhanced-FPN (Hybrid networks Sec. 2.3, Fig. 3-4): FPN plus short bottom-up paths.

FPN (Lin et al.) enhances low levels with high-level semantics through its top-down path, but the
top levels get nothing from below except through the whole backbone, "a long path from low-level
to topmost features" (Sec. 2.3). Enhanced-FPN "balances the enhancement of every feature map and
shortens the propagation distance of bottom feature maps" by connecting each lateral map to the
levels above it through "conv 3x3 / stride 2 + ReLU" (Fig. 4). The figures are not in the text;
the wiring implemented here, for input levels ``l = 2..5`` (strides 4..32) of a ResNet, is::

    L_l  = lateral_l(C_l)                                   # FPN's 1x1 lateral conv (+ norm)
    T_5  = L_5;   T_l = L_l + up2(T_{l+1})                  # FPN's top-down path (nearest x2)
    D_{j,j}   = L_j
    D_{j,i}   = ReLU(conv3x3/s2_{j,i}(D_{j,i-1}))  for i > j  # short path from level j upwards
    P_l  = output_l(T_l + sum_{j < l} D_{j,l})              # FPN's 3x3 output conv (+ norm)
    P_6  = maxpool(P_5)                                      # FPN's top block, as in Mask R-CNN

so every level is enhanced (the top ones by every lower lateral map, the bottom ones by the
top-down path as in FPN), and the lowest lateral map reaches P_5 through 3 stride-2 convs instead
of the ResNet's stages 3-5 and FPN's top-down path. Choices where the paper is silent:

* Each source level ``j`` has one chain of stride-2 convs, ``conv_{j,j+1} -> conv_{j,j+2} -> ...``;
  the output of its ``k``-th conv joins level ``j + k``. A path from ``j`` to ``i`` is therefore
  ``i - j`` convs long (only stride-2 convs, Fig. 4's connection type) and the chains of different
  sources share nothing: 6 extra convs for 4 levels (10 if every pair had its own chain, with no
  shorter path). FPN's top-down sums are computed first and the short paths are added after them,
  before the output convs, so the pyramid has no cycle and the output convs fuse both directions.
* The short-path convs use FPN's normalisation (``MODEL.FPN.NORM``; GN in the CPU demo, none in
  the paper config, where they have a bias) before the ReLU, and Caffe2's Xavier init as FPN's.
* Output names, channels and strides are FPN's (``p2..p6``), so RPN / ROI heads are unchanged and
  FPN vs Enhanced-FPN is an ablation by config: ``MODEL.BACKBONE.NAME``
  ``build_resnet_fpn_backbone`` vs ``build_resnet_enhanced_fpn_backbone``.

Extra parameters: ``sum_j (n - 1 - j)`` 3x3 convs of ``out_channels`` squared, i.e. 6 x 590k =
3.5M for 256 channels (R50-FPN backbone: 26.8M -> 30.3M; printed by ``benchmarks/train_speed.py``,
tested in ``tests/methods/hybrid/test_hybrid_enhanced_fpn.py``).
"""

from typing import Dict, List

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling.backbone import BACKBONE_REGISTRY, Backbone, build_resnet_backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
from torch import nn

__all__ = ["EnhancedFPN", "build_resnet_enhanced_fpn_backbone"]


class EnhancedFPN(FPN):
    """:class:`FPN` whose output levels also receive every lower lateral map through a chain of
    3x3 stride-2 convs + ReLU (module docstring). Arguments are :class:`FPN`'s."""

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: List[str],
        out_channels: int,
        norm: str = "",
        top_block=None,
        fuse_type: str = "sum",
        square_pad: int = 0,
    ):
        super().__init__(
            bottom_up, in_features, out_channels, norm, top_block, fuse_type, square_pad
        )
        levels = [int(f[1:]) for f in self._out_features[: len(in_features)]]  # p2.. -> 2..
        # short_paths[str(j)][k]: the k-th stride-2 conv of level j's chain, output at j + k + 1
        self.short_paths = nn.ModuleDict()
        for idx, level in enumerate(levels[:-1]):
            chain = nn.ModuleList()
            for _ in levels[idx + 1 :]:
                conv = Conv2d(
                    out_channels,
                    out_channels,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    bias=norm == "",
                    norm=get_norm(norm, out_channels),
                    activation=F.relu,
                )
                weight_init.c2_xavier_fill(conv)
                chain.append(conv)
            self.short_paths[str(level)] = chain

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.fuse(self.bottom_up(x))

    def fuse(self, bottom_up_features: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The pyramid from the bottom-up network's features (``in_features`` -> ``p*``)."""
        n = len(self.in_features)
        # FPN stores its convs coarse -> fine; index them fine -> coarse here
        laterals = [
            conv(bottom_up_features[f])
            for conv, f in zip(self.lateral_convs[::-1], self.in_features)
        ]
        merged = [None] * n
        merged[-1] = laterals[-1]
        for i in range(n - 2, -1, -1):  # FPN's top-down path
            merged[i] = laterals[i] + F.interpolate(merged[i + 1], scale_factor=2.0, mode="nearest")
            if self._fuse_type == "avg":
                merged[i] = merged[i] / 2
        for j, chain in enumerate(self.short_paths.values()):  # the short bottom-up paths
            y = laterals[j]
            for k, conv in enumerate(chain):
                y = conv(y)
                merged[j + k + 1] = merged[j + k + 1] + y
        results = [conv(m) for conv, m in zip(self.output_convs[::-1], merged)]
        if self.top_block is not None:
            if self.top_block.in_feature in bottom_up_features:
                top_in = bottom_up_features[self.top_block.in_feature]
            else:
                top_in = results[self._out_features.index(self.top_block.in_feature)]
            results.extend(self.top_block(top_in))
        return dict(zip(self._out_features, results))


@BACKBONE_REGISTRY.register()
def build_resnet_enhanced_fpn_backbone(cfg, input_shape: ShapeSpec) -> EnhancedFPN:
    """ResNet + Enhanced-FPN, configured exactly as Detectron2's ``build_resnet_fpn_backbone``
    (``MODEL.RESNETS.*``, ``MODEL.FPN.*``, P6 by max pooling): swapping the two names in
    ``MODEL.BACKBONE.NAME`` is the FPN / Enhanced-FPN ablation."""
    return EnhancedFPN(
        bottom_up=build_resnet_backbone(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
