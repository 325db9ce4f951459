"""Enhanced-FPN (Hybrid Sec. 2.3): FPN's outputs (names, shapes, strides, channels), the short
bottom-up path (a gradient of the top level reaches the lowest lateral input, which FPN's top
level never sees), the wiring's parameter count, and the switch by config."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone, build_backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool

from weaksup.utils.config_file import merge_config_file
from weaksup import add_weaksup_config
from weaksup.modeling.backbone import EnhancedFPN

IN_FEATURES = ["res2", "res3", "res4", "res5"]
CHANNELS = {"res2": 8, "res3": 16, "res4": 24, "res5": 32}


class GivenFeatures(Backbone):
    """A bottom-up 'network' that returns the features it is given (so gradients w.r.t. each
    lateral input can be read), with ResNet's strides."""

    def __init__(self):
        super().__init__()
        self.features = {}

    def forward(self, x):
        return self.features

    def output_shape(self):
        return {
            f: ShapeSpec(channels=c, stride=2 ** (i + 2))
            for i, (f, c) in enumerate(CHANNELS.items())
        }


def _features(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        f: torch.randn(
            1, c, size // 2 ** (i + 2), size // 2 ** (i + 2), generator=g
        ).requires_grad_()
        for i, (f, c) in enumerate(CHANNELS.items())
    }


def _pyramid(cls, norm="", channels=16):
    torch.manual_seed(0)
    return cls(
        GivenFeatures(), IN_FEATURES, out_channels=channels, norm=norm, top_block=LastLevelMaxPool()
    )


@pytest.mark.parametrize("norm", ["", "GN"])
def test_outputs_equal_fpn_shapes_and_strides(norm):
    fpn, efpn = _pyramid(FPN, norm, 32), _pyramid(EnhancedFPN, norm, 32)  # GN: 32 groups
    assert efpn.output_shape() == fpn.output_shape()
    assert [s.stride for s in efpn.output_shape().values()] == [4, 8, 16, 32, 64]
    assert efpn.size_divisibility == fpn.size_divisibility == 32
    feats = _features(128)
    fpn.bottom_up.features = efpn.bottom_up.features = feats
    a, b = fpn(None), efpn(None)
    assert list(a) == list(b) == ["p2", "p3", "p4", "p5", "p6"]
    for k in a:
        assert a[k].shape == b[k].shape
        assert b[k].shape[-1] == 128 // efpn.output_shape()[k].stride
    # same FPN weights (same seed, built first): the bottom level is FPN's, every higher one
    # also gets the short paths
    assert torch.equal(a["p2"], b["p2"])
    for k in ("p3", "p4", "p5", "p6"):
        assert not torch.allclose(a[k], b[k]), k


def test_short_path_carries_gradient_from_top_to_lowest_lateral_input():
    for cls, reaches in ((FPN, False), (EnhancedFPN, True)):
        model = _pyramid(cls)
        feats = _features(64, seed=1)
        model.bottom_up.features = feats
        model(None)["p5"].pow(2).sum().backward()
        grad = feats["res2"].grad
        if reaches:
            assert grad is not None and grad.abs().sum() > 0, cls.__name__
        else:  # FPN's top level depends only on res5
            assert grad is None or grad.abs().sum() == 0, cls.__name__
    # every lower lateral map reaches p5 and p6 through the short paths
    model = _pyramid(EnhancedFPN)
    for level in ("res2", "res3", "res4"):
        feats = _features(64, seed=2)
        model.bottom_up.features = feats
        model.zero_grad()
        model(None)["p6"].sum().backward()
        assert feats[level].grad.abs().sum() > 0, level


def test_wiring_parameter_count():
    """One chain of 3x3 stride-2 convs per lower level: 3 + 2 + 1 = 6 convs of C x C (+ bias)."""
    fpn, efpn = _pyramid(FPN), _pyramid(EnhancedFPN)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    c = 16
    assert count(efpn) - count(fpn) == 6 * (9 * c * c + c)
    assert [len(chain) for chain in efpn.short_paths.values()] == [3, 2, 1]
    assert all(
        conv.stride == (2, 2) and conv.kernel_size == (3, 3)
        for chain in efpn.short_paths.values()
        for conv in chain
    )


def test_switch_by_config_on_resnet():
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, "configs/PseudoMasks/demo/pennfudan_box_mask_rcnn_R18_FPN_GN.yaml")
    shapes, counts = {}, {}
    for name in ("build_resnet_fpn_backbone", "build_resnet_enhanced_fpn_backbone"):
        cfg.MODEL.BACKBONE.NAME = name
        backbone = build_backbone(cfg)
        out = backbone(torch.zeros(1, 3, 96, 128))
        shapes[name] = {k: tuple(v.shape) for k, v in out.items()}
        counts[name] = sum(p.numel() for p in backbone.parameters())
        assert isinstance(backbone, EnhancedFPN) == ("enhanced" in name)
    assert shapes["build_resnet_fpn_backbone"] == shapes["build_resnet_enhanced_fpn_backbone"]
    c = cfg.MODEL.FPN.OUT_CHANNELS  # GN: no conv bias, 2 * C norm parameters per conv
    extra = counts["build_resnet_enhanced_fpn_backbone"] - counts["build_resnet_fpn_backbone"]
    assert extra == 6 * (9 * c * c + 2 * c)
    assert 0 < extra / counts["build_resnet_fpn_backbone"] < 0.1  # R18, 128 channels: ~4 %
