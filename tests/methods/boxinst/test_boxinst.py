"""BoxInst's losses on ROI masks (Tian et al., CVPR 2021, Sec. 3.2-3.3) against direct
computations on a real PennFudan crop, where their gradients go, and the ROI colour pooling."""

import math

import cv2
import numpy as np
import pytest
import torch
from detectron2.layers import ROIAlign
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage

from conftest import REPO_ROOT, pennfudan_records
from weaksup.methods.boxinst.losses import (
    box_projection_loss,
    boxinst_mask_rcnn_loss,
    colour_similarity,
    pairwise_affinity_loss,
    rgb_to_lab,
    roi_box_masks,
)
from weaksup.modeling.losses import neighbour_offsets, neighbour_values


def _person_crop(size=(14, 12)):
    """Lab colours of the first PennFudan person's box resampled to ``size`` (H, W) bins."""
    records, _ = pennfudan_records(1)
    rgb = cv2.cvtColor(cv2.imread(records[0]["file_name"]), cv2.COLOR_BGR2RGB)
    x0, y0, x1, y1 = (int(v) for v in records[0]["annotations"][0]["bbox"])
    crop = cv2.resize(rgb[y0:y1, x0:x1], size[::-1], interpolation=cv2.INTER_AREA)
    rgb_t = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
    return rgb_t, rgb_to_lab(rgb_t)


def _direct_edges(lab, dilation):
    """Every directed edge (y, x, ny, nx, S_e) of the dilated 3 x 3 neighbourhood, by loops."""
    _, _, h, w = lab.shape
    c = lab[0].permute(1, 2, 0).tolist()
    edges = []
    for y in range(h):
        for x in range(w):
            for dy in (-dilation, 0, dilation):
                for dx in (-dilation, 0, dilation):
                    ny, nx = y + dy, x + dx
                    if (dy or dx) and 0 <= ny < h and 0 <= nx < w:
                        dist = math.sqrt(sum((a - b) ** 2 for a, b in zip(c[y][x], c[ny][nx])))
                        edges.append((y, x, ny, nx, math.exp(-dist / 2.0)))
    return edges


def test_lab_conversion_matches_reference_values_and_opencv_on_a_real_crop():
    primaries = torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    lab = rgb_to_lab(primaries.T.reshape(1, 3, 5, 1))[0, :, :, 0].T
    expected = torch.tensor(  # CIE L*a*b* (D65) of sRGB white, red, green, blue, black
        [
            [100.0, 0, 0],
            [53.24, 80.09, 67.20],
            [87.73, -86.18, 83.18],
            [32.30, 79.19, -107.86],
            [0, 0, 0],
        ]
    )
    torch.testing.assert_close(lab, expected, atol=0.01, rtol=0)
    rgb, lab = _person_crop()
    img = rgb[0].permute(1, 2, 0).numpy().astype(np.float32)
    # OpenCV's float conversion interpolates tables (a, b come out in 1/32 steps): 0.3 apart at most
    opencv = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    np.testing.assert_allclose(lab[0].permute(1, 2, 0).numpy(), opencv, atol=0.3)


def test_neighbour_offsets():
    assert len(neighbour_offsets(2)) == 8
    assert set(neighbour_offsets(2)) == {(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)} - {
        (0, 0)
    }
    unique = neighbour_offsets(1, unique=True)
    assert len(unique) == 4 and not {(-dy, -dx) for dy, dx in unique} & set(unique)
    with pytest.raises(ValueError, match="dilation"):
        neighbour_offsets(0)


def test_neighbour_values_are_the_shifted_pixels():
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    values, valid = neighbour_values(x, dilation=2)
    for k, (dy, dx) in enumerate(neighbour_offsets(2)):
        for y in range(5):
            for xx in range(6):
                inside = 0 <= y + dy < 5 and 0 <= xx + dx < 6
                assert bool(valid[k, y, xx]) == inside
                expected = x[0, :, y + dy, xx + dx] if inside else torch.zeros(2)
                torch.testing.assert_close(values[0, :, k, y, xx], expected)


