"""datasets/prepare_pennfudan.py: PennFudan as COCO jsons, masks equal to the PedMasks pixels."""

import json
import os

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from conftest import REPO_ROOT, shared_path


def _prepare(tmp_path, *splits):
    import runpy

    module = runpy.run_path(str(REPO_ROOT / "datasets" / "prepare_pennfudan.py"))
    root = shared_path("PennFudanPed")
    module["main"](["--root", str(root), "--output-dir", str(tmp_path), "--splits", *splits])
    out = {}
    for split in splits:
        with open(tmp_path / f"instances_{split}.json") as f:
            out[split] = json.load(f)
    return root, out


def test_counts_ids_and_masks(tmp_path):
    root, coco = _prepare(tmp_path, "train", "val")
    train, val = coco["train"], coco["val"]
    assert (len(train["images"]), len(train["annotations"])) == (128, 312)
    assert (len(val["images"]), len(val["annotations"])) == (42, 111)
    assert train["categories"] == [{"id": 1, "name": "person"}]
    ids = [a["id"] for a in train["annotations"] + val["annotations"]]
    assert len(set(ids)) == len(ids) == 423
    assert not {i["id"] for i in train["images"]} & {i["id"] for i in val["images"]}
    images = {i["id"]: i for i in val["images"]}
    for image in val["images"][:6]:  # every instance mask equals PedMasks == k, in object order
        assert os.path.isfile(root / "PNGImages" / image["file_name"])
        name = image["file_name"][: -len(".png")]
        ped = np.asarray(Image.open(root / "PedMasks" / f"{name}_mask.png"))
        anns = [a for a in val["annotations"] if a["image_id"] == image["id"]]
        assert len(anns) == ped.max()
        for k, ann in enumerate(anns, start=1):
            assert isinstance(ann["segmentation"]["counts"], str)
            mask = mask_util.decode(ann["segmentation"]).astype(bool)
            assert mask.shape == (images[image["id"]]["height"], images[image["id"]]["width"])
            assert np.array_equal(mask, ped == k)
            assert ann["area"] == (ped == k).sum()
            assert ann["id"] == 1000 * image["id"] + k


def test_atomic_and_deterministic(tmp_path):
    _prepare(tmp_path, "val")
    first = (tmp_path / "instances_val.json").read_bytes()
    _prepare(tmp_path, "val")
    assert (tmp_path / "instances_val.json").read_bytes() == first
    assert sorted(os.listdir(tmp_path)) == ["instances_val.json"]  # no temporary file left
