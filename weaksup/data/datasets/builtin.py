"""
Register weaksup's builtin datasets on import (lazy loaders, as Detectron2's ``builtin.py``).

Roots: ``$DETECTRON2_DATASETS`` (default ``datasets``); see ``datasets/README.md`` for layouts.
PennFudan falls back to ``<repo>/../shared/data/PennFudanPed`` when the root has no copy.
"""

import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

from ...paths import cache_dir
from .box_free_crops import register_box_free_crops
from .coco import COCO_TO_VOC, register_class_subset, register_coco_boxonly
from .grabcut13 import register_grabcut13
from .image_sets import declare_image_sources, declare_image_split, exclude_voc_photos
from .image_labels import register_image_labels
from .nuts_labelme import register_nuts_labelme
from .pennfudan import register_pennfudan
from .salient import load_salient_images, register_salient, salient_instances
from .voc import VOC_CLASSES, register_voc_instance, register_voc_sem_seg

_REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


def register_all_coco_boxonly(root: str) -> None:
    """``coco_2017_train_boxonly``; the val set is Detectron2's own ``coco_2017_val``."""
    register_coco_boxonly(
        "coco_2017_train_boxonly",
        _get_builtin_metadata("coco"),
        os.path.join(root, "coco/annotations/instances_train2017.json"),
        os.path.join(root, "coco/train2017"),
    )
    declare_image_split("coco_2017_train_boxonly", "coco", ["train2017"])
    for split in ("train", "val"):
        declare_image_split(f"coco_2017_{split}", "coco", [f"{split}2017"])
    # BoxSup Sec. 5.1: COCO on the 20 VOC classes (all 123,287 train + val images; the other
    # classes' objects are background), with masks (Tab. 1 'mask') or boxes only ('semi').
    for split in ("train", "val"):
        for suffix, box_only in (("", False), ("_boxonly", True)):
            register_class_subset(
                f"coco_2017_{split}_voc20{suffix}",
                f"coco_2017_{split}",
                COCO_TO_VOC,
                VOC_CLASSES,
                box_only=box_only,
            )


def register_all_voc_detection(root: str) -> None:
    """Declare the images of Detectron2's VOC detection splits and register them without the
    VOC 2012 segmentation val images (the mIoU / mAP^r test set of every VOC config here):
    ``voc_2012_trainval_minus_seg_val`` (VOC 2012 Main trainval: 11,540 - 1,449 images) and
    ``voc_2007_{trainval,test}_minus_voc12_seg_val`` (the VOC 2007 photos that VOC 2012 holds as
    ``2007_*`` segmentation val images removed, see :mod:`.image_sets`)."""
    seg_val = os.path.join(root, "VOC2012/ImageSets/Segmentation/val.txt")
    for year, split in (("2007", "trainval"), ("2007", "test"), ("2012", "trainval")):
        base = f"voc_{year}_{split}"
        declare_image_split(base, "voc", [f"{year}/Main/{split}"])
        name = f"{base}_minus_{'' if year == '2012' else 'voc12_'}seg_val"
        DatasetCatalog.register(name, lambda base=base: exclude_voc_photos([base], seg_val))
        meta = MetadataCatalog.get(base).as_dict()
        meta = {k: v for k, v in meta.items() if k not in ("name", "image_split")}
        MetadataCatalog.get(name).set(**meta)
        declare_image_split(name, "voc", [f"{year}/Main/{split}"], ["2012/Segmentation/val"])


def register_all_voc_sbd(root: str) -> None:
    """VOC 2012 + SBD instance and semantic splits written by ``datasets/prepare_voc_sbd.py``."""
    image_root = os.path.join(root, "VOC2012/JPEGImages")
    out = os.path.join(root, "VOC2012/weaksup")
    for split in ("train_aug", "val"):
        json_file = os.path.join(out, f"instances_{split}.json")
        register_voc_instance(f"voc_2012_{split}_instance", json_file, image_root)
        if split == "train_aug":
            register_voc_instance(
                f"voc_2012_{split}_instance_boxonly", json_file, image_root, box_only=True
            )
        register_voc_sem_seg(
            f"voc_2012_{split}_sem_seg", os.path.join(out, f"sem_seg_{split}.json"), image_root, out
        )
    for kind in ("instance", "instance_boxonly", "sem_seg"):
        # train_aug = (VOC train + SBD train + SBD val) - VOC val (datasets/prepare_voc_sbd.py)
        declare_image_split(
            f"voc_2012_train_aug_{kind}",
            "voc",
            ["2012/Segmentation/train", "sbd/train", "sbd/val"],
            ["2012/Segmentation/val"],
        )
    for kind in ("instance", "sem_seg"):
        declare_image_split(f"voc_2012_val_{kind}", "voc", ["2012/Segmentation/val"])


