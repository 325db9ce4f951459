"""The "coco" evaluator: faster-coco-eval gives pycocotools' AP on real data (nuts_coco)."""

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import Boxes, BoxMode, Instances
from faster_coco_eval import COCOeval_faster
from scipy import ndimage

from conftest import shared_path
from weaksup import add_weaksup_config
from weaksup.evaluation import FasterCOCOEvaluator, build_evaluators
from weaksup.evaluation.ground_truth import segmentation_to_bitmask

DATASET = "weaksup_test_eval_nuts"


@pytest.fixture(scope="module")
def nuts():
    root = shared_path("nuts_coco", "data")
    if DATASET not in DatasetCatalog.list():
        register_coco_instances(DATASET, {}, str(root / "trainval.json"), str(root / "images"))
    return DatasetCatalog.get(DATASET)


def _outputs(record, rng=None):
    """GT of one record as Detectron2 model outputs; with ``rng``, perturbed: dropped (15%),
    duplicated (15%) and wrong-class (5%) instances, jittered boxes, eroded masks, random scores."""
    h, w = record["height"], record["width"]
    boxes, masks, classes = [], [], []
    for ann in record["annotations"]:
        box = BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS)
        mask = segmentation_to_bitmask(ann["segmentation"], h, w)
        copies = 1 if rng is None else int(rng.choice([0, 1, 2], p=[0.15, 0.7, 0.15]))
        for _ in range(copies):
            cls = ann["category_id"]
            if rng is not None:
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
                box = list(np.array(box) + rng.uniform(-0.1, 0.1, 4) * size)
                mask = ndimage.binary_erosion(mask, iterations=int(rng.integers(1, 6)))
                cls = int(rng.integers(0, 3)) if rng.random() < 0.05 else cls
            boxes.append(box)
            masks.append(mask)
            classes.append(cls)
    inst = Instances((h, w))
    inst.pred_boxes = Boxes(torch.tensor(np.array(boxes), dtype=torch.float32).reshape(-1, 4))
    inst.pred_masks = torch.from_numpy(np.array(masks).reshape(-1, h, w))
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    inst.scores = (
        torch.ones(len(classes)) if rng is None else torch.from_numpy(rng.random(len(classes)))
    )
    return {"instances": inst}


def _evaluate(records, outputs, use_fast_impl, tmp_path):
    evaluator = FasterCOCOEvaluator(
        DATASET, tasks=("bbox", "segm"), output_dir=str(tmp_path), use_fast_impl=use_fast_impl
    )
    evaluator.reset()
    for record, output in zip(records, outputs):
        evaluator.process([{"image_id": record["image_id"]}], [output])
    return evaluator.evaluate()


def test_perfect_predictions_give_100(nuts, tmp_path):
    results = _evaluate(nuts, [_outputs(r) for r in nuts], True, tmp_path)
    for task in ("bbox", "segm"):
        assert results[task]["AP"] == pytest.approx(100.0)
        assert results[task]["AP-hazelnut"] == pytest.approx(100.0)


def test_faster_coco_eval_matches_pycocotools(nuts, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    outputs = [_outputs(r, rng) for r in nuts]
    calls = []
    evaluate = COCOeval_faster.evaluate
    monkeypatch.setattr(COCOeval_faster, "evaluate", lambda self: calls.append(1) or evaluate(self))
    official = _evaluate(nuts, outputs, False, tmp_path)
    assert calls == []
    fast = _evaluate(nuts, outputs, True, tmp_path)
    assert len(calls) == 2  # bbox and segm ran on faster-coco-eval
    for task in ("bbox", "segm"):
        assert fast[task].keys() == official[task].keys()
        assert 20 < official[task]["AP"] < 95  # the perturbations matter
        for key, value in official[task].items():
            assert fast[task][key] == pytest.approx(value, abs=1e-4, nan_ok=True), (task, key)


def test_registered_builder_follows_mask_on(nuts, tmp_path):
    cfg = add_weaksup_config(get_cfg())
    cfg.WEAKSUP.EVALUATORS = ["coco"]
    cfg.MODEL.MASK_ON = False
    evaluator = build_evaluators(cfg, DATASET, str(tmp_path))
    assert isinstance(evaluator, FasterCOCOEvaluator) and evaluator._use_fast_impl
    assert evaluator._tasks == ("bbox",)
    cfg.MODEL.MASK_ON = True
    assert build_evaluators(cfg, DATASET, str(tmp_path))._tasks == ("bbox", "segm")
    # Hybrid's small branch: a Faster R-CNN (MASK_ON False) whose detections GrabCut segments.
    # Its tasks come from the config, not the predictions, so a model that detects nothing
    # still reports segm (Detectron2 infers bbox only from empty predictions).
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.META_ARCHITECTURE = "HybridSmallBranch"
    evaluator = build_evaluators(cfg, DATASET, str(tmp_path))
    assert evaluator._tasks == ("bbox", "segm")
    evaluator.reset()
    evaluator._predictions = [{"image_id": 1, "instances": []}]  # one image, no detection
    evaluator.evaluate()  # its AP values are NaN; the task list is what is checked
    assert set(evaluator._results) == {"bbox", "segm"}
