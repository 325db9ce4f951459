"""PennFudan loader on the real database: counts, split, boxes against masks, bad input."""

import logging
import shutil

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from conftest import shared_path
from weaksup.data.datasets import load_pennfudan, parse_pennfudan_annotation

# Text boxes that disagree with the tight box of their PNG mask by more than 1 px in the source
# data itself (object number -> largest side difference in px); every other box agrees within 1 px.
KNOWN_BOX_MASK_DISAGREEMENTS = {
    ("PennPed00019", 6): 3,
    ("PennPed00021", 2): 2,
    ("PennPed00027", 1): 6,
    ("PennPed00090", 1): 2,
}


@pytest.fixture(scope="module")
def root():
    return str(shared_path("PennFudanPed"))


def test_counts_and_split(root):
    train, val = load_pennfudan(root, "train"), load_pennfudan(root, "val")
    assert (len(train), len(val)) == (128, 42)
    assert sum(len(r["annotations"]) for r in train + val) == 423
    ids = sorted(r["image_id"] for r in train + val)
    assert ids == list(range(170))
    assert all(r["image_id"] % 4 == 3 for r in val)
    assert {r["file_name"].split("/")[-1][:3] for r in val} == {"Fud", "Pen"}


def test_registered_names(root):
    assert len(DatasetCatalog.get("pennfudan_val")) == 42
    boxonly = DatasetCatalog.get("pennfudan_train_boxonly")
    assert len(boxonly) == 128
    assert all("segmentation" not in a for r in boxonly for a in r["annotations"])
    assert MetadataCatalog.get("pennfudan_train").thing_classes == ["person"]


def test_first_record_exact(root):
    record = parse_pennfudan_annotation(f"{root}/Annotation/FudanPed00001.txt")
    assert (record["width"], record["height"]) == (559, 536)
    # (160, 182) - (302, 431) 1-based inclusive -> [159, 181, 302, 431] 0-based XYXY_ABS
    assert [a["bbox"] for a in record["annotations"]] == [
        [159, 181, 302, 431],
        [419, 170, 535, 486],
    ]
    assert {a["bbox_mode"] for a in record["annotations"]} == {BoxMode.XYXY_ABS}


def test_boxes_match_masks(root):
    found = {}
    for record in load_pennfudan(root, "all"):
        name = record["file_name"].split("/")[-1][: -len(".png")]
        with Image.open(record["file_name"]) as im:
            assert im.size == (record["width"], record["height"])
        for k, ann in enumerate(record["annotations"], 1):
            rle = ann["segmentation"]
            assert (
                isinstance(rle["counts"], str) and ann["category_id"] == 0 and ann["iscrowd"] == 0
            )
            mask = mask_util.decode({**rle, "counts": rle["counts"].encode()})
            ys, xs = np.nonzero(mask)
            tight = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            diff = int(np.abs(tight - np.array(ann["bbox"])).max())
            if diff > 1:
                found[(name, k)] = diff
    assert found == KNOWN_BOX_MASK_DISAGREEMENTS


def test_masks_equal_png(root):
    record = load_pennfudan(root, "all")[0]
    png = np.asarray(Image.open(f"{root}/PedMasks/FudanPed00001_mask.png"))
    for k, ann in enumerate(record["annotations"], 1):
        rle = {**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_util.decode(rle), (png == k).astype(np.uint8))


def _copy_one(root, tmp_path, name="FudanPed00001"):
    for sub, suffix in (("Annotation", ".txt"), ("PNGImages", ".png"), ("PedMasks", "_mask.png")):
        (tmp_path / sub).mkdir(exist_ok=True)
        shutil.copy(f"{root}/{sub}/{name}{suffix}", tmp_path / sub / f"{name}{suffix}")
    return tmp_path / "Annotation" / f"{name}.txt"


def test_invalid_boxes_dropped_and_clipped(root, tmp_path, caplog):
    txt = _copy_one(root, tmp_path)
    text = txt.read_text()
    text = text.replace("(160, 182) - (302, 431)", "(302, 182) - (160, 431)")  # x2 < x1
    text = text.replace("(420, 171) - (535, 486)", "(420, 171) - (600, 486)")  # beyond width 559
    txt.write_text(text)
    with caplog.at_level(logging.WARNING):
        (record,) = load_pennfudan(str(tmp_path), "all", with_masks=False)
    assert [a["bbox"] for a in record["annotations"]] == [[419, 170, 559, 486]]
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(txt) in message and "dropped 1 invalid box(es), clipped 1 box(es)" in message
    assert "image 0 annotation 0: x2<x1" in message and "image 0 annotation 1" in message


@pytest.mark.parametrize(
    "replacement, reason",
    [("(160, 182) - (159, 431)", "zero area"), ("(900, 182) - (950, 431)", "outside the image")],
)
def test_zero_area_and_outside_dropped(root, tmp_path, caplog, replacement, reason):
    # 1-based inclusive: Xmax = Xmin - 1 is a box of zero width
    txt = _copy_one(root, tmp_path)
    txt.write_text(txt.read_text().replace("(160, 182) - (302, 431)", replacement))
    with caplog.at_level(logging.WARNING):
        (record,) = load_pennfudan(str(tmp_path), "all", with_masks=False)
    assert len(record["annotations"]) == 1
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(txt) in message and f"image 0 annotation 0: {reason}" in message
    assert "dropped 1 invalid box(es), clipped 0 box(es)" in message


def test_unknown_class(root, tmp_path):
    txt = _copy_one(root, tmp_path)
    txt.write_text(
        txt.read_text().replace('object 2 "PASpersonWalking" (Xmin', 'object 2 "PAScar" (Xmin')
    )
    with pytest.raises(ValueError, match=rf"{txt}: object 2: unknown class 'PAScar'"):
        load_pennfudan(str(tmp_path), "all")


def test_empty_and_missing_files(root, tmp_path):
    txt = _copy_one(root, tmp_path)
    txt.write_text("")
    with pytest.raises(ValueError, match=rf"Annotation file is empty: {txt}"):
        load_pennfudan(str(tmp_path), "all")
    txt.unlink()
    with pytest.raises(ValueError, match="no annotation"):
        load_pennfudan(str(tmp_path), "all")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        load_pennfudan(str(tmp_path / "nowhere"), "all")
