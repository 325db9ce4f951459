"""BoxCaseg network: MIL loss (Eq. 1) and pairwise term (Eq. 2) against direct computations,
one-way weight transfer (Sec. 3.3.2), HRNetV2 outputs, box-conditioned inference."""

import math

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from conftest import small_boxcaseg_cfg
from weaksup.modeling.backbone import HRNet
from weaksup.modeling.losses import mil_unary_loss, pairwise_smoothness_loss


def _bce(logit: float, label: int) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -math.log(p) if label else -math.log(1 - p)


def _mil_brute_force(logits, boxes):
    """Loop over every row and column bag of every patch."""
    per_patch = []
    for lg, (x0, y0, x1, y1) in zip(logits.tolist(), boxes.tolist()):
        h, w = len(lg), len(lg[0])
        losses = []
        for y in range(h):  # rows
            if y0 <= y < y1:
                if x1 > x0:  # positive bag: the row's pixels inside the box
                    losses.append(_bce(max(lg[y][x0:x1]), 1))
            else:  # negative bag: the whole row
                losses.append(_bce(max(lg[y]), 0))
        for x in range(w):  # columns
            col = [lg[y][x] for y in range(h)]
            if x0 <= x < x1:
                if y1 > y0:
                    losses.append(_bce(max(col[y0:y1]), 1))
            else:
                losses.append(_bce(max(col), 0))
        per_patch.append(sum(losses) / max(len(losses), 1))
    return sum(per_patch) / len(per_patch)


def test_mil_loss_equals_brute_force_over_bags():
    torch.manual_seed(0)
    logits = torch.randn(5, 7, 9) * 3
    boxes = torch.tensor(
        [[2, 1, 6, 5], [0, 0, 9, 7], [3, 2, 4, 3], [4, 2, 4, 6], [0, 0, 0, 0]]  # full, 1px, empty
    )
    got = mil_unary_loss(logits, boxes).item()
    assert got == pytest.approx(_mil_brute_force(logits, boxes), rel=1e-5)


def test_mil_loss_gradient_reaches_only_bag_maxima():
    logits = torch.zeros(1, 4, 4, requires_grad=True)
    with torch.no_grad():
        logits[0, 1, 2] = 5.0
    mil_unary_loss(logits, torch.tensor([[1, 1, 3, 3]])).backward()
    assert logits.grad[0, 1, 2] < 0  # max of positive row 1 and column 2: pushed up


def test_pairwise_term_equals_direct_eight_neighbour_sum():
    torch.manual_seed(1)
    probs = torch.rand(2, 5, 6)
    expected = []
    for p in probs.tolist():
        total, count = 0.0, 0
        for y in range(5):
            for x in range(6):
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if (dy or dx) and 0 <= ny < 5 and 0 <= nx < 6:
                            total += (p[y][x] - p[ny][nx]) ** 2
                            count += 1
        expected.append(total / count)
    got = pairwise_smoothness_loss(probs).item()
    assert got == pytest.approx(sum(expected) / 2, rel=1e-5)


def test_pairwise_smoothness_of_float16_probabilities_is_the_float32_value():
    """Under AMP the head's probabilities come in float16; a 288 px patch of a noisy map has
    ~330k pairs whose squared differences add up past float16's 65504."""
    torch.manual_seed(0)
    probs = torch.randint(0, 2, (2, 288, 288)).float()
    got = pairwise_smoothness_loss(probs.half())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(pairwise_smoothness_loss(probs).item(), rel=1e-6)


def _patches(n_box, n_salient, size=32):
    torch.manual_seed(2)
    out = []
    for i in range(n_box + n_salient):
        x = {"image": torch.randint(0, 255, (3, size, size), dtype=torch.uint8)}
        x["mil_box"] = torch.tensor([4, 6, 20, 28])
        if i >= n_box:
            mask = torch.zeros(size, size, dtype=torch.uint8)
            mask[6:28, 4:20] = 1
            x["salient_mask"] = mask
        out.append(x)
    return out


