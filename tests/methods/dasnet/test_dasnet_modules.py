"""DASNet modules on hand-built inputs: box attention (Eq. 1), the decoder, position-sensitive
assembly and box sampling (Secs. 3.3-3.5)."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, pairwise_iou

from weaksup.methods.dasnet.attention import AttentionQueries, box_attention, box_region_masks
from weaksup.methods.dasnet.position_sensitive import (
    assemble_position_sensitive,
    instance_losses,
    instance_score_logits,
    sample_instance_boxes,
)
from weaksup.methods.dasnet.segmentation import DASNetDecoder, semantic_loss

IMAGE_SIZE = (64, 96)  # padded network input (H, W)
STRIDES = (4, 8, 16, 32)


def _features(num_images=2, channels=3):
    # strictly positive values, so a kept vector can never be mistaken for a zeroed one
    return [
        torch.rand(num_images, channels, IMAGE_SIZE[0] // s, IMAGE_SIZE[1] // s) + 0.5
        for s in STRIDES
    ]


def _expected_mask(boxes, stride, map_size):
    """Eq. 1 written out: cell (x, y) is kept when its centre, in pixels, is in some box."""
    mask = torch.zeros(map_size, dtype=torch.bool)
    for y in range(map_size[0]):
        for x in range(map_size[1]):
            cx, cy = (x + 0.5) * stride, (y + 0.5) * stride
            mask[y, x] = any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in boxes)
    return mask


QUERIES = AttentionQueries(
    image_index=torch.tensor([1, 0, 1]),
    classes=torch.tensor([3, 0, 5]),
    boxes=torch.tensor(
        [
            [8.0, 16.0, 40.0, 48.0],
            [50.0, 2.0, 90.0, 20.0],
            [0.0, 0.0, 96.0, 64.0],
            [33.0, 9.0, 33.5, 9.5],
        ]
    ),
    box_query=torch.tensor([0, 0, 1, 2]),
)


def test_box_region_masks_literal_case():
    # a 64 x 96 input seen at stride 16 (4 x 6 cells, centres at 8, 24, 40, ...): the box
    # [16, 16, 48, 48] keeps the cells whose centres 24 and 40 it contains, in x and in y
    boxes = torch.tensor([[16.0, 16.0, 48.0, 48.0]])
    mask = box_region_masks(boxes, torch.tensor([0]), 1, IMAGE_SIZE, (4, 6))[0]
    expected = torch.zeros(4, 6, dtype=torch.bool)
    expected[1:3, 1:3] = True
    assert torch.equal(mask, expected)


def test_box_attention_zeros_outside_identity_inside_every_level():
    features = _features()
    out = box_attention(features, QUERIES, IMAGE_SIZE)
    assert len(out) == len(features)
    for f, f_l, stride in zip(features, out, STRIDES):
        assert f_l.shape == (len(QUERIES), *f.shape[1:])  # same size as f_k
        for q in range(len(QUERIES)):
            boxes = QUERIES.boxes[QUERIES.box_query == q].tolist()
            keep = _expected_mask(boxes, stride, f.shape[-2:])
            source = f[QUERIES.image_index[q]]
            assert torch.equal(f_l[q][:, keep], source[:, keep])  # identity inside
            assert (f_l[q][:, ~keep] == 0).all()  # exact zeros outside
    # the tiny box of query 2 (half a pixel) holds no cell centre at any level: all zero
    assert all((f_l[2] == 0).all() for f_l in out)
    # the whole-image box of query 1 keeps everything
    assert all(torch.equal(f_l[1], f[0]) for f, f_l in zip(features, out))


def test_box_attention_backward_is_the_same_masking():
    features = [f.requires_grad_() for f in _features()]
    out = box_attention(features, QUERIES, IMAGE_SIZE)
    sum(f_l.sum() for f_l in out).backward()
    for f, stride in zip(features, STRIDES):
        for image in (0, 1):
            expected = torch.zeros(f.shape[-2:])
            for q in torch.nonzero(QUERIES.image_index == image).flatten().tolist():
                boxes = QUERIES.boxes[QUERIES.box_query == q].tolist()
                expected += _expected_mask(boxes, stride, f.shape[-2:])
            assert torch.equal(f.grad[image], expected.expand_as(f.grad[image]))


def test_decoder_top_down_to_input_size():
    shapes = [ShapeSpec(channels=8, stride=s) for s in STRIDES]
    decoder = DASNetDecoder(shapes, head_dim=4, norm="", ps_grid=3)
    features = box_attention(_features(channels=8), QUERIES, IMAGE_SIZE)
    x = decoder(features)
    assert x.shape == (3, 4, *IMAGE_SIZE)
    assert decoder.semantic_predictor(x).shape == (3, 2, *IMAGE_SIZE)
    assert decoder.ps_predictor(x).shape == (3, 2 * 3 * 3, *IMAGE_SIZE)
    # f_{m-1}^up has the channels of f_{m-1}; the concatenation doubles them
    assert [layer[0].out_channels for layer in decoder.lateral] == [8, 8, 8]
    with pytest.raises(ValueError, match="halve"):
        DASNetDecoder([ShapeSpec(channels=8, stride=s) for s in (4, 16)], 4, "", 3)


def test_position_sensitive_assembly_constant_maps():
    # k = 2: inside map c holds the value c, outside map c holds 10 + c, everywhere
    k, size = 2, 4
    maps = torch.cat([torch.full((1, 1, 8, 8), float(v)) for v in [0, 1, 2, 3, 10, 11, 12, 13]], 1)
    out = assemble_position_sensitive(
        maps, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([0]), k, size
    )
    inside = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]).float()
    assert torch.equal(out[0, 0], inside)
    assert torch.equal(out[0, 1], inside + 10)


def test_position_sensitive_assembly_copies_pixels():
    # a pixel-aligned 4 x 4 box resampled to 4 x 4 samples pixel centres: a plain copy-paste
    k, size = 2, 4
    maps = torch.randn(2, 2 * k * k, 8, 8)
    boxes = torch.tensor([[1.0, 2.0, 5.0, 6.0], [4.0, 4.0, 8.0, 8.0]])
    out = assemble_position_sensitive(maps, boxes, torch.tensor([1, 0]), k, size)
    for r, (q, (x0, y0)) in enumerate(zip([1, 0], [(1, 2), (4, 4)])):
        for i in range(size):
            for j in range(size):
                c = (i * k // size) * k + j * k // size
                assert torch.allclose(out[r, 0, i, j], maps[q, c, y0 + i, x0 + j])
                assert torch.allclose(out[r, 1, i, j], maps[q, k * k + c, y0 + i, x0 + j])


def test_instance_score_and_losses():
    assembled = torch.tensor([[[[2.0, -1.0]], [[0.0, 3.0]]]])  # (1, 2, 1, 2): in, out
    assert torch.allclose(instance_score_logits(assembled), torch.tensor([2.5]))
    losses = instance_losses(
        assembled.expand(2, -1, -1, -1), torch.tensor([1, 0]), torch.tensor([[[True, False]]])
    )
    score = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.5, 2.5]), torch.tensor([1.0, 0.0])
    )
    assert torch.allclose(losses["loss_instance_score"], score)
    # pixel 0 is inside (class 0, logits 2 vs 0), pixel 1 outside (class 1, logits -1 vs 3)
    mask = (
        -(
            torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
            + torch.log_softmax(torch.tensor([-1.0, 3.0]), 0)[1]
        )
        / 2
    )
    assert torch.allclose(losses["loss_instance_mask"], mask)


def test_sample_instance_boxes_positive_and_negative():
    torch.manual_seed(0)
    gt = torch.tensor([[10.0, 10.0, 50.0, 70.0], [60.0, 20.0, 90.0, 40.0]])
    boxes, labels, gt_index = sample_instance_boxes(gt, gt, 2, 4, 0.5, 0.5, (80, 100))
    for g in range(2):
        assert int(((gt_index == g) & (labels == 1)).sum()) == 2
        assert int(((gt_index == g) & (labels == 0)).sum()) == 4
    own = pairwise_iou(Boxes(boxes), Boxes(gt))[torch.arange(len(boxes)), gt_index]
    assert (own[labels == 1] > 0.5).all()
    assert (pairwise_iou(Boxes(boxes[labels == 0]), Boxes(gt)) <= 0.5).all()
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 100).all()


def test_semantic_loss_ignores_and_stays_connected():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    targets = torch.tensor([[[1, 255], [0, 255]]])
    assert torch.allclose(semantic_loss(logits, targets, 255), torch.log(torch.tensor(2.0)))
    loss = semantic_loss(logits, torch.full((1, 2, 2), 255), 255)
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None
