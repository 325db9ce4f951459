"""COCO-format json datasets (with masks, or box-only with every ``segmentation`` dropped)."""

import json
from typing import Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import load_coco_json as _d2_load_coco_json

from ...utils.coco_json import check_coco_file
from .image_sets import declare_image_sources
from .sanitize import check_annotation_file, sanitize_dataset_dicts, unknown_class_error

__all__ = [
    "PSEUDO_MASK_KEYS",
    "load_coco_json",
    "register_coco_instances",
    "register_coco_boxonly",
    "COCO_TO_VOC",
    "load_class_subset",
    "register_class_subset",
]

# Per-annotation keys that weaksup's pseudo-mask jsons may carry; kept when present.
PSEUDO_MASK_KEYS = ("mask_valid", "box_agreement", "pseudo_method", "fallback")


def _unknown_category(json_file: str, exc: KeyError) -> ValueError:
    """Name the first annotation of ``json_file`` whose category is not in its ``categories``."""
    with open(json_file) as f:
        data = json.load(f)
    known = sorted(c["id"] for c in data.get("categories", []))
    for ann in data.get("annotations", []):
        if ann.get("category_id") not in known:
            record = f"image {ann.get('image_id')!r} annotation id {ann.get('id')!r}"
            return unknown_class_error(json_file, record, ann.get("category_id"), known)
    return ValueError(f"{json_file}: {exc}")


def load_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    box_only: bool = False,
    extra_annotation_keys: Sequence[str] = ("id",) + PSEUDO_MASK_KEYS,
) -> List[Dict]:
    """
    Detectron2's ``load_coco_json`` plus weaksup's sanity checks (:mod:`.sanitize`).

    Args:
        json_file, image_root, dataset_name: as in Detectron2 (``dataset_name`` sets
            ``thing_classes`` and the category id map in its metadata; without it category ids
            stay the json's own and are not checked).
        box_only: drop every ``segmentation`` at load time, so that no mask can leak into
            box-supervised training. Instances whose polygons Detectron2 rejects (< 3 points) are
            filtered by Detectron2 before this drop, as in the with-mask variant.
        extra_annotation_keys: per-annotation keys kept as they are (by default the annotation
            ``id``, by which pseudo-mask files are matched, and the pseudo-mask flags).

    Returns:
        Detectron2 dataset dicts with ``XYXY_ABS`` boxes.
    """
    check_annotation_file(json_file)
    check_coco_file(json_file)  # a non-object json, a null box, duplicate ids: named, not crashed
    try:
        dicts = _d2_load_coco_json(json_file, image_root, dataset_name, list(extra_annotation_keys))
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file}: not a valid json file ({e})") from e
    except KeyError as e:  # raised by Detectron2 for a category id missing from "categories"
        raise _unknown_category(json_file, e) from e
    if box_only:
        for record in dicts:
            for ann in record["annotations"]:
                ann.pop("segmentation", None)
    # Without a dataset name Detectron2 keeps the json's raw category ids and checks none of them.
    num_classes = len(MetadataCatalog.get(dataset_name).thing_classes) if dataset_name else None
    return sanitize_dataset_dicts(dicts, json_file, num_classes)


def register_coco_instances(name: str, metadata: Dict, json_file: str, image_root: str) -> None:
    """
    Register a COCO json dataset with its masks: Detectron2's ``register_coco_instances``, loading
    through :func:`load_coco_json` (sanity checks, pseudo-mask keys kept).
    """
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


def register_coco_boxonly(name: str, metadata: Dict, json_file: str, image_root: str) -> None:
    """
    Register the box-only view of a COCO json dataset: annotations carry boxes and classes and no
    ``segmentation`` key. Use the name ``<name>_boxonly`` by convention.

    ``json_file`` stays in the metadata so that Detectron2's COCOEvaluator can score boxes.
    """
    DatasetCatalog.register(
        name, lambda: load_coco_json(json_file, image_root, name, box_only=True)
    )
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


# COCO thing classes that are the 20 PASCAL VOC classes (COCO name -> VOC name).
COCO_TO_VOC = {
    "airplane": "aeroplane",
    "bicycle": "bicycle",
    "bird": "bird",
    "boat": "boat",
    "bottle": "bottle",
    "bus": "bus",
    "car": "car",
    "cat": "cat",
    "chair": "chair",
    "cow": "cow",
    "dining table": "diningtable",
    "dog": "dog",
    "horse": "horse",
    "motorcycle": "motorbike",
    "person": "person",
    "potted plant": "pottedplant",
    "sheep": "sheep",
    "couch": "sofa",
    "train": "train",
    "tv": "tvmonitor",
}


def load_class_subset(
    base_name: str, class_map: Dict[str, str], classes: Sequence[str], box_only: bool = False
) -> List[Dict]:
    """Every image of ``base_name``; annotations of the classes in ``class_map`` (base name ->
    name in ``classes``) renumbered onto ``classes``, the others dropped (their pixels become
    background). ``box_only`` also drops every ``segmentation``."""
    names = MetadataCatalog.get(base_name).thing_classes
    index = {n: i for i, n in enumerate(classes)}
    out = []
    for record in DatasetCatalog.get(base_name):
        annotations = []
        for ann in record["annotations"]:
            name = class_map.get(names[ann["category_id"]])
            if name is None:
                continue
            ann = {**ann, "category_id": index[name]}
            if box_only:
                ann.pop("segmentation", None)
            annotations.append(ann)
        out.append({**record, "annotations": annotations})
    return out


def register_class_subset(
    name: str,
    base_name: str,
    class_map: Dict[str, str],
    classes: Sequence[str],
    box_only: bool = False,
) -> None:
    """Register the :func:`load_class_subset` view ``name`` of ``base_name`` (e.g. COCO on the VOC
    classes, BoxSup Sec. 5.1: "we only use the 20 categories that also present in PASCAL VOC")."""
    DatasetCatalog.register(
        name, lambda: load_class_subset(base_name, class_map, classes, box_only)
    )
    MetadataCatalog.get(name).set(thing_classes=list(classes))
    declare_image_sources(name, [base_name])