def test_weight_transfer_sends_no_gradient_into_the_weak_head():
    model = build_model(small_boxcaseg_cfg())
    losses = model(_patches(2, 2))
    assert set(losses) == {"loss_mil", "loss_pairwise", "loss_pixel"}
    losses["loss_pixel"].backward()
    for p in model.weak_head.parameters():
        assert p.grad is None or not p.grad.any()
    assert any(p.grad is not None and p.grad.any() for p in model.weight_transfer.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.backbone.parameters())
    # the transferred head has no conv weights of its own: they are the MLP's output
    model.zero_grad(set_to_none=True)
    model(_patches(2, 2))["loss_mil"].backward()
    assert all(p.grad is None for p in model.weight_transfer.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.weak_head.parameters())


def test_initial_transferred_filters_are_distinct_and_at_the_weak_filters_scale():
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BOXCASEG.TRANSFER_HIDDEN_DIM = 32
    torch.manual_seed(0)
    model = build_model(cfg)
    (weight, _), _ = model.weak_head.conv_params()
    (transferred, bias), _ = model.transferred_params()
    filters = torch.nn.functional.normalize(torch.cat([transferred.flatten(1), bias[:, None]], 1))
    cos = (filters @ filters.T).abs()
    n = len(cos)
    # not one shared vector (PyTorch's default MLP init gives |cos| ~ 0.99 between all filters)
    assert (cos.sum() - n) / (n * n - n) < 0.5
    assert 0.2 < transferred.std() / weight.std() < 5


@pytest.mark.parametrize("norm", ["BN", ""])
def test_transferred_norm_undoes_a_shift_shared_by_all_filters(norm):
    """One MLP makes every filter of a layer, so one change of its output bias moves all of them
    at once: the CPU failure (docs/boxcaseg.md) was every hidden ReLU of the transferred head
    dead, a constant map. Its own BN (``TRANSFER_NORM``) removes a pre-activation shift shared
    by all filters; without a norm the same shift leaves the output bias alone."""
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BOXCASEG.TRANSFER_NORM = norm
    torch.manual_seed(0)
    model = build_model(cfg).train()
    with torch.no_grad():
        feats = model.features(torch.randn(4, 3, 32, 32))
        before = model.transferred_head(feats, model.transferred_params())
        model.weight_transfer.mlps[0][2].bias[-1] -= 100.0  # the bias of every hidden filter
        after = model.transferred_head(feats, model.transferred_params())
    assert before.std() > 1e-3
    model.eval()  # head_activity as the tool runs it: BN on running statistics
    activity = model.head_activity(torch.randn(4, 3, 32, 32))
    if norm:
        torch.testing.assert_close(after, before, atol=1e-3, rtol=0)
    else:
        assert after.std() < 1e-6  # a constant map
        assert activity["transferred"] == (0.0, 0.0)
    assert activity["weak"][0] > 0.5 and 0 < activity["weak"][1] < 1


def test_loss_of_box_only_batch_is_connected_to_every_parameter():
    model = build_model(small_boxcaseg_cfg())
    losses = model(_patches(3, 0))
    assert losses["loss_pixel"].item() == 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_hrnet_outputs_all_resolutions():
    net = HRNet(width=8, num_modules=[1, 1, 1, 1], num_blocks=[1, 1, 1, 1])
    feats = net(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "hr2": (1, 8, 16, 24),
        "hr3": (1, 16, 8, 12),
        "hr4": (1, 32, 4, 6),
        "hr5": (1, 64, 2, 3),
    }
    assert {k: s.stride for k, s in net.output_shape().items()} == {
        "hr2": 4,
        "hr3": 8,
        "hr4": 16,
        "hr5": 32,
    }


def test_any_detectron2_backbone_by_config_resnet_fpn():
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.BOXCASEG.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    model = build_model(cfg)
    assert torch.isfinite(sum(model(_patches(1, 1)).values()))