def test_colour_similarity_equals_direct_computation_on_a_real_crop():
    _, lab = _person_crop()
    sim = colour_similarity(lab, dilation=2, theta=2.0)
    offsets = neighbour_offsets(2)
    got = {}
    for y, x, ny, nx, s in _direct_edges(lab, 2):
        k = offsets.index((ny - y, nx - x))
        got[(k, y, x)] = s
        assert sim[0, k, y, x].item() == pytest.approx(s, rel=1e-4, abs=1e-6)
    assert (sim > 0).sum().item() == len(got)  # no similarity for neighbours outside the grid


def _crop_case():
    """A real crop, random logits and a box covering part of the grid."""
    _, lab = _person_crop()
    torch.manual_seed(0)
    logits = torch.randn(1, 14, 12) * 2
    box = torch.zeros(1, 14, 12)
    box[0, 2:12, 3:10] = 1
    return lab, logits, box


def test_pairwise_term_equals_direct_neighbour_sum_on_a_real_crop():
    lab, logits, box = _crop_case()
    p = logits[0].sigmoid().tolist()
    total, count, below = 0.0, 0, 0
    for y, x, ny, nx, s in _direct_edges(lab, 2):
        if not box[0, y, x]:
            continue
        if s < 0.3:
            below += 1
            continue
        same = p[y][x] * p[ny][nx] + (1 - p[y][x]) * (1 - p[ny][nx])
        total -= math.log(same)
        count += 1
    assert count > 10 and below > 10  # the crop has both kinds of edge, so tau matters
    sim = colour_similarity(lab, 2, 2.0)
    got = pairwise_affinity_loss(logits, sim, box, threshold=0.3, dilation=2)
    assert got.item() == pytest.approx(total / count, rel=1e-5)


def test_pairwise_gradient_only_on_edges_above_tau_inside_the_box():
    lab, logits, box = _crop_case()
    logits.requires_grad_(True)
    sim = colour_similarity(lab, 2, 2.0)
    pairwise_affinity_loss(logits, sim, box, threshold=0.3, dilation=2).backward()
    support = torch.zeros(14, 12, dtype=torch.bool)
    for y, x, ny, nx, s in _direct_edges(lab, 2):
        if box[0, y, x] and s >= 0.3:
            support[y, x] = support[ny, nx] = True
    grad = logits.grad[0]
    assert (grad[~support] == 0).all()
    assert (grad[support] != 0).all()
    # the test has teeth: outside the box there are similar-coloured edges that train nothing, and
    # inside it pixels whose every edge is below tau
    outside_similar = torch.zeros(14, 12, dtype=torch.bool)
    inside_any = torch.zeros(14, 12, dtype=torch.bool)
    for y, x, _, _, s in _direct_edges(lab, 2):
        outside_similar[y, x] |= not box[0, y, x] and s >= 0.3
        inside_any[y, x] |= bool(box[0, y, x])
    assert (outside_similar & ~support).any()
    assert (inside_any & ~support).any()


def test_pairwise_term_counts_no_edge_when_none_passes():
    lab, logits, box = _crop_case()
    logits.requires_grad_(True)
    sim = colour_similarity(lab, 2, 2.0)
    loss = pairwise_affinity_loss(logits, sim, box, threshold=1.01, dilation=2)
    assert loss.item() == 0.0
    loss.backward()
    assert (logits.grad == 0).all()


def test_pairwise_term_of_float16_logits_is_the_float32_value():
    """Under AMP the mask head's logits come in float16: 32 ROIs of 28 x 28 bins have ~200k edges,
    past float16's 65504, whose count made the loss 0."""
    torch.manual_seed(0)
    logits = torch.randn(32, 28, 28) * 3
    sim = torch.ones(32, 8, 28, 28)
    box = torch.ones(32, 28, 28)
    expected = pairwise_affinity_loss(logits, sim, box)
    got = pairwise_affinity_loss(logits.half(), sim.half(), box.half())
    assert expected.item() > 0.1
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(
        pairwise_affinity_loss(logits.half().float(), sim, box).item(), rel=1e-6
    )


