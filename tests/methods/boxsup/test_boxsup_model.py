"""BoxSup's network: dilated ResNet, atrous head, multi-scale testing, dense CRF (tiny inputs)."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model

from weaksup.utils.config_file import merge_config_file
from conftest import REPO_ROOT, configured_crf
from weaksup import add_weaksup_config
from weaksup.modeling.dense_crf import dense_crf

DEMO = REPO_ROOT / "configs" / "BoxSup" / "demo" / "pennfudan_boxsup_R18_GN.yaml"


def demo_cfg(**overrides):
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, str(DEMO))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32  # GN: 32 groups
    for k, v in overrides.items():
        cfg.merge_from_list([k, v])
    return cfg


@pytest.mark.parametrize("depth,stride", [(18, 16), (18, 8), (50, 16), (50, 8), (18, 32)])
def test_dilated_resnet_output_stride(depth, stride):
    cfg = demo_cfg()
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64 if depth == 18 else 256
    cfg.MODEL.RESNETS.OUTPUT_STRIDE = stride
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4", "res5"]
    backbone = build_backbone(cfg, ShapeSpec(channels=3))
    out = backbone(torch.zeros(1, 3, 64, 96))
    assert backbone.output_shape()["res5"].stride == stride
    assert tuple(out["res5"].shape[-2:]) == (64 // stride, 96 // stride)
    assert backbone.output_shape()["res4"].stride == min(stride, 16)
    cfg.MODEL.RESNETS.RES5_DILATION = 2
    with pytest.raises(ValueError, match="RES5_DILATION"):
        build_backbone(cfg, ShapeSpec(channels=3))


def _inputs(n=2, h=64, w=80):
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randint(0, 255, (3, h, w), generator=g).float(),
            "sem_seg": torch.randint(0, 2, (h, w), generator=g),
            "height": h + 10,
            "width": w - 8,
        }
        for _ in range(n)
    ]


def test_training_loss_and_a_clear_error_without_label_maps():
    torch.manual_seed(0)
    model = build_model(demo_cfg())
    losses = model(_inputs())
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()
    ignored = _inputs(1)
    ignored[0]["sem_seg"][:] = 255  # nothing labelled: zero loss, still connected to the graph
    loss = model(ignored)["loss_sem_seg"]
    assert loss.item() == 0 and loss.requires_grad
    unlabelled = [{k: v for k, v in x.items() if k != "sem_seg"} for x in _inputs(1)]
    with pytest.raises(ValueError, match="BoxSupLabelUpdate"):
        model(unlabelled)


def test_inference_single_and_multi_scale():
    torch.manual_seed(0)
    model = build_model(demo_cfg()).eval()
    inputs = _inputs()
    with torch.no_grad():
        single = model(inputs)
        model.test_scales = (0.8, 1.0, 1.2)  # BoxSup+
        multi = model(inputs)
        log_probs = model.pixel_log_probs(inputs[0]["image"])
    for out in (single, multi):
        assert tuple(out[0]["sem_seg"].shape) == (2, 74, 72)  # (classes, height, width)
        torch.testing.assert_close(out[0]["sem_seg"].sum(0), torch.ones(74, 72))
    assert not torch.allclose(single[0]["sem_seg"], multi[0]["sem_seg"])
    # BoxSup+ is the mean of the single-scale probabilities (resizing to the output is linear)
    per_scale = []
    with torch.no_grad():
        for scale in (0.8, 1.0, 1.2):
            model.test_scales = (scale,)
            per_scale.append(model(inputs)[0]["sem_seg"])
    torch.testing.assert_close(multi[0]["sem_seg"], sum(per_scale) / 3, atol=1e-5, rtol=0)
    torch.testing.assert_close(per_scale[1], single[0]["sem_seg"])
    assert tuple(log_probs.shape) == (2, 64, 80)
    torch.testing.assert_close(log_probs.exp().sum(0), torch.ones(64, 80))
    assert build_model(demo_cfg(**{"MODEL.BOXSUP.TEST_SCALES": "[0.8, 1.0, 1.2]"})).test_scales == (
        0.8,
        1.0,
        1.2,
    )


def test_dense_crf_is_off_by_default_and_refines_the_network_scores_when_on():
    assert not demo_cfg().MODEL.BOXSUP.CRF.ENABLED
    assert build_model(demo_cfg()).crf_iterations == 0
    torch.manual_seed(0)
    model = build_model(demo_cfg(**{"MODEL.BOXSUP.CRF.ENABLED": "True"})).eval()
    assert model.crf_iterations == 5
    x = _inputs(1)[0]
    x["height"], x["width"] = x["image"].shape[1:]  # output at the input size: no resize
    with torch.no_grad():
        with_crf = model([x])[0]["sem_seg"]
        model.crf_iterations = 0
        without = model([x])[0]["sem_seg"]
    # the model's CRF output is dense_crf of its own scores with the configured kernels
    expected = configured_crf(without, x["image"], demo_cfg().MODEL.BOXSUP.CRF)
    torch.testing.assert_close(with_crf, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(with_crf, without)


def test_dense_crf_snaps_labels_to_the_colour_edge():
    """Left half dark, right half bright; the unary says 'class 1' weakly from column 12 on, the
    true edge is at column 16. The CRF moves the boundary to the edge."""
    h, w = 16, 32
    image = torch.zeros(3, h, w)
    image[:, :, 16:] = 200.0
    logit = torch.full((h, w), -0.3)
    logit[:, 12:] = 0.3
    logit[:, 20:] = 2.0
    logit[:, :8] = -2.0
    log_probs = torch.log_softmax(torch.stack([-logit, logit]), dim=0)
    unary = log_probs.argmax(0)
    assert (unary[:, 12:16] == 1).all()  # the unary boundary is off by 4 columns
    q = dense_crf(log_probs, image, iterations=5)
    crf = q.argmax(0)
    assert (crf[:, :16] == 0).all() and (crf[:, 16:] == 1).all()
    torch.testing.assert_close(q.sum(0), torch.ones(h, w))
    torch.testing.assert_close(dense_crf(log_probs, image, iterations=0), log_probs.exp())
    no_pairwise = dense_crf(log_probs, image, bilateral=(0, 10, 5), positional=(0, 3))
    torch.testing.assert_close(no_pairwise, log_probs.exp())
    with pytest.raises(ValueError, match="same size"):
        dense_crf(log_probs, image[:, :8])
