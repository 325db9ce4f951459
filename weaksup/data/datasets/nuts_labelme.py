"""The small COCO-format datasets of /work/shared/data used by the CPU demos and tests.

* ``nuts_coco_train`` / ``nuts_coco_val``: nuts_coco (18 images: dates, figs, hazelnuts) split by
  image id, every third image (index 2, 5, ...) in ``val``;
* ``labelme_voc3``: labelme's 3 VOC-class example images.

Roots: ``$DETECTRON2_DATASETS/<folder>``, else ``../shared/data/<folder>``.
"""

import json
import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

from .coco import load_coco_json

__all__ = ["register_nuts_labelme"]


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


def register_nuts_labelme(nuts: str, labelme: str) -> None:
    """Register the datasets of the module docstring from the nuts_coco ``data`` folder and the
    labelme COCO-export folder."""
    nuts_json = os.path.join(nuts, "trainval.json")
    _register_coco("nuts_coco_train", nuts_json, os.path.join(nuts, "images"), "train")
    _register_coco("nuts_coco_val", nuts_json, os.path.join(nuts, "images"), "val")
    _register_coco("labelme_voc3", os.path.join(labelme, "annotations.json"), labelme)
