"""The "sem_seg" evaluator (Detectron2's SemSegEvaluator) on the real VOC label maps of labelme_voc3."""

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from conftest import shared_path
from weaksup import add_weaksup_config
from weaksup.evaluation import build_evaluators

DATASET = "weaksup_test_eval_sem_seg_voc3"
PERSON = 15


@pytest.fixture(scope="module")
def voc3(tmp_path_factory):
    """The 3 SegmentationClass PNGs (VOC palette indices, 255 = void) as plain label maps."""
    root = shared_path("labelme_voc3", "examples", "instance_segmentation", "data_dataset_voc")
    out = tmp_path_factory.mktemp("sem_seg")
    records, labels = [], []
    for png in sorted((root / "SegmentationClass").glob("*.png")):
        label = np.array(Image.open(png))  # mode "P": the palette indices are the class ids
        Image.fromarray(label).save(out / png.name)
        records.append(
            {
                "file_name": str(root / "JPEGImages" / f"{png.stem}.jpg"),
                "sem_seg_file_name": str(out / png.name),
                "height": label.shape[0],
                "width": label.shape[1],
            }
        )
        labels.append(label)
    if DATASET in DatasetCatalog.list():
        DatasetCatalog.remove(DATASET)
        MetadataCatalog.remove(DATASET)
    DatasetCatalog.register(DATASET, lambda: records)
    classes = (root / "class_names.txt").read_text().split("\n")
    MetadataCatalog.get(DATASET).set(stuff_classes=[c for c in classes if c], ignore_label=255)
    return records, labels


def _evaluate(voc3, predict, tmp_path):
    cfg = add_weaksup_config(get_cfg())
    cfg.WEAKSUP.EVALUATORS = ["sem_seg"]
    evaluator = build_evaluators(cfg, DATASET, str(tmp_path))
    evaluator.reset()
    for record, label in zip(*voc3):
        pred = torch.from_numpy(predict(label.astype(np.int64)))
        logits = torch.nn.functional.one_hot(pred, 21).permute(2, 0, 1).float()
        evaluator.process([{"file_name": record["file_name"]}], [{"sem_seg": logits}])
    return evaluator.evaluate()["sem_seg"]


def test_perfect_label_maps(voc3, tmp_path):
    res = _evaluate(voc3, lambda gt: np.where(gt == 255, 0, gt), tmp_path)
    assert res["mIoU"] == 100 and res["pACC"] == 100 and res["IoU-person"] == 100
    assert np.isnan(res["IoU-cat"])  # absent classes are left out of the mean


def test_person_predicted_as_background(voc3, tmp_path):
    # Pixel counts of the 3 label maps: background 281170, person 67696, 7 classes present,
    # 533631 non-void pixels; void pixels (predicted background here) do not count.
    res = _evaluate(voc3, lambda gt: np.where((gt == 255) | (gt == PERSON), 0, gt), tmp_path)
    iou_background = 281170 / (281170 + 67696)
    assert res["IoU-person"] == 0
    assert res["IoU-_background_"] == pytest.approx(100 * iou_background)
    assert res["mIoU"] == pytest.approx(100 * (iou_background + 5) / 7)
    assert res["pACC"] == pytest.approx(100 * (533631 - 67696) / 533631)
