"""DUTS-Single filter (BoxCaseg Sec. 4) tested on ECSSD masks, the same kind of data."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from skimage.measure import label, regionprops

from conftest import REPO_ROOT, shared_path
from weaksup.data.datasets import load_salient_images

_spec = importlib.util.spec_from_file_location(
    "prepare_duts_single", REPO_ROOT / "datasets" / "prepare_duts_single.py"
)
prep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prep)


@pytest.fixture(scope="module")
def ecssd():
    return shared_path("ECSSD")


def _mask(ecssd, stem):
    return prep.read_mask(str(ecssd / "ground_truth_mask" / f"{stem}.png"))


def test_count_objects_exact(ecssd):
    assert prep.count_objects(_mask(ecssd, "0002")) == 1
    # 0001: one object plus a 5-pixel speck, which the area threshold ignores
    assert prep.count_objects(_mask(ecssd, "0001"), min_area_fraction=0) == 2
    assert prep.is_single_object(_mask(ecssd, "0001"))
    # 0025: two objects of 7.7 % and 6.0 % of the image
    assert prep.count_objects(_mask(ecssd, "0025")) == 2
    # 0026: its second component covers 0.83 % of the image: an object at 0.5 %, not at 1 %
    assert prep.count_objects(_mask(ecssd, "0026")) == 2
    assert prep.is_single_object(_mask(ecssd, "0026"), min_area_fraction=0.01)


def test_rule_agrees_with_skimage(ecssd):
    for i in range(1, 101):
        mask = _mask(ecssd, f"{i:04d}")
        regions = regionprops(label(mask >= 128, connectivity=2))
        n = sum(r.area >= prep.MIN_AREA_FRACTION * mask.size for r in regions)
        assert prep.is_single_object(mask) == (n == 1), i


def _fake_duts(ecssd, tmp_path, stems):
    """A DUTS-TR layout of links to ECSSD files."""
    tr = tmp_path / "DUTS" / "DUTS-TR"
    for sub, src, ext in (
        ("DUTS-TR-Image", "images", ".jpg"),
        ("DUTS-TR-Mask", "ground_truth_mask", ".png"),
    ):
        (tr / sub).mkdir(parents=True)
        for s in stems:
            os.symlink(ecssd / src / f"{s}{ext}", tr / sub / f"{s}{ext}")
    return tr


def test_script_and_loader(ecssd, tmp_path):
    tr = _fake_duts(ecssd, tmp_path, [f"{i:04d}" for i in range(20, 31)])
    prep.main(["--duts-root", str(tmp_path / "DUTS")])
    kept = (tr / "duts_single.txt").read_text().split()
    assert kept == ["0020", "0021", "0022", "0023", "0024", "0027", "0028", "0029", "0030"]
    dicts = load_salient_images(
        str(tr / "DUTS-TR-Image"), str(tr / "DUTS-TR-Mask"), str(tr / "duts_single.txt")
    )
    assert [Path(d["file_name"]).stem for d in dicts] == kept
    for d in dicts:
        assert _mask(ecssd, Path(d["file_name"]).stem).shape == (d["height"], d["width"])
        assert d["salient_mask_file"].endswith(Path(d["file_name"]).stem + ".png")


def test_empty_mask_folder(tmp_path):
    (tmp_path / "DUTS" / "DUTS-TR" / "DUTS-TR-Mask").mkdir(parents=True)
    with pytest.raises(ValueError, match="DUTS-TR-Mask: no .png masks"):
        prep.main(["--duts-root", str(tmp_path / "DUTS")])
