"""Salient-image loaders (ECSSD, DUTS-Single lists, ECSSD's train / held-out parts and their
instance view) on the real ECSSD files, and the grabcut13 instance loader."""

import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from conftest import shared_path
from weaksup.data.datasets import load_salient_images, register_salient
from weaksup.data.datasets.grabcut13 import load_grabcut13
from weaksup.data.datasets.image_sets import may_share_images
from weaksup.data.datasets.salient import salient_instances
from weaksup.evaluation.ground_truth import segmentation_to_bitmask


@pytest.fixture(scope="module")
def ecssd():
    return shared_path("ECSSD")


def test_ecssd(ecssd):
    register_salient("test_ecssd", str(ecssd / "images"), str(ecssd / "ground_truth_mask"))
    dicts = DatasetCatalog.get("test_ecssd")
    assert len(dicts) == 1000 and [d["image_id"] for d in dicts] == list(range(1000))
    assert set(dicts[0]) == {"file_name", "height", "width", "image_id", "salient_mask_file"}
    for d in dicts:
        with Image.open(d["salient_mask_file"]) as m:
            assert m.size == (d["width"], d["height"])
    assert set(np.unique(np.asarray(Image.open(dicts[0]["salient_mask_file"])))) == {0, 255}
    assert MetadataCatalog.get("test_ecssd").thing_classes == ["object"]
    assert {"ecssd", "duts_single_train"} <= set(DatasetCatalog.list())


def test_bad_list(ecssd, tmp_path):
    images, masks = str(ecssd / "images"), str(ecssd / "ground_truth_mask")
    lst = tmp_path / "list.txt"
    lst.write_text("0001\nmissing\n")
    with pytest.raises(
        FileNotFoundError, match=rf"{lst}: record 'missing': file not found: .*missing.jpg"
    ):
        load_salient_images(images, masks, str(lst))
    lst.write_text("")
    with pytest.raises(ValueError, match=rf"Annotation file is empty: {lst}"):
        load_salient_images(images, masks, str(lst))
    lst.write_text("# comment only\n")
    with pytest.raises(ValueError, match=rf"{lst}: no images"):
        load_salient_images(images, masks, str(lst))


def test_ecssd_parts_split_every_tenth_image(ecssd):
    images, masks = str(ecssd / "images"), str(ecssd / "ground_truth_mask")
    train = load_salient_images(images, masks, part="train")
    held = load_salient_images(images, masks, part="heldout")
    assert len(train) == 900 and len(held) == 100
    assert [d["image_id"] for d in held] == list(range(9, 1000, 10))
    assert held[0]["file_name"].endswith("0010.jpg") and train[9]["file_name"].endswith("0011.jpg")
    assert not {d["file_name"] for d in train} & {d["file_name"] for d in held}
    with pytest.raises(ValueError, match="part must be one of .* got 'val'"):
        load_salient_images(images, masks, part="val")
    # the declared lists say the same, so the config leak check keeps them apart
    assert may_share_images("ecssd_train", "ecssd_heldout_instances") is False
    assert may_share_images("ecssd", "ecssd_heldout") is True


def test_salient_instances_box_and_mask(ecssd):
    images, masks = str(ecssd / "images"), str(ecssd / "ground_truth_mask")
    record = load_salient_images(images, masks, part="heldout")[0]  # 0010
    (inst,) = salient_instances([record])
    gt = np.asarray(Image.open(record["salient_mask_file"])) > 127
    ys, xs = np.nonzero(gt)
    (ann,) = inst["annotations"]
    assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert ann["bbox_mode"] == BoxMode.XYXY_ABS and ann["category_id"] == 0
    assert (segmentation_to_bitmask(ann["segmentation"], *gt.shape) == gt).all()
    assert "salient_mask_file" not in inst and inst["image_id"] == 9


def test_grabcut13(shared_data):
    root = shared_data("grabcut13")
    dicts = load_grabcut13(str(root))
    assert [os.path.basename(d["file_name"]) for d in dicts][:3] == [
        "banana1.jpg",
        "banana2.jpg",
        "book.jpg",
    ]
    assert len(dicts) == 13 and len(DatasetCatalog.get("grabcut13")) == 13
    (ann,) = dicts[0]["annotations"]
    assert ann["bbox"] == [16.0, 20.0, 621.0, 437.0]  # bboxes/banana1.txt: 16 20 620 436
    gt = np.asarray(Image.open(root / "seg_GT" / "banana1.bmp").convert("L")) > 127
    assert (segmentation_to_bitmask(ann["segmentation"], 480, 640) == gt).all()


def test_grabcut13_bad_box_file_named(shared_data, tmp_path):
    root = shared_data("grabcut13")
    for sub in ("imgs", "seg_GT"):
        (tmp_path / sub).mkdir()
    os.symlink(root / "imgs" / "book.jpg", tmp_path / "imgs" / "book.jpg")
    os.symlink(root / "seg_GT" / "book.bmp", tmp_path / "seg_GT" / "book.bmp")
    (tmp_path / "bboxes").mkdir()
    (tmp_path / "bboxes" / "book.txt").write_text("10 20 30\n")
    with pytest.raises(
        ValueError, match=r"bboxes/book.txt: expected 'x1 y1 x2 y2', got '10 20 30'"
    ):
        load_grabcut13(str(tmp_path))
    (tmp_path / "bboxes" / "book.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"grabcut13 box file not found: .*book.txt"):
        load_grabcut13(str(tmp_path))
