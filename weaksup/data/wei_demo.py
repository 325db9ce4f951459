"""The Wei et al. CPU demo's datasets: image-level labels from PennFudan, nuts_coco and
labelme_voc3 on one class list, and a semantic validation set with derived label maps.

* ``wei_demo_train``: image-level labels (:mod:`.datasets.image_labels`) of PennFudan train
  (128 images, ``person``), nuts_coco train (12 images: dates, figs, hazelnuts) and the 3
  labelme_voc3 images (VOC classes);
* ``wei_demo_val_sem_seg``: PennFudan val (42) + nuts_coco val (6, every third image by id),
  label maps derived once from their instance masks (``$WEAKSUP_CACHE/sem_seg/wei_demo_val``,
  :func:`~weaksup.data.mask_subset.register_instance_sem_seg`), for the ``sem_seg`` evaluator.

Roots: ``$DETECTRON2_DATASETS/<folder>``, else ``../shared/data/<folder>``.
"""

import json
import os
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .datasets.builtin import shared_data_root
from .datasets.coco import load_coco_json
from .datasets.image_labels import register_image_label_union
from .mask_subset import cache_dir, register_instance_sem_seg

__all__ = ["WEI_DEMO_CLASSES", "register_wei_demo"]

# Every class with an image in the demo data; the segmentation networks add background first.
WEI_DEMO_CLASSES = ["person", "date", "fig", "hazelnut", "bottle", "bus", "car", "chair", "sofa"]


def _coco_split(name: str, json_file: str, image_root: str, split: str) -> List[Dict]:
    """nuts_coco split: images sorted by id, every third one (index 2, 5, ...) is ``val``."""
    dicts = sorted(load_coco_json(json_file, image_root, name), key=lambda r: r["image_id"])
    if split == "all":
        return dicts
    return [r for i, r in enumerate(dicts) if (i % 3 == 2) == (split == "val")]


def _register_coco(name: str, json_file: str, image_root: str, split: str = "all") -> None:
    DatasetCatalog.register(name, lambda: _coco_split(name, json_file, image_root, split))
    MetadataCatalog.get(name).set(
        thing_classes=_category_names(json_file),
        json_file=json_file,
        image_root=image_root,
        evaluator_type="coco",
    )


def _category_names(json_file: str) -> List[str]:
    """Class names of a COCO json in category-id order (the loader's contiguous order); none
    when the file is missing (its loader then reports it when the dataset is used)."""
    if not os.path.isfile(json_file):
        return []
    with open(json_file) as f:
        return [c["name"] for c in sorted(json.load(f)["categories"], key=lambda c: c["id"])]


def _union_instances(base_names: Sequence[str], classes: Sequence[str]) -> List[Dict]:
    """Instance records of ``base_names`` with category ids mapped by name onto ``classes``."""
    index = {n: i for i, n in enumerate(classes)}
    out = []
    for base in base_names:
        names = MetadataCatalog.get(base).thing_classes
        for r in DatasetCatalog.get(base):
            anns = [{**a, "category_id": index[names[a["category_id"]]]} for a in r["annotations"]]
            out.append({**r, "image_id": f"{base}:{r['image_id']}", "annotations": anns})
    return out


def register_wei_demo(root: str) -> None:
    """Register the demo datasets (module docstring) under ``root``."""
    nuts = os.path.join(shared_data_root(root, "nuts_coco"), "data")
    labelme = os.path.join(
        shared_data_root(root, "labelme_voc3"), "examples/instance_segmentation/data_dataset_coco"
    )
    nuts_json = os.path.join(nuts, "trainval.json")
    _register_coco("nuts_coco_train", nuts_json, os.path.join(nuts, "images"), "train")
    _register_coco("nuts_coco_val", nuts_json, os.path.join(nuts, "images"), "val")
    _register_coco("labelme_voc3", os.path.join(labelme, "annotations.json"), labelme)
    register_image_label_union(
        "wei_demo_train",
        ["pennfudan_train_boxonly", "nuts_coco_train", "labelme_voc3"],
        WEI_DEMO_CLASSES,
    )
    val_bases = ["pennfudan_val", "nuts_coco_val"]
    DatasetCatalog.register("wei_demo_val", lambda: _union_instances(val_bases, WEI_DEMO_CLASSES))
    MetadataCatalog.get("wei_demo_val").set(thing_classes=list(WEI_DEMO_CLASSES))
    register_instance_sem_seg(
        "wei_demo_val_sem_seg", "wei_demo_val", os.path.join(cache_dir(), "sem_seg", "wei_demo_val")
    )


register_wei_demo(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))