def test_projection_loss_zero_for_a_mask_filling_the_box_and_positive_otherwise():
    box = roi_box_masks(
        torch.tensor([[10.0, 20.0, 38.0, 76.0]]), torch.tensor([[17.0, 20.0, 31.0, 62.0]]), 28
    )
    assert box.sum() > 0 and box.sum() < 28 * 28
    assert box_projection_loss(box, box).item() == 0.0
    # a mask of any shape inside the box with the same projections (a cross) is also exact
    cross = torch.zeros_like(box)
    rows, cols = box[0].amax(dim=1) > 0, box[0].amax(dim=0) > 0
    cross[0, rows, cols.nonzero()[0]] = 1
    cross[0, rows.nonzero()[0], cols] = 1
    assert box_projection_loss(cross, box).item() == 0.0
    shrunk = box.clone()
    shrunk[0, :, cols.nonzero()[-1]] = 0
    assert box_projection_loss(shrunk, box).item() > 0
    assert box_projection_loss(torch.ones_like(box), box).item() > 0
    assert box_projection_loss(box * 0.9, box).item() > 0


def test_projection_gradient_only_at_the_row_and_column_maxima():
    torch.manual_seed(1)
    logits = torch.randn(1, 6, 7, requires_grad=True)
    box = torch.zeros(1, 6, 7)
    box[0, 1:5, 2:6] = 1
    box_projection_loss(logits.sigmoid(), box).backward()
    argmax_rows = logits[0].argmax(dim=1)  # x-projection takes each column's max over rows
    argmax_cols = logits[0].argmax(dim=0)
    support = torch.zeros(6, 7, dtype=torch.bool)
    support[torch.arange(6), argmax_rows] = True
    support[argmax_cols, torch.arange(7)] = True
    assert (logits.grad[0][~support] == 0).all()
    assert (logits.grad[0][support] != 0).all()


def test_roi_box_masks_on_the_roi_grid():
    same = roi_box_masks(
        torch.tensor([[5.0, 5.0, 33.0, 61.0]]), torch.tensor([[5.0, 5.0, 33.0, 61.0]]), 28
    )
    assert (same == 1).all()
    # proposal twice the box's width, same height: the middle half of the columns
    wide = roi_box_masks(
        torch.tensor([[0.0, 0.0, 56.0, 28.0]]), torch.tensor([[14.0, 0.0, 42.0, 28.0]]), 28
    )
    assert (
        (wide[0, :, 7:21] == 1).all()
        and (wide[0, :, :7] == 0).all()
        and (wide[0, :, 21:] == 0).all()
    )


def _roi_instances(lab_side=28):
    proposals = Instances((100, 80))
    proposals.proposal_boxes = Boxes(
        torch.tensor([[10.0, 10.0, 50.0, 90.0], [0.0, 0.0, 60.0, 60.0]])
    )
    proposals.gt_boxes = Boxes(torch.tensor([[12.0, 10.0, 48.0, 80.0], [5.0, 5.0, 60.0, 55.0]]))
    proposals.gt_classes = torch.tensor([1, 0])
    torch.manual_seed(2)
    proposals.proposal_lab = rgb_to_lab(torch.rand(2, 3, lab_side, lab_side))
    return proposals


def test_boxinst_loss_uses_the_logits_of_the_gt_class():
    proposals = _roi_instances()
    logits = torch.randn(2, 3, 28, 28, requires_grad=True)
    losses = boxinst_mask_rcnn_loss(logits, [proposals])
    (losses["loss_prj"] + losses["loss_pairwise"]).backward()
    assert logits.grad[0, 1].abs().sum() > 0 and logits.grad[1, 0].abs().sum() > 0
    assert logits.grad[0, [0, 2]].abs().sum() == 0 and logits.grad[1, 1:].abs().sum() == 0
    assert 0 <= losses["edge_fraction"].item() <= 1
    with pytest.raises(ValueError, match="proposal_lab"):
        boxinst_mask_rcnn_loss(logits, [_roi_instances(lab_side=14)])


