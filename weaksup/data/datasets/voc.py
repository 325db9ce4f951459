"""
PASCAL VOC 2012 + SBD ("train_aug", 10,582 images; val 1,449), as written by
``datasets/prepare_voc_sbd.py``: instance segmentation as COCO json, semantic segmentation as
PNG label maps (VOC class index, 0 = background, 255 = ignore).

Layout::

    VOC2012/JPEGImages/<id>.jpg
    VOC2012/weaksup/instances_<split>.json     COCO json, file_name relative to JPEGImages
    VOC2012/weaksup/sem_seg_<split>.json       {"images": [{image_id, file_name, sem_seg_file_name,
                                                 height, width}]}, paths relative to JPEGImages
                                                 and to VOC2012/weaksup
    VOC2012/weaksup/SegmentationClassAug/<id>.png
"""

import json
import os
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.pascal_voc import CLASS_NAMES

from .coco import register_coco_boxonly, register_coco_instances
from .sanitize import check_annotation_file, sanitize_dataset_dicts

__all__ = [
    "VOC_CLASSES",
    "VOC_SEM_SEG_CLASSES",
    "load_voc_sem_seg",
    "register_voc_instance",
    "register_voc_sem_seg",
]

VOC_CLASSES = list(CLASS_NAMES)  # the 20 object classes; json category id = VOC index 1..20
VOC_SEM_SEG_CLASSES = ["background"] + VOC_CLASSES  # label map value = index here


def register_voc_instance(
    name: str,
    json_file: str,
    image_root: str,
    box_only: bool = False,
    thing_classes: Sequence[str] = VOC_CLASSES,
) -> None:
    """
    Register a converted VOC/SBD instance split (box-only: no ``segmentation`` at all).
    ``thing_classes`` must equal the json's category names (other names for a folder converted
    with its own ``class_names.txt``).
    """
    register = register_coco_boxonly if box_only else register_coco_instances
    register(name, {"thing_classes": list(thing_classes)}, json_file, image_root)


def load_voc_sem_seg(json_file: str, image_root: str, sem_seg_root: str) -> List[Dict]:
    """Load a split list written by ``prepare_voc_sbd.py`` as Detectron2 semantic dicts."""
    check_annotation_file(json_file)
    try:
        with open(json_file) as f:
            images = json.load(f)["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{json_file}: not a semantic-segmentation split file ({e!r})") from e
    dicts = [
        {
            "file_name": os.path.join(image_root, im["file_name"]),
            "sem_seg_file_name": os.path.join(sem_seg_root, im["sem_seg_file_name"]),
            "height": im["height"],
            "width": im["width"],
            "image_id": im["image_id"],
        }
        for im in images
    ]
    return sanitize_dataset_dicts(dicts, json_file, num_classes=None)


def register_voc_sem_seg(name: str, json_file: str, image_root: str, sem_seg_root: str) -> None:
    """Register a converted VOC/SBD semantic split for Detectron2's ``SemSegEvaluator``."""
    DatasetCatalog.register(name, lambda: load_voc_sem_seg(json_file, image_root, sem_seg_root))
    MetadataCatalog.get(name).set(
        stuff_classes=list(VOC_SEM_SEG_CLASSES),
        ignore_label=255,
        evaluator_type="sem_seg",
        image_root=image_root,
        sem_seg_root=sem_seg_root,
    )
