"""Salient-image loaders (ECSSD, DUTS-Single lists) on the real ECSSD files."""

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from conftest import shared_path
from weaksup.data.datasets import load_salient_images, register_salient


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