def _demo_cfg(**overrides):
    from weaksup.config import load_config

    opts = [
        "MODEL.DEVICE",
        "cpu",
        "MODEL.ROI_HEADS.NAME",
        "BoxInstROIHeads",
        "MODEL.ROI_MASK_HEAD.NAME",
        "BoxInstMaskRCNNConvUpsampleHead",
    ]
    for k, v in overrides.items():
        opts += [k, v]
    return load_config(
        str(REPO_ROOT / "configs/PseudoMasks/demo/pennfudan_box_mask_rcnn_R18_FPN_GN.yaml"), opts
    )


@pytest.mark.parametrize("input_format", ["BGR", "RGB"])
def test_roi_heads_pool_the_image_lab_on_the_mask_grid(input_format):
    from detectron2.modeling import build_model

    cfg = _demo_cfg(**{"INPUT.FORMAT": input_format, "MODEL.PIXEL_MEAN": "[123.7, 116.3, 103.5]"})
    model = build_model(cfg)
    heads = model.roi_heads
    torch.manual_seed(3)
    image = torch.randint(0, 256, (3, 40, 50)).float()  # channels in INPUT.FORMAT order
    normalized = (image - model.pixel_mean) / model.pixel_std
    lab = heads.image_lab(ImageList.from_tensors([normalized]))
    rgb = image if input_format == "RGB" else image[[2, 1, 0]]
    expected = rgb_to_lab(rgb[None] / 255.0)
    torch.testing.assert_close(lab, expected, atol=1e-3, rtol=1e-4)
    box = torch.tensor([[0.0, 3.0, 5.0, 30.0, 38.0]])
    pooled = heads.colour_pooler([lab], [Boxes(box[:, 1:])])
    direct = ROIAlign((28, 28), 1.0, 0, aligned=True)(expected, box)
    torch.testing.assert_close(pooled, direct, atol=1e-3, rtol=1e-4)


def test_model_trains_from_boxes_alone_with_both_terms():
    from detectron2.modeling import build_model

    cfg = _demo_cfg(**{"MODEL.BOXINST.PAIRWISE.WARMUP_ITERS": "4"})
    model = build_model(cfg)
    model.train()
    inst = Instances((96, 128))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 10.0, 60.0, 90.0], [70.0, 20.0, 110.0, 80.0]]))
    inst.gt_classes = torch.tensor([0, 0])
    torch.manual_seed(4)
    batch = [{"image": torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8), "instances": inst}]
    with EventStorage(1) as storage:  # iteration 1 of a 4-iteration ramp: factor 2 / 4
        losses = model(batch)
        assert {"loss_prj", "loss_pairwise"} <= set(losses) and "loss_mask" not in losses
        assert all(torch.isfinite(v) for v in losses.values())
        assert 0 <= storage.latest()["boxinst/edge_fraction"][0] <= 1
        sum(losses.values()).backward()
    assert model.roi_heads.mask_head.predictor.weight.grad.abs().sum() > 0
    assert model.roi_heads.mask_head.warmup_factor(1) == 0.5
    assert model.roi_heads.mask_head.warmup_factor(10) == 1.0


@pytest.mark.parametrize("dataset", ["coco", "voc"])
def test_paper_schedule_configs_build_boxinst_heads(dataset):
    from detectron2.modeling import build_model

    from weaksup.config import load_config
    from weaksup.methods.boxinst.roi_heads import BoxInstMaskRCNNConvUpsampleHead, BoxInstROIHeads

    path = REPO_ROOT / f"configs/BoxInst/boxinst_mask_rcnn_R50_FPN_{dataset}.yaml"
    cfg = load_config(str(path), ["MODEL.DEVICE", "cpu"])
    assert cfg.MODEL.BOXINST.PAIRWISE.WARMUP_ITERS == 10000
    model = build_model(cfg)
    assert isinstance(model.roi_heads, BoxInstROIHeads)
    assert isinstance(model.roi_heads.mask_head, BoxInstMaskRCNNConvUpsampleHead)


