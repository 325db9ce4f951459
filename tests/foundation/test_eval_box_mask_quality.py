"""The "box_mask_quality" evaluator and its numpy core (BoxCaseg Sec. 4 mIoU*, IoU@50, IoU@75)."""

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.structures import Instances

from conftest import pennfudan_records, register_dataset
from weaksup import add_weaksup_config
from weaksup.evaluation import build_evaluators
from weaksup.evaluation.box_mask_quality import (
    BoxMaskQualityEvaluator,
    box_mask_quality,
    paired_mask_iou,
)


def _rows(n, hw=(10, 10)):
    """A mask whose first ``n`` rows are set: IoU n/10 with the full 10 x 10 mask."""
    mask = np.zeros(hw, bool)
    mask[:n] = True
    return mask


def test_identical_masks_give_100():
    masks = [_rows(10), _rows(3), _rows(7, (10, 20))]
    res = box_mask_quality(masks, [m.copy() for m in masks], [0, 1, 1])
    assert res == {"mIoU*": 100, "IoU@50": 100, "IoU@75": 100, "mIoU-0": 100, "mIoU-1": 100}


def test_hand_built_ious_and_per_class_averaging():
    full = _rows(10)
    res = box_mask_quality([_rows(10), _rows(6), _rows(5)], [full] * 3, [0, 0, 1], ["a", "b", "c"])
    # class a: (1 + .6) / 2 = .8, class b: .5, class c: no instance -> mIoU* = (.8 + .5) / 2
    # (the mean over instances would be .7); IoU@k counts IoU strictly above k over all instances.
    assert res["mIoU*"] == pytest.approx(65)
    assert res["mIoU-a"] == pytest.approx(80) and res["mIoU-b"] == pytest.approx(50)
    assert np.isnan(res["mIoU-c"])
    assert res["IoU@50"] == pytest.approx(200 / 3) and res["IoU@75"] == pytest.approx(100 / 3)


def test_paired_mask_iou_edge_cases():
    empty = np.zeros((4, 4), bool)
    assert paired_mask_iou([empty, _rows(2, (4, 4))], [empty, empty]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        paired_mask_iou([_rows(1, (4, 4))], [_rows(1, (4, 5))])
    with pytest.raises(ValueError, match="2 predicted masks for 1 GT"):
        paired_mask_iou([empty, empty], [empty])


def _outputs(masks, gt_index=None):
    inst = Instances(masks[0].shape)
    inst.pred_masks = torch.from_numpy(np.array(masks))
    if gt_index is not None:
        inst.gt_index = torch.tensor(gt_index)
    return {"instances": inst}


def test_evaluator_contract_gt_index_order_and_crowd():
    full = [[0, 0, 10, 0, 10, 10, 0, 10]]  # polygon of the whole 10 x 10 image
    anns = [
        {"category_id": c, "iscrowd": crowd, "segmentation": full}
        for c, crowd in [(0, 0), (1, 1), (1, 0), (0, 0)]
    ]
    register_dataset(
        "weaksup_test_bmq_toy",
        [{"file_name": "toy.png", "image_id": 1, "height": 10, "width": 10, "annotations": anns}],
        ["a", "b"],
    )
    evaluator = BoxMaskQualityEvaluator("weaksup_test_bmq_toy")
    # In annotation order over the non-crowd annotations 0, 2, 3.
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [_outputs([_rows(6), _rows(8), _rows(10)])])
    res = evaluator.evaluate()["box_mask_quality"]
    assert res["mIoU-a"] == pytest.approx(80) and res["mIoU-b"] == pytest.approx(80)
    # By gt_index: annotation 3 has no prediction (IoU 0), the one for crowd annotation 1 is skipped.
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [_outputs([_rows(8), _rows(1), _rows(6)], [2, 1, 0])])
    res = evaluator.evaluate()["box_mask_quality"]
    assert res["mIoU-a"] == pytest.approx(30) and res["mIoU-b"] == pytest.approx(80)
    assert res["mIoU*"] == pytest.approx(55) and res["IoU@50"] == pytest.approx(200 / 3)
    evaluator.reset()
    with pytest.raises(ValueError, match="2 predicted masks for 3 non-crowd annotations"):
        evaluator.process([{"image_id": 1}], [_outputs([_rows(8), _rows(1)])])
    with pytest.raises(ValueError, match="gt_index"):
        evaluator.process([{"image_id": 1}], [_outputs([_rows(8), _rows(1)], [0, 0])])


def test_real_pennfudan_filled_boxes():
    """The filled GT box as mask ("rectangles", BoxSup Tab. 2) on 20 PennFudan images: its IoU
    with the mask inside it is mask area / box area."""
    records, gt_masks = pennfudan_records(20)
    register_dataset("weaksup_test_bmq_pennfudan", records, ["person"])
    cfg = add_weaksup_config(get_cfg())
    cfg.WEAKSUP.EVALUATORS = ["box_mask_quality"]
    evaluator = build_evaluators(cfg, "weaksup_test_bmq_pennfudan", None)
    evaluator.reset()
    fill = []
    for record, masks in zip(records, gt_masks):
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            box = np.zeros_like(m)
            box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
            boxes.append(box)
            fill.append(m.sum() / box.sum())
        evaluator.process([{"image_id": record["image_id"]}], [_outputs(boxes)])
    res = evaluator.evaluate()["box_mask_quality"]
    fill = np.array(fill)
    assert len(fill) == 32 and (fill > 0.5).sum() == 3 and fill.max() < 0.75
    assert res["mIoU*"] == pytest.approx(100 * fill.mean())
    assert res["mIoU*"] == pytest.approx(40.1155, abs=1e-4)  # pedestrians fill 40% of their box
    assert res["IoU@50"] == pytest.approx(100 * 3 / 32) and res["IoU@75"] == 0
