"""The mask loss skips instances whose (pseudo) mask is flagged unusable."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss
from detectron2.structures import Boxes, BitMasks, Instances
from detectron2.utils.events import EventStorage

from weaksup.utils.config_file import merge_config_file
from weaksup import add_weaksup_config
from weaksup.modeling.losses import flagged_mask_rcnn_loss


def _proposals(n, valid=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    inst = Instances((64, 64))
    xy = torch.rand(n, 2, generator=g) * 30
    inst.proposal_boxes = Boxes(torch.cat([xy, xy + 20 + torch.rand(n, 2, generator=g) * 10], 1))
    inst.gt_classes = torch.randint(0, 3, (n,), generator=g)
    inst.gt_masks = BitMasks(torch.rand(n, 64, 64, generator=g) > 0.5)
    if valid is not None:
        inst.gt_mask_valid = torch.tensor(valid, dtype=torch.bool)
    return inst


def test_all_valid_or_unflagged_equals_mask_rcnn_loss():
    logits = torch.randn(7, 3, 14, 14)
    insts = [_proposals(4, [True] * 4), _proposals(3, seed=1)]
    with EventStorage():
        expected = mask_rcnn_loss(logits, insts)
        got = flagged_mask_rcnn_loss(logits, insts)
    assert torch.allclose(got, expected)


def test_only_valid_instances_count():
    logits = torch.randn(5, 3, 14, 14)
    flags = [[True, False, True], [False, True]]
    insts = [_proposals(3, flags[0]), _proposals(2, flags[1], seed=1)]
    keep = torch.tensor(sum(flags, []))
    with EventStorage() as storage:
        got = flagged_mask_rcnn_loss(logits, insts)
        expected = mask_rcnn_loss(logits[keep], [insts[0][keep[:3]], insts[1][keep[3:]]])
        assert storage.latest()["mask_rcnn/usable_mask_fraction"][0] == pytest.approx(3 / 5)
    assert torch.allclose(got, expected)
    # changing a dropped instance's logits changes nothing
    logits2 = logits.clone()
    logits2[1] += 10
    with EventStorage():
        assert torch.allclose(flagged_mask_rcnn_loss(logits2, insts), got)


def test_all_dropped_gives_zero_loss_with_zero_gradients():
    logits = torch.randn(3, 3, 14, 14, requires_grad=True)
    with EventStorage():
        loss = flagged_mask_rcnn_loss(logits, [_proposals(3, [False] * 3)])
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def _demo_model():
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, "configs/PseudoMasks/demo/pennfudan_box_mask_rcnn_R18_FPN_GN.yaml")
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    return build_model(cfg)


def _batch(valid):
    inst = Instances((128, 160))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 70.0, 110.0], [80.0, 20.0, 150.0, 120.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.long)
    masks = torch.zeros(2, 128, 160, dtype=torch.bool)
    masks[0, 10:110, 10:70] = True
    masks[1, 20:120, 80:150] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_mask_valid = torch.tensor(valid)
    image = torch.randint(
        0, 255, (3, 128, 160), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    return [{"image": image, "instances": inst, "height": 128, "width": 160}]


@pytest.mark.parametrize("valid", [[False, False], [True, False]])
def test_full_model_with_dropped_masks(valid):
    """Mask R-CNN with the flagged head trains on a batch whose masks are (all) dropped."""
    model = _demo_model()
    model.train()
    with EventStorage():
        losses = model(_batch(valid))
    sum(losses.values()).backward()
    mask_grads = [p.grad for n, p in model.named_parameters() if "mask_head" in n]
    box_grads = [p.grad for n, p in model.named_parameters() if "box_predictor" in n]
    assert all(g is not None for g in mask_grads)
    assert any(torch.count_nonzero(g) > 0 for g in box_grads)
    if not any(valid):
        assert losses["loss_mask"].item() == 0.0
        assert all(torch.count_nonzero(g) == 0 for g in mask_grads)
    else:
        assert losses["loss_mask"].item() > 0.0
        assert any(torch.count_nonzero(g) > 0 for g in mask_grads)
