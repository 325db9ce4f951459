"""The "voc_instance" evaluator: mAP^r and ABO on hand-computed cases and on real PennFudan masks."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.structures import Instances
from scipy import ndimage

from conftest import pennfudan_records, register_dataset
from weaksup import add_weaksup_config
from weaksup.evaluation import build_evaluators
from weaksup.evaluation.voc_instance_evaluation import (
    VOCInstanceEvaluator,
    match_image,
    voc_instance_metrics,
)

THRESHOLDS = (0.25, 0.5, 0.7, 0.75)


def _image(scores, pred_classes, gt_classes, ious, gt_ignore=None):
    return {
        "scores": np.array(scores, dtype=np.float64),
        "pred_classes": np.array(pred_classes, dtype=np.int64),
        "gt_classes": np.array(gt_classes, dtype=np.int64),
        "gt_ignore": np.zeros(len(gt_classes), bool) if gt_ignore is None else np.array(gt_ignore),
        "ious": np.array(ious, dtype=np.float64).reshape(len(scores), len(gt_classes)),
    }


def test_perfect_predictions_give_100():
    images = [_image([0.9, 0.8], [0, 1], [0, 1], [[1, 0], [0, 1]]), _image([0.3], [0], [0], [[1]])]
    res = voc_instance_metrics(images, THRESHOLDS, ["a", "b"])
    assert all(res[f"mAP@{t:g}"] == 100 for t in THRESHOLDS)
    assert res["ABO"] == res["ABO-a"] == res["AP@0.7-b"] == 100


def test_one_miss_caps_recall():
    # class a: 2 GT, one found (IoU 1): precision 1 up to recall 1/2; class b: perfect.
    images = [_image([0.9, 0.5], [0, 1], [0, 0, 1], [[1, 0, 0], [0, 0, 1]])]
    res = voc_instance_metrics(images, THRESHOLDS, ["a", "b"])
    assert res["AP@0.5-a"] == pytest.approx(50)
    assert res["mAP@0.5"] == pytest.approx(75)
    assert res["ABO-a"] == pytest.approx(50)
    assert res["ABO"] == pytest.approx(200 / 3)  # mean over the 3 instances


def test_one_duplicate_is_a_false_positive():
    # 2 GT; ranking: TP (g0), duplicate of g0 (FP), TP (g1): P/R = (1, .5), (.5, .5), (2/3, 1)
    # -> AP = .5 * 1 + .5 * 2/3.
    images = [_image([0.9, 0.8, 0.7], [0, 0, 0], [0, 0], [[1, 0], [0.9, 0], [0, 1]])]
    res = voc_instance_metrics(images, THRESHOLDS, ["a"])
    assert res["mAP@0.5"] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))
    assert res["ABO"] == 100


def test_crowd_difficult_gt_is_ignored():
    # g1 is difficult: the top prediction on it is neither TP nor FP, g1 counts for no recall,
    # and ABO only averages g0. Without ignoring, AP would be 50.
    images = [_image([0.95, 0.9], [0, 0], [0, 0], [[0, 1], [0.8, 0]], gt_ignore=[False, True])]
    res = voc_instance_metrics(images, THRESHOLDS, ["a"])
    assert res["mAP@0.5"] == 100 and res["mAP@0.75"] == 100
    assert res["mAP@0.25"] == 100  # at 0.25 the first prediction still prefers g1 (IoU 1)
    assert res["ABO"] == pytest.approx(80)


def test_hand_computed_ap_of_a_mixed_ranking_over_images():
    # 3 GT over two images; @0.5 the ranking is TP(.9) FP(.8) TP(.7) FP(.6) FP(.5) TP(.4):
    # recall 1/3, 1/3, 2/3, 2/3, 2/3, 1 with precision 1, 1/2, 2/3, 1/2, 2/5, 1/2; interpolated:
    # 1 on (0, 1/3], 2/3 on (1/3, 2/3], 1/2 on (2/3, 1] -> AP = (1 + 2/3 + 1/2) / 3 = 13/18.
    im1 = _image([0.9, 0.8, 0.5], [0, 0, 0], [0], [[1], [0.1], [0.2]])
    im2 = _image([0.7, 0.6, 0.4], [0, 0, 0], [0, 0], [[0.6, 0], [0.3, 0], [0, 0.9]])
    res = voc_instance_metrics([im1, im2], THRESHOLDS, ["a"])
    assert res["mAP@0.5"] == pytest.approx(100 * 13 / 18)
    # @0.25 the .6 prediction of im2 (IoU .3 with its already matched g0) is still an FP.
    assert res["mAP@0.25"] == pytest.approx(100 * 13 / 18)
    # @0.7 only .9 and .4 are TPs: P/R (1, 1/3), then (2/6, 2/3) -> AP = 1/3 + 1/3 * 1/3.
    assert res["mAP@0.7"] == pytest.approx(100 * 4 / 9)
    assert res["ABO"] == pytest.approx(100 * (1 + 0.6 + 0.9) / 3)


def test_sds_matching_takes_the_best_unmatched_gt():
    # The second prediction's best GT (g0) is taken; SDS matches it to g1 (IoU .3 >= .25),
    # where the VOC detection devkit would count an FP.
    labels = match_image(
        np.array([0.9, 0.8]),
        np.array([0, 0]),
        np.array([0, 0]),
        np.zeros(2, bool),
        np.array([[0.9, 0.0], [0.5, 0.3]]),
        0.25,
    )
    assert labels.tolist() == [1, 1]
    # Other classes' GT never match; a prediction of a class absent from the image is an FP.
    labels = match_image(
        np.array([0.9]), np.array([1]), np.array([0]), np.zeros(1, bool), np.array([[1.0]]), 0.5
    )
    assert labels.tolist() == [0]


def test_class_without_gt_is_left_out_of_the_mean():
    res = voc_instance_metrics(
        [_image([0.9, 0.8], [0, 1], [0], [[1], [0]])], THRESHOLDS, ["a", "b"]
    )
    assert np.isnan(res["AP@0.5-b"]) and np.isnan(res["ABO-b"])
    assert res["mAP@0.5"] == 100


def _outputs(masks, scores, classes, hw):
    inst = Instances(hw)
    inst.pred_masks = torch.from_numpy(np.array(masks, dtype=bool).reshape(-1, *hw))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return {"instances": inst}


def test_evaluator_on_polygon_and_rle_gt():
    # 20 x 20 image: g0 polygon square rows/cols 0-9 (class 0), g1 RLE rows 10-19 (class 1),
    # g2 crowd RLE (class 1). A prediction covering 6 of g0's 10 rows has IoU 0.6.
    hw = (20, 20)
    g1 = np.zeros(hw, np.uint8)
    g1[10:, :10] = 1
    rle = mask_util.encode(np.asfortranarray(g1))
    rle["counts"] = rle["counts"].decode()
    crowd = mask_util.encode(np.asfortranarray(1 - g1))
    crowd["counts"] = crowd["counts"].decode()
    anns = [
        {"category_id": 0, "iscrowd": 0, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        {"category_id": 1, "iscrowd": 0, "segmentation": rle},
        {"category_id": 1, "iscrowd": 1, "segmentation": crowd},
    ]
    register_dataset(
        "weaksup_test_voc_toy",
        [{"file_name": "toy.png", "image_id": 7, "height": 20, "width": 20, "annotations": anns}],
        ["a", "b"],
    )
    p0 = np.zeros(hw, bool)
    p0[:6, :10] = True
    evaluator = VOCInstanceEvaluator("weaksup_test_voc_toy", THRESHOLDS)
    evaluator.reset()
    evaluator.process(
        [{"image_id": 7}], [_outputs([p0, g1, 1 - g1], [0.9, 0.8, 0.99], [0, 1, 1], hw)]
    )
    res = evaluator.evaluate()["voc_instance"]
    assert res["AP@0.5-a"] == 100 and res["AP@0.7-a"] == 0 and res["AP@0.75-b"] == 100
    assert res["mAP@0.5"] == 100 and res["mAP@0.7"] == 50
    assert res["ABO-a"] == pytest.approx(60) and res["ABO"] == pytest.approx(80)


def test_real_pennfudan_masks():
    """Eroded GT masks of 20 PennFudan images, scored by their own IoU (so at each threshold all
    TPs rank first: AP@t = fraction of instances with IoU >= t); every other image loses its
    first instance (a miss: IoU 0 in ABO)."""
    records, gt_masks = pennfudan_records(20)
    register_dataset("weaksup_test_voc_pennfudan", records, ["person"])
    cfg = add_weaksup_config(get_cfg())
    cfg.WEAKSUP.EVALUATORS = ["voc_instance"]
    evaluator = build_evaluators(cfg, "weaksup_test_voc_pennfudan", None)
    evaluator.reset()
    ious = []
    for i, (record, masks) in enumerate(zip(records, gt_masks)):
        preds = [ndimage.binary_erosion(m, iterations=1 + 2 * (k % 3)) for k, m in enumerate(masks)]
        image_ious = [(p & m).sum() / (p | m).sum() for p, m in zip(preds, masks)]
        kept = slice(i % 2, None)
        ious += [0.0] * (i % 2) + image_ious[kept]
        hw = (record["height"], record["width"])
        evaluator.process(
            [{"image_id": record["image_id"]}],
            [_outputs(preds[kept], image_ious[kept], [0] * len(preds[kept]), hw)],
        )
    res = evaluator.evaluate()["voc_instance"]
    ious = np.array(ious)
    assert len(ious) == 32 and (ious == 0).sum() == 10
    assert [(ious >= t).sum() for t in THRESHOLDS] == [22, 21, 18, 17]  # every threshold matters
    for t in THRESHOLDS:
        assert res[f"mAP@{t:g}"] == pytest.approx(100 * np.mean(ious >= t))
    assert res["ABO"] == pytest.approx(100 * ious.mean())
