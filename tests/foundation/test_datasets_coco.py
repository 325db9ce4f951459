"""COCO json loaders (with masks and box-only) on nuts_coco, and bad-input handling."""

import json
import logging

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from conftest import shared_path
from weaksup.data.datasets import load_coco_json, register_coco_boxonly, register_coco_instances


@pytest.fixture(scope="module")
def nuts():
    root = shared_path("nuts_coco", "data")
    return str(root / "trainval.json"), str(root / "images")


def test_nuts_with_masks_and_boxonly(nuts):
    json_file, image_root = nuts
    register_coco_instances("test_nuts", {}, json_file, image_root)
    register_coco_boxonly("test_nuts_boxonly", {}, json_file, image_root)
    full, boxonly = DatasetCatalog.get("test_nuts"), DatasetCatalog.get("test_nuts_boxonly")
    for dicts in (full, boxonly):
        assert len(dicts) == 18
        assert sum(len(r["annotations"]) for r in dicts) == 165
        assert {a["category_id"] for r in dicts for a in r["annotations"]} == {0, 1, 2}
        assert {a["bbox_mode"] for r in dicts for a in r["annotations"]} == {BoxMode.XYXY_ABS}
    assert all("segmentation" in a for r in full for a in r["annotations"])
    assert not any("segmentation" in a for r in boxonly for a in r["annotations"])
    assert MetadataCatalog.get("test_nuts_boxonly").thing_classes == ["date", "fig", "hazelnut"]
    # first annotation: XYWH [101, 118, 136, 167] -> XYXY [101, 118, 237, 285]
    assert full[0]["annotations"][0]["bbox"] == [101.0, 118.0, 237.0, 285.0]


def test_registered_builtins():
    assert "coco_2017_train_boxonly" in DatasetCatalog.list()
    meta = MetadataCatalog.get("coco_2017_train_boxonly")
    assert len(meta.thing_classes) == 80 and meta.json_file.endswith("instances_train2017.json")


def _small_json(nuts, tmp_path, edit):
    """A copy of nuts_coco restricted to its first image, edited by ``edit(data)``."""
    with open(nuts[0]) as f:
        data = json.load(f)
    data["images"] = data["images"][:1]
    data["annotations"] = [
        a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"]
    ]
    edit(data)
    path = tmp_path / "small.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_pseudo_mask_keys_kept(nuts, tmp_path):
    def flag(data):
        data["annotations"][0].update(mask_valid=False, box_agreement=0.4)

    dicts = load_coco_json(_small_json(nuts, tmp_path, flag), nuts[1], box_only=True)
    first = dicts[0]["annotations"][0]
    assert (first["mask_valid"], first["box_agreement"]) == (False, 0.4)
    assert "mask_valid" not in dicts[0]["annotations"][1]


def test_invalid_boxes(nuts, tmp_path, caplog):
    def corrupt(data):
        anns = data["annotations"]
        anns[0]["bbox"] = [101.0, 118.0, 0.0, 167.0]  # zero area
        anns[1]["bbox"] = [900.0, 10.0, 20.0, 20.0]  # outside the 800x600 image
        anns[2]["bbox"] = [50.0, 50.0, -10.0, 20.0]  # x2 < x1
        anns[3]["bbox"] = [790.0, 590.0, 30.0, 30.0]  # clipped to [790, 590, 800, 600]

    json_file = _small_json(nuts, tmp_path, corrupt)
    n = len(json.load(open(json_file))["annotations"])
    register_coco_boxonly("test_nuts_bad_boxes", {}, json_file, nuts[1])
    with caplog.at_level(logging.WARNING):
        (record,) = DatasetCatalog.get("test_nuts_bad_boxes")
    assert len(record["annotations"]) == n - 3
    assert record["annotations"][0]["bbox"] == [790.0, 590.0, 800, 600]
    (message,) = [r.getMessage() for r in caplog.records if "invalid box" in r.getMessage()]
    assert message.startswith(f"{json_file}: dropped 3 invalid box(es), clipped 1 box(es)")
    for reason in (
        "annotation 0: zero area",
        "annotation 1: outside the image",
        "annotation 2: x2<x1",
    ):
        assert f"image 0 {reason}" in message


def test_unknown_class(nuts, tmp_path):
    def unknown(data):
        data["annotations"][2]["category_id"] = 7

    json_file = _small_json(nuts, tmp_path, unknown)
    register_coco_instances("test_nuts_unknown", {}, json_file, nuts[1])
    ann_id = json.load(open(json_file))["annotations"][2]["id"]
    with pytest.raises(
        ValueError, match=rf"{json_file}: image 0 annotation id {ann_id}: unknown class 7"
    ):
        DatasetCatalog.get("test_nuts_unknown")


@pytest.mark.parametrize(
    "content", ["", '{"images": [], "annotations": [], "categories": []}', "{"]
)
def test_empty_or_corrupt_file(tmp_path, content):
    path = tmp_path / "empty.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=str(path)):
        load_coco_json(str(path), str(tmp_path), box_only=True)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing.json")):
        load_coco_json(str(tmp_path / "missing.json"), str(tmp_path))