def test_lite0_fpn_demo_config_builds_the_imagenet_trunk():
    """configs/BoxCaseg/demo_pennfudan_ecssd_Lite0_FPN.yaml: the EfficientNet-Lite0 trunk under
    an FPN, p2..p5 fused at stride 4 (4 x 64 channels into each head); a patch side the FPN's
    stride 32 does not divide is refused by name."""
    from conftest import REPO_ROOT
    from weaksup.config import load_config
    from weaksup.modeling.backbone import EfficientNetLite

    path = str(REPO_ROOT / "configs" / "BoxCaseg" / "demo_pennfudan_ecssd_Lite0_FPN.yaml")
    model = build_model(load_config(path, ["MODEL.DEVICE", "cpu"]))
    assert isinstance(model.backbone.bottom_up, EfficientNetLite)
    assert model.weak_head.layers[0].in_channels == 256
    feats = model.features(torch.zeros(2, 3, 96, 96))
    assert feats.shape == (2, 256, 24, 24)
    with pytest.raises(ValueError, match="INPUT.BOXCASEG.PATCH_SIZE 80 is not a multiple of 32"):
        build_model(load_config(path, ["MODEL.DEVICE", "cpu", "INPUT.BOXCASEG.PATCH_SIZE", "80"]))


def test_inference_gives_one_pasted_mask_per_box():
    model = build_model(small_boxcaseg_cfg()).eval()
    gt = Instances((50, 70))
    gt.gt_boxes = Boxes(torch.tensor([[5.0, 5.0, 40.0, 45.0], [30.0, 10.0, 70.0, 30.0]]))
    gt.gt_classes = torch.tensor([0, 0])
    gt.gt_index = torch.tensor([0, 2])
    image = torch.randint(0, 255, (3, 50, 70), dtype=torch.uint8)
    out = model([{"image": image, "instances": gt}])[0]["instances"]
    assert out.pred_masks.shape == (2, 50, 70) and out.pred_masks.dtype == torch.bool
    assert out.gt_index.tolist() == [0, 2]
    assert not out.pred_masks[0, 46:].any() and not out.pred_masks[1, :, :29].any()
    # predict_patches: sigmoid(alpha * transferred + (1 - alpha) * salient logits) (Eq. 3)
    patches = model.crop_patches(image, gt.gt_boxes.tensor)
    probs = model.predict_patches(patches)
    feats = model.features(patches)
    size = patches.shape[-2:]
    sal = model._upsample(model.salient_head(feats), size)
    trans = model._upsample(model.transferred_head(feats, model.transferred_params()), size)
    torch.testing.assert_close(probs, (0.7 * trans + 0.3 * sal).sigmoid(), atol=1e-5, rtol=0)
    assert probs.shape == (2, 32, 32) and not torch.allclose(sal, trans)


def test_rescaled_probabilities_set_each_patch_to_zero_one_before_the_threshold():
    from weaksup.methods.boxcaseg.meta_arch import rescale_min_max

    probs = torch.tensor([[[0.2, 0.3], [0.4, 0.6]], [[0.5, 0.5], [0.5, 0.5]]])
    expected = torch.tensor([[[0.0, 0.25], [0.5, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(rescale_min_max(probs), expected)
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BOXCASEG.HEADS = ["salient"]
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    with torch.no_grad():
        plain.salient_head.layers[-1].bias.fill_(-3.0)  # sure of background everywhere
    cfg.MODEL.BOXCASEG.RESCALE_PROBS = True
    rescaled = build_model(cfg).eval()
    rescaled.load_state_dict(plain.state_dict())
    gt = Instances((40, 60))
    gt.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 40.0, 38.0]]))
    image = torch.randint(0, 255, (3, 40, 60), dtype=torch.uint8)
    with torch.no_grad():
        probs = plain.predict_patches(plain.crop_patches(image, gt.gt_boxes.tensor))
    masks = {
        name: m([{"image": image, "instances": gt}])[0]["instances"].pred_masks
        for name, m in (("plain", plain), ("rescaled", rescaled))
    }
    # nothing reaches 0.5 until rescaled, then the most foreground-like pixels do
    assert probs.max() < 0.5 and not masks["plain"].any() and masks["rescaled"].any()
    assert not masks["rescaled"][0, :, 41:].any()  # still inside its box


