"""prepare_voc_sbd.py on labelme_voc3: masks, classes and label maps equal the source PNGs."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.evaluation import SemSegEvaluator
from PIL import Image

from conftest import REPO_ROOT, shared_path
from weaksup.data.datasets import register_voc_instance, register_voc_sem_seg

_spec = importlib.util.spec_from_file_location(
    "prepare_voc_sbd", REPO_ROOT / "datasets" / "prepare_voc_sbd.py"
)
prep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prep)

IDS = ["2011_000003", "2011_000006", "2011_000025"]


@pytest.fixture(scope="module")
def voc():
    return shared_path("labelme_voc3", "examples", "instance_segmentation", "data_dataset_voc")


def _png(voc, kind, image_id):
    return np.asarray(Image.open(voc / kind / f"{image_id}.png"))


def _decode(rle):
    return mask_util.decode({**rle, "counts": rle["counts"].encode()})


def _check_instances(coco, voc, expected_ids):
    """Every annotation equals its object in SegmentationObject, pixel for pixel, in id order."""
    images = {im["id"]: im for im in coco["images"]}
    assert [im["file_name"] for im in coco["images"]] == [f"{i}.jpg" for i in expected_ids]
    n = 0
    for image_id, im in images.items():
        name = im["file_name"][: -len(".jpg")]
        objects, classes = _png(voc, "SegmentationObject", name), _png(
            voc, "SegmentationClass", name
        )
        anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
        object_ids = [k for k in np.unique(objects) if k not in (0, 255)]
        assert len(anns) == len(object_ids)
        for k, ann in zip(object_ids, anns):
            mask = _decode(ann["segmentation"])
            assert np.array_equal(mask, (objects == k).astype(np.uint8))
            (category,) = set(np.unique(classes[objects == k])) - {255}  # one class per object here
            assert ann["category_id"] == category and ann["iscrowd"] == 0
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            assert ann["area"] == mask.sum() and isinstance(ann["segmentation"]["counts"], str)
        n += len(anns)
    return n


def test_labelme_voc3_cli(voc, tmp_path):
    out = tmp_path / "out"
    # acceptance check 3: the script on ../shared/data/labelme_voc3 (finds the VOC-layout folder)
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "datasets" / "prepare_voc_sbd.py"),
            "--voc-root",
            str(voc.parents[2]),
            "--output-dir",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    coco = json.loads((out / "instances_all.json").read_text())
    assert _check_instances(coco, voc, IDS) == 12
    names = (voc / "class_names.txt").read_text().split("\n")[1:]
    assert [c["name"] for c in coco["categories"]] == names
    for image_id in IDS:
        sem = np.asarray(Image.open(out / "SegmentationClassAug" / f"{image_id}.png"))
        assert np.array_equal(sem, _png(voc, "SegmentationClass", image_id))
        # Detectron2's mapper reads label maps as "L": the indices must survive that
        read = utils.read_image(str(out / "SegmentationClassAug" / f"{image_id}.png"), "L")[..., 0]
        assert np.array_equal(read, sem)

    # the registered loaders read what the converter wrote
    image_root = str(voc / "JPEGImages")
    register_voc_instance(
        "test_voc3_inst", str(out / "instances_all.json"), image_root, thing_classes=names
    )
    register_voc_instance("test_voc3_box", str(out / "instances_all.json"), image_root, True, names)
    register_voc_sem_seg("test_voc3_sem", str(out / "sem_seg_all.json"), image_root, str(out))
    inst, box = DatasetCatalog.get("test_voc3_inst"), DatasetCatalog.get("test_voc3_box")
    assert sum(len(r["annotations"]) for r in inst) == sum(len(r["annotations"]) for r in box) == 12
    assert all("segmentation" in a for r in inst for a in r["annotations"])
    assert not any("segmentation" in a for r in box for a in r["annotations"])
    sem = DatasetCatalog.get("test_voc3_sem")
    assert [
        os.path.isfile(d["sem_seg_file_name"]) and os.path.isfile(d["file_name"]) for d in sem
    ] == [True] * 3
    meta = MetadataCatalog.get("test_voc3_sem")
    assert (meta.ignore_label, meta.evaluator_type, len(meta.stuff_classes)) == (255, "sem_seg", 21)
    # Detectron2's SemSegEvaluator runs on the registration: a perfect prediction scores 100 mIoU
    evaluator = SemSegEvaluator("test_voc3_sem", distributed=False)
    evaluator.reset()
    for d in sem:
        gt = torch.as_tensor(np.asarray(Image.open(d["sem_seg_file_name"])), dtype=torch.long)
        scores = F.one_hot(gt.clamp(max=20), 21).permute(2, 0, 1).float()
        evaluator.process([{"file_name": d["file_name"]}], [{"sem_seg": scores}])
    assert evaluator.evaluate()["sem_seg"]["mIoU"] == 100.0
    assert {
        f"voc_2012_{s}"
        for s in (
            "train_aug_instance",
            "train_aug_instance_boxonly",
            "val_instance",
            "train_aug_sem_seg",
            "val_sem_seg",
        )
    } <= set(DatasetCatalog.list())


def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def test_sbd_mat_and_train_aug(voc, tmp_path):
    """SBD path: 2011_000006 only as SBD .mat files (built from its VOC PNGs), the others as VOC."""
    a, b, c = IDS
    voc_root, sbd_root = tmp_path / "VOC2012", tmp_path / "benchmark_RELEASE"
    for i in IDS:
        _link(voc / "JPEGImages" / f"{i}.jpg", voc_root / "JPEGImages" / f"{i}.jpg")
    for i in (a, c):
        for kind in ("SegmentationObject", "SegmentationClass"):
            _link(voc / kind / f"{i}.png", voc_root / kind / f"{i}.png")
    sets = voc_root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text(f"{a}\n")
    (sets / "val.txt").write_text(f"{c}\n")
    # SBD structure: no 255 in its maps; GTinst.Categories[k - 1] is the class of object k
    objects, classes = _png(voc, "SegmentationObject", b), _png(voc, "SegmentationClass", b)
    classes = np.where(classes == 255, 0, classes).astype(np.uint8)
    categories = np.zeros((objects.max(), 1), dtype=np.uint8)
    for k in np.unique(objects)[1:]:
        categories[k - 1] = np.bincount(classes[objects == k]).argmax()
    (sbd_root / "dataset" / "inst").mkdir(parents=True)
    (sbd_root / "dataset" / "cls").mkdir()
    scipy.io.savemat(
        sbd_root / "dataset" / "inst" / f"{b}.mat",
        {
            "GTinst": {
                "Segmentation": objects,
                "Boundaries": np.zeros((objects.max(), 1), dtype=object),
                "Categories": categories,
            }
        },
    )
    scipy.io.savemat(
        sbd_root / "dataset" / "cls" / f"{b}.mat",
        {
            "GTcls": {
                "Segmentation": classes,
                "Boundaries": np.zeros((20, 1), dtype=object),
                "CategoriesPresent": np.unique(classes)[1:, None],
            }
        },
    )
    (sbd_root / "dataset" / "train.txt").write_text(f"{b}\n")
    (sbd_root / "dataset" / "val.txt").write_text(f"{c}\n")  # in VOC val: excluded from train_aug

    out = tmp_path / "out"
    prep.main(["--voc-root", str(voc_root), "--sbd-root", str(sbd_root), "--output-dir", str(out)])
    train_aug = json.loads((out / "instances_train_aug.json").read_text())
    assert _check_instances(train_aug, voc, [a, b]) == 3 + 6
    assert [cat["name"] for cat in train_aug["categories"]] == prep.VOC_CLASSES
    val = json.loads((out / "instances_val.json").read_text())
    assert _check_instances(val, voc, [c]) == 3
    assert np.array_equal(
        np.asarray(Image.open(out / "SegmentationClassAug" / f"{b}.png")), classes
    )
    sem = json.loads((out / "sem_seg_train_aug.json").read_text())["images"]
    assert [s["sem_seg_file_name"] for s in sem] == [
        f"SegmentationClassAug/{i}.png" for i in (a, b)
    ]


def _voc_copy(voc, tmp_path):
    root = tmp_path / "voc"
    for kind, ext in (
        ("JPEGImages", ".jpg"),
        ("SegmentationObject", ".png"),
        ("SegmentationClass", ".png"),
    ):
        _link(voc / kind / f"{IDS[0]}{ext}", root / kind / f"{IDS[0]}{ext}")
    return root


def test_bad_input(voc, tmp_path):
    root = _voc_copy(voc, tmp_path)
    cls_png = root / "SegmentationClass" / f"{IDS[0]}.png"
    classes = _png(voc, "SegmentationClass", IDS[0]).copy()
    classes[0, 0] = 30  # no such VOC class
    os.unlink(cls_png)
    Image.fromarray(classes, mode="L").save(cls_png)
    with pytest.raises(
        ValueError, match=rf"{root}/SegmentationObject/{IDS[0]}.png: unknown class indices \[30\]"
    ):
        prep.convert(str(root), None, str(tmp_path / "out"), ["all"])
    cls_png.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=rf"cannot read label PNG {cls_png}"):
        prep.convert(str(root), None, str(tmp_path / "out"), ["all"])
    os.unlink(root / "JPEGImages" / f"{IDS[0]}.jpg")
    os.unlink(cls_png)
    _link(voc / "SegmentationClass" / f"{IDS[0]}.png", cls_png)
    with pytest.raises(
        FileNotFoundError, match=rf"image not found: {root}/JPEGImages/{IDS[0]}.jpg"
    ):
        prep.convert(str(root), None, str(tmp_path / "out"), ["all"])
    with pytest.raises(FileNotFoundError, match="train.txt"):
        prep.convert(str(root), None, str(tmp_path / "out"), ["train"])