def test_scale_boxes_keeps_the_centre_and_scales_the_sides():
    from weaksup.methods.boxinst.roi_heads import scale_boxes

    boxes = Boxes(torch.tensor([[10.0, 20.0, 30.0, 60.0]]))
    assert scale_boxes(boxes, 1.0) is boxes
    torch.testing.assert_close(
        scale_boxes(boxes, 1.5).tensor, torch.tensor([[5.0, 10.0, 35.0, 70.0]])
    )


def test_crop_roi_masks_inverts_the_enlargement():
    """A mask drawn on the enlarged ROI grid comes back as the same shape on the box's grid."""
    from weaksup.methods.boxinst.roi_heads import crop_roi_masks

    m, scale = 28, 1.75  # the box is bins 6..22 of the enlarged grid (6 bins of margin)
    big = torch.zeros(1, 1, 2 * m, 2 * m)
    big[..., 2 * 6 : 2 * 22, 2 * 6 : 2 * 14] = 1.0  # the box's left half, drawn at 2x
    enlarged = torch.nn.functional.interpolate(big, size=(m, m), mode="area")
    cropped = crop_roi_masks(enlarged, scale)
    assert cropped.shape == (1, 1, m, m)
    # Column u of the box grid centres at 6 + (u + 0.5) * 16 / 28: left of 14 for u <= 13.
    expected = torch.zeros(m, m)
    expected[:, :14] = 1.0
    assert torch.equal((cropped[0, 0] > 0.5).float(), expected)
    assert crop_roi_masks(enlarged, 1.0) is enlarged


def test_enlarged_roi_puts_a_margin_of_zero_targets_around_the_box():
    """With ROI_SCALE 1.5 the mask branch sees the proposal enlarged: the projection target of a
    proposal equal to its GT box is 1 on the central 2/3 of the ROI only, and inference returns
    masks on the detected boxes' grid."""
    from detectron2.modeling import build_model

    cfg = _demo_cfg(**{"MODEL.BOXINST.ROI_SCALE": "1.5"})
    model = build_model(cfg)
    seen = {}
    loss_fn = model.roi_heads.mask_head.forward

    def spy(x, instances):
        seen["boxes"] = torch.cat([p.proposal_boxes.tensor for p in instances])
        gt = torch.cat([p.gt_boxes.tensor for p in instances])
        seen["box_masks"] = roi_box_masks(seen["boxes"], gt, 28)
        return loss_fn(x, instances)

    model.roi_heads.mask_head.forward = spy
    model.train()
    inst = Instances((96, 128))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 10.0, 60.0, 90.0]]))
    inst.gt_classes = torch.tensor([0])
    torch.manual_seed(4)
    batch = [{"image": torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8), "instances": inst}]
    with EventStorage(0):
        losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    # The GT box itself is among the proposals (PROPOSAL_APPEND_GT): its ROI is 60 x 120.
    gt_roi = (seen["boxes"] == torch.tensor([10.0, -10.0, 70.0, 110.0])).all(dim=1)
    assert gt_roi.any()
    box_mask = seen["box_masks"][gt_roi][0]
    # Bins whose centres lie in the central 2/3: 28 / 6 = 4.67 bins of margin, so 5..22.
    assert torch.equal(box_mask.nonzero()[:, 0].unique(), torch.arange(5, 23))
    assert torch.equal(box_mask.nonzero()[:, 1].unique(), torch.arange(5, 23))
    model.roi_heads.mask_head.forward = loss_fn
    model.eval()
    with torch.no_grad():
        out = model.roi_heads.forward_with_given_boxes(
            model.backbone(model.preprocess_image(batch).tensor),
            [Instances((96, 128), pred_boxes=inst.gt_boxes, pred_classes=inst.gt_classes)],
        )
    assert out[0].pred_masks.shape == (1, 1, 28, 28)