@pytest.mark.parametrize(
    "heads, losses",
    [
        (["weak"], {"loss_mil", "loss_pairwise"}),
        (["salient"], {"loss_pixel"}),
        (["weak", "salient"], {"loss_mil", "loss_pairwise", "loss_pixel"}),
        (["weak", "transferred"], {"loss_mil", "loss_pairwise", "loss_pixel"}),
    ],
)
def test_head_ablation_trains_and_predicts_with_the_chosen_heads(heads, losses):
    """Tab. 4: each subset of heads has only its losses (all parameters still reached, for DDP),
    and predicts with the salient / transferred head on, else with the weak head."""
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BOXCASEG.HEADS = heads
    torch.manual_seed(0)
    model = build_model(cfg)
    out = model(_patches(2, 2))
    assert set(out) == losses
    sum(out.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    full = build_model(small_boxcaseg_cfg())
    full.load_state_dict(model.state_dict())
    model.eval(), full.eval()
    patches = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(patches)
        if "salient" in heads:
            expected = model.salient_head(feats)
        elif "transferred" in heads:
            expected = model.transferred_head(feats, model.transferred_params())
        else:
            expected = model.weak_head(feats)
        expected = model._upsample(expected, (32, 32)).sigmoid()
        torch.testing.assert_close(model.predict_patches(patches), expected)
        assert not torch.allclose(full.predict_patches(patches), expected)
    if "weak" not in heads:  # no MIL loss: the weak head's parameters get zero gradients
        assert all(not p.grad.any() for p in model.weak_head.parameters())
    cfg.MODEL.BOXCASEG.HEADS = ["weak", "nope"]
    with pytest.raises(ValueError, match="HEADS"):
        build_model(cfg)


def test_ablation_configs_select_tab4_heads_and_tab5_random_sampling():
    from weaksup import load_config

    from conftest import REPO_ROOT

    folder = REPO_ROOT / "configs" / "BoxCaseg" / "ablations"
    heads = {
        "weak_only": ["weak"],
        "salient_only": ["salient"],
        "weak_salient": ["weak", "salient"],
        "weak_transferred": ["weak", "transferred"],
    }
    for name, expected in heads.items():
        cfg = load_config(str(folder / f"voc_heads_{name}_HRNetV2_W48.yaml"))
        assert list(cfg.MODEL.BOXCASEG.HEADS) == expected
        assert cfg.DATALOADER.BOX_SALIENT_SAMPLING == "ratio"
    rs = load_config(str(folder / "coco_random_sampling_HRNetV2_W48.yaml"))
    assert rs.DATALOADER.BOX_SALIENT_SAMPLING == "random" and len(rs.MODEL.BOXCASEG.HEADS) == 3


def test_head_activity_tool_finds_a_dead_transferred_head_on_real_box_patches(tmp_path):
    """tools/boxcaseg_head_activity.py on PennFudan box crops: every head alive in a fresh
    network; 0 % for the transferred head once every filter's bias is pushed below zero (no
    TRANSFER_NORM), i.e. the failure it was written to find."""
    import importlib.util

    from conftest import REPO_ROOT, pennfudan_records
    from detectron2.checkpoint import DetectionCheckpointer

    spec = importlib.util.spec_from_file_location(
        "boxcaseg_head_activity", REPO_ROOT / "tools" / "boxcaseg_head_activity.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    records, _ = pennfudan_records(3)
    cfg = small_boxcaseg_cfg()
    torch.manual_seed(0)
    model = build_model(cfg)
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("alive")
    with torch.no_grad():
        model.weight_transfer.mlps[0][2].bias[-1] -= 100.0
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("dead")
    weights = [str(tmp_path / "alive.pth"), str(tmp_path / "dead.pth")]
    rows = tool.activity_rows(cfg, weights, records, max_patches=5)
    table = {(w, head): (channels, values) for w, head, channels, values in rows}
    assert len(rows) == 6
    for head in ("weak", "salient", "transferred"):
        assert table[weights[0], head][0] > 50 and 0 < table[weights[0], head][1] < 100
    assert table[weights[1], "transferred"] == (0.0, 0.0)
    assert table[weights[1], "weak"] == table[weights[0], "weak"]
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        tool.activity_rows(cfg, [str(tmp_path / "nope.pth")], records, 5)


@pytest.mark.parametrize("outputs", [["hr2"], ["hr2", "hr4"], ["hr5"]])
def test_hrnet_outputs_left_out_are_not_computed_and_every_parameter_trains(outputs):
    """A config that drops an output must leave no parameter without a gradient (DDP raises on
    one) and make no map it does not return."""
    torch.manual_seed(0)
    net = HRNet(width=8, num_modules=[1, 1, 2, 2], num_blocks=[1, 1, 1, 1], out_features=outputs)
    out = net(torch.randn(1, 3, 64, 64))
    assert sorted(out) == sorted(outputs)
    sum(v.sum() for v in out.values()).backward()
    idle = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not idle


def _constant_pixel_heads(model, salient: float, transferred: float):
    """The salient and transferred heads replaced by constant logit maps (hand-computable)."""

    def const(value):
        return lambda feats, *_: torch.full((len(feats), *feats.shape[-2:]), value)

    model.salient_head.forward = const(salient)
    model.transferred_head = const(transferred)
    return model


def test_pixel_loss_is_one_bce_of_the_mixed_logits_over_salient_pixels():
    """Eq. 3 as the authors' train_pd: the two heads' logits mixed (alpha on the transferred
    head), one BCE, averaged over the salient patches' pixels and not scaled by their share of
    the batch. Salient head right (+2), transferred head wrong (-2), an all-foreground mask:
    BCE(0.3 * 2 + 0.7 * -2 = -0.8, 1) = softplus(0.8) = 1.1711. The old reading (the two BCEs
    mixed, times the salient share 2/4) gave 0.5 * (0.3 * 0.1269 + 0.7 * 2.1269) = 0.763."""
    model = _constant_pixel_heads(build_model(small_boxcaseg_cfg()), 2.0, -2.0)
    patches = _patches(2, 2)
    for p in patches[2:]:
        p["salient_mask"][:] = 1
    loss = model(patches)["loss_pixel"].item()
    assert loss == pytest.approx(math.log1p(math.exp(0.8)), abs=1e-4)


@pytest.mark.parametrize("alpha, logit", [(0.7, -0.8), (1.0, -2.0), (0.0, 2.0)])
def test_prediction_is_the_sigmoid_of_the_mixed_logits_alpha_on_the_transferred_head(alpha, logit):
    """Tab. 6: alpha 0 is the salient head alone, alpha 1 the transferred head alone (Tab. 4's
    rows); in between the logits mix (0.7: sigmoid(-0.8) = 0.3100, where mixing the
    probabilities gave 0.3 * 0.8808 + 0.7 * 0.1192 = 0.3477)."""
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BOXCASEG.ALPHA = alpha
    model = _constant_pixel_heads(build_model(cfg).eval(), 2.0, -2.0)
    with torch.no_grad():
        probs = model.predict_patches(torch.randn(1, 3, 32, 32))
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / (1 + math.exp(-logit))))