def register_all_salient(root: str) -> None:
    """``duts_single_train`` (list from ``datasets/prepare_duts_single.py``), ``ecssd`` and its
    parts ``ecssd_train`` / ``ecssd_heldout`` (900 / 100, :mod:`.salient`), and
    ``ecssd_heldout_instances``: the held-out images as instance dicts (box + mask)."""
    duts = os.path.join(root, "DUTS/DUTS-TR")
    register_salient(
        "duts_single_train",
        os.path.join(duts, "DUTS-TR-Image"),
        os.path.join(duts, "DUTS-TR-Mask"),
        list_file=os.path.join(duts, "duts_single.txt"),
    )
    ecssd = (os.path.join(root, "ECSSD/images"), os.path.join(root, "ECSSD/ground_truth_mask"))
    register_salient("ecssd", *ecssd)
    declare_image_split("duts_single_train", "duts", ["DUTS-TR"])
    declare_image_split("ecssd", "ecssd", ["all"])
    for part in ("train", "heldout"):
        register_salient(f"ecssd_{part}", *ecssd, part=part)
        declare_image_split(f"ecssd_{part}", "ecssd", [part])
    DatasetCatalog.register(
        "ecssd_heldout_instances",
        lambda: salient_instances(load_salient_images(*ecssd, part="heldout")),
    )
    MetadataCatalog.get("ecssd_heldout_instances").set(thing_classes=["object"])
    declare_image_sources("ecssd_heldout_instances", ["ecssd_heldout"])


def register_all_grabcut13(root: str) -> None:
    """``grabcut13``: the 13 images of the GrabCut benchmark, one box + mask each."""
    register_grabcut13("grabcut13", shared_data_root(root, "grabcut13"))
    declare_image_split("grabcut13", "grabcut13", ["all"])


def shared_data_root(root: str, folder: str) -> str:
    """``<root>/<folder>``, else the shared copy next to the repository."""
    path = os.path.join(root, folder)
    if os.path.isdir(path):
        return path
    return os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "data", folder))


def pennfudan_root(root: str) -> str:
    """``<root>/PennFudanPed``, else the shared copy next to the repository."""
    return shared_data_root(root, "PennFudanPed")


def register_all_pennfudan(root: str) -> None:
    """``pennfudan_train``, ``pennfudan_train_boxonly``, ``pennfudan_val`` (see :mod:`.pennfudan`),
    and ``pennfudan_train_box_free``: street crops of the training photos without any labelled
    pedestrian (:mod:`.box_free_crops`, written under ``$WEAKSUP_CACHE/box_free_crops``)."""
    path = pennfudan_root(root)
    register_pennfudan("pennfudan_train", path, "train")
    register_pennfudan("pennfudan_train_boxonly", path, "train", with_masks=False)
    register_pennfudan("pennfudan_val", path, "val")
    for split in ("train", "train_boxonly", "val"):
        declare_image_split(f"pennfudan_{split}", "pennfudan", [split.split("_")[0]])
    register_box_free_crops(
        "pennfudan_train_box_free",
        "pennfudan_train_boxonly",
        os.path.join(cache_dir(), "box_free_crops", "pennfudan_train"),
    )


def register_all_nuts_labelme(root: str) -> None:
    """``nuts_coco_train``, ``nuts_coco_val``, ``labelme_voc3`` (see :mod:`.nuts_labelme`)."""
    register_nuts_labelme(
        os.path.join(shared_data_root(root, "nuts_coco"), "data"),
        os.path.join(
            shared_data_root(root, "labelme_voc3"),
            "examples/instance_segmentation/data_dataset_coco",
        ),
    )
    for split in ("train", "val"):
        declare_image_split(f"nuts_coco_{split}", "nuts_coco", [split])
    declare_image_split("labelme_voc3", "voc", ["labelme_voc3"])  # 3 VOC 2011 photos


def register_all_image_labels() -> None:
    """Image-level views (Wei et al.): ``voc_2012_train_aug_image_labels`` and
    ``pennfudan_train_image_labels`` (class sets only; see :mod:`.image_labels`)."""
    register_image_labels("voc_2012_train_aug_image_labels", "voc_2012_train_aug_instance_boxonly")
    register_image_labels("pennfudan_train_image_labels", "pennfudan_train_boxonly")


_root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
register_all_coco_boxonly(_root)
register_all_voc_detection(_root)
register_all_voc_sbd(_root)
register_all_salient(_root)
register_all_grabcut13(_root)
register_all_pennfudan(_root)
register_all_nuts_labelme(_root)
register_all_image_labels()