def test_pairwise_term_has_no_border_term():
    """Eq. 2 sums over pairs of 8-connected pixels of the patch: a map that is foreground up to
    the patch border is perfectly smooth (the authors' zero-padded convolution adds a term that
    pushes border foreground to 0, where box crops at test put the object)."""
    assert pairwise_smoothness_loss(torch.ones(2, 6, 5)).item() == 0.0
    # one column of 1s in a 0-map: 5 horizontal neighbours each side + 4 diagonal pairs x 2
    probs = torch.zeros(1, 5, 5)
    probs[0, :, 2] = 1
    pairs = 2 * (5 * 4) + 2 * (4 * 4)  # horizontal + vertical + both diagonals, each once
    assert pairwise_smoothness_loss(probs).item() == pytest.approx((2 * 5 + 2 * 2 * 4) / pairs)


def test_small_box_patch_and_its_back_mapped_mask_exact():
    """A 12 x 20 px box (x 10..22, y 5..25) at a 32-px test crop: on an image whose channels
    are the pixel's column and row, patch column j samples x = 10 + (j + 0.5) * 12 / 32 - 0.5
    and row i samples y = 5 + (i + 0.5) * 20 / 32 - 0.5 (pixel centres, bilinear, one sample
    per bin). A patch foreground on its left half pastes back as exactly the box's left 6
    columns: pixels 10..15 of rows 5..24, 120 pixels, nothing outside the box."""
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    model = build_model(cfg).eval()
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(50.0), indexing="ij")
    image = torch.stack([xs, ys, xs + ys])
    box = torch.tensor([[10.0, 5.0, 22.0, 25.0]])
    patch = model.crop_patches(image, box)[0]
    j = torch.arange(32.0)
    torch.testing.assert_close(patch[0], (10 + (j + 0.5) * 12 / 32 - 0.5).expand(32, 32))
    torch.testing.assert_close(patch[1], (5 + (j + 0.5) * 20 / 32 - 0.5)[:, None].expand(32, 32))
    left = torch.zeros(1, 32, 32)
    left[:, :, :16] = 1
    model.predict_patches = lambda patches: left
    gt = Instances((40, 50))
    gt.gt_boxes = Boxes(box)
    mask = model([{"image": image, "instances": gt}])[0]["instances"].pred_masks[0]
    expected = torch.zeros(40, 50, dtype=torch.bool)
    expected[5:25, 10:16] = True
    assert torch.equal(mask, expected)


@pytest.mark.parametrize(
    "context, crop", [((1.5, 0.0), (7, 0, 25, 30)), ((1.0, 4.0), (6, 1, 26, 29))]
)
def test_small_box_test_crop_with_context_and_its_mask_cut_to_the_box(context, crop):
    """``TEST_CONTEXT``: the 12 x 20 px box (10, 5, 22, 25) is cropped with its half sides 6 x 10
    scaled by 1.5 (9 x 15) or grown by 4 px (10 x 14) around its centre (16, 15); a patch that
    is foreground everywhere pastes back over the crop and is cut to the box: exactly the box's
    240 pixels."""
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    cfg.INPUT.BOXCASEG.TEST_CONTEXT = context
    model = build_model(cfg).eval()
    box = torch.tensor([[10.0, 5.0, 22.0, 25.0]])
    x0, y0, x1, y1 = crop
    assert model.context_boxes(box).tolist() == [[float(v) for v in crop]]
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(50.0), indexing="ij")
    patch = model.crop_patches(torch.stack([xs, ys, xs]), model.context_boxes(box))[0]
    j = torch.arange(32.0)
    torch.testing.assert_close(patch[0, 0], x0 + (j + 0.5) * (x1 - x0) / 32 - 0.5)
    # a sample in the image's border half pixel takes the border pixel (roi_align clamps)
    rows = (y0 + (j + 0.5) * (y1 - y0) / 32 - 0.5).clamp(min=0)
    torch.testing.assert_close(patch[1, :, 0], rows)
    model.predict_patches = lambda patches: torch.ones(len(patches), 32, 32)
    gt = Instances((40, 50))
    gt.gt_boxes = Boxes(box)
    mask = model([{"image": torch.zeros(3, 40, 50), "instances": gt}])[0]["instances"]
    expected = torch.zeros(40, 50, dtype=torch.bool)
    expected[5:25, 10:22] = True
    assert torch.equal(mask.pred_masks[0], expected)
