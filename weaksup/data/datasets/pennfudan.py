"""
Penn-Fudan pedestrians: PASCAL Annotation v1.00 text files, instance masks in ``PedMasks``.

Layout (``$DETECTRON2_DATASETS/PennFudanPed``)::

    PNGImages/<name>.png  Annotation/<name>.txt  PedMasks/<name>_mask.png  (value k = object k)

Split (the database has none): images sorted by file name, every 4th one (indices 3, 7, 11, ...)
is ``val`` (42 images), the others are ``train`` (128 images). Interleaving keeps both the Fudan and
the Penn halves in each split.
"""

import os
import re
from typing import Dict, List

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from .sanitize import check_annotation_file, sanitize_dataset_dicts, unknown_class_error

__all__ = [
    "PENNFUDAN_CLASSES",
    "pennfudan_annotation_id",
    "parse_pennfudan_annotation",
    "load_pennfudan",
    "register_pennfudan",
]

PENNFUDAN_CLASSES = ["person"]
# Original labels of the text files -> class index ("PASpersonWalking", "PASpersonStanding").
_LABEL_PREFIX = "PASperson"

_SIZE_RE = re.compile(r"Image size \(X x Y x C\)\s*:\s*(\d+)\s*x\s*(\d+)")
_COUNT_RE = re.compile(r"Objects with ground truth\s*:\s*(\d+)")
_BOX_LINE_RE = re.compile(r"^\s*Bounding box for object", re.MULTILINE)
_BOX_RE = re.compile(
    r'Bounding box for object (\d+) "([^"]*)" \(Xmin, Ymin\) - \(Xmax, Ymax\)\s*:\s*'
    r"\((-?\d+),\s*(-?\d+)\)\s*-\s*\((-?\d+),\s*(-?\d+)\)"
)


def pennfudan_annotation_id(image_id: int, object_id: int) -> int:
    """The annotation id of object ``object_id`` (1-based, its value in the mask PNG) of image
    ``image_id``: unique across splits, stable when a box is dropped, and the id written by
    ``datasets/prepare_pennfudan.py`` (pseudo-mask files are matched to annotations by it)."""
    return 1000 * image_id + object_id


def parse_pennfudan_annotation(txt_file: str) -> Dict:
    """
    Parse one PASCAL Annotation v1.00 text file.

    Boxes ``(Xmin, Ymin) - (Xmax, Ymax)`` are 1-based and inclusive; they become 0-based
    ``XYXY_ABS`` boxes ``[Xmin - 1, Ymin - 1, Xmax, Ymax]`` (pixel-edge coordinates).

    Returns:
        ``{"height", "width", "annotations": [{"bbox", "bbox_mode", "category_id", "iscrowd",
        "object_id"}]}``, where ``object_id`` is the object number (its value in the mask PNG).
        Boxes are not checked here; :func:`load_pennfudan` sanitizes them. A box line that does not
        parse, or a box count other than the file's "Objects with ground truth : N", raises a
        ``ValueError`` naming the file (and the line), so no object drops out silently.
    """
    check_annotation_file(txt_file)
    with open(txt_file, encoding="latin-1") as f:
        text = f.read()
    size = _SIZE_RE.search(text)
    if size is None:
        raise ValueError(f"{txt_file}: no 'Image size (X x Y x C)' line")
    _check_box_lines(txt_file, text)
    annotations = []
    for match in _BOX_RE.finditer(text):
        object_id, label = int(match.group(1)), match.group(2)
        if not label.startswith(_LABEL_PREFIX):
            raise unknown_class_error(txt_file, f"object {object_id}", label, [_LABEL_PREFIX + "*"])
        xmin, ymin, xmax, ymax = (int(v) for v in match.groups()[2:])
        annotations.append(
            {
                "bbox": [xmin - 1, ymin - 1, xmax, ymax],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "object_id": object_id,
            }
        )
    return {"width": int(size.group(1)), "height": int(size.group(2)), "annotations": annotations}


def _check_box_lines(txt_file: str, text: str) -> None:
    """Every "Bounding box for object" line parses, and their number is the declared count."""
    lines = [text[m.start() :].split("\n", 1)[0] for m in _BOX_LINE_RE.finditer(text)]
    for line in lines:
        if not _BOX_RE.search(line):
            number = text[: text.index(line)].count("\n") + 1
            raise ValueError(f"{txt_file}:{number}: malformed bounding box line: {line.strip()!r}")
    count = _COUNT_RE.search(text)
    if count is not None and int(count.group(1)) != len(lines):
        raise ValueError(
            f"{txt_file}: 'Objects with ground truth : {count.group(1)}' but {len(lines)} "
            "bounding box line(s)"
        )


def _attach_masks(mask_file: str, annotations: List[Dict], height: int, width: int) -> None:
    """Attach the mask of object ``object_id`` of ``mask_file`` to each annotation, as RLE."""
    if not os.path.isfile(mask_file):
        raise FileNotFoundError(f"Mask file not found: {mask_file}")
    masks = np.asarray(Image.open(mask_file))
    if masks.shape != (height, width):
        raise ValueError(
            f"{mask_file}: mask size {masks.shape} differs from the annotated {(height, width)}"
        )
    for ann in annotations:
        rle = mask_util.encode(np.asfortranarray(masks == ann["object_id"], dtype=np.uint8))
        if mask_util.area(rle) == 0:
            raise ValueError(f"{mask_file}: object {ann['object_id']} has no pixel in the mask")
        rle["counts"] = rle["counts"].decode("ascii")
        ann["segmentation"] = rle


def load_pennfudan(root: str, split: str, with_masks: bool = True) -> List[Dict]:
    """
    Load a Penn-Fudan split as Detectron2 dicts.

    Args:
        root: the ``PennFudanPed`` folder.
        split: ``"train"``, ``"val"`` or ``"all"`` (see the module docstring).
        with_masks: attach instance masks (RLE with ``str`` counts) from ``PedMasks``; if False the
            annotations have no ``segmentation`` key (box-only training).
    """
    if split not in ("train", "val", "all"):
        raise ValueError(f"Unknown PennFudan split {split!r}; expected train, val or all")
    ann_dir = os.path.join(root, "Annotation")
    if not os.path.isdir(ann_dir):
        raise FileNotFoundError(f"PennFudan annotation folder not found: {ann_dir}")
    names = sorted(f[: -len(".txt")] for f in os.listdir(ann_dir) if f.endswith(".txt"))
    if not names:
        raise ValueError(f"{ann_dir}: no annotation (.txt) files")
    dicts = []
    for image_id, name in enumerate(names):  # ids index all images, so they agree across splits
        if split != "all" and (image_id % 4 == 3) != (split == "val"):
            continue
        txt_file = os.path.join(ann_dir, name + ".txt")
        record = parse_pennfudan_annotation(txt_file)
        image_file = os.path.join(root, "PNGImages", name + ".png")
        if not os.path.isfile(image_file):
            raise FileNotFoundError(f"{txt_file}: its image {image_file} is missing")
        if with_masks:
            mask_file = os.path.join(root, "PedMasks", name + "_mask.png")
            _attach_masks(mask_file, record["annotations"], record["height"], record["width"])
        for ann in record["annotations"]:
            ann["id"] = pennfudan_annotation_id(image_id, ann.pop("object_id"))
        record.update(file_name=image_file, image_id=image_id)
        # one sanity check (and at most one warning) per annotation file
        dicts += sanitize_dataset_dicts([record], txt_file, len(PENNFUDAN_CLASSES))
    return dicts


def register_pennfudan(name: str, root: str, split: str, with_masks: bool = True) -> None:
    """Register a PennFudan split; ``with_masks=False`` gives the box-only view (``*_boxonly``)."""
    DatasetCatalog.register(name, lambda: load_pennfudan(root, split, with_masks))
    MetadataCatalog.get(name).set(
        thing_classes=list(PENNFUDAN_CLASSES),
        image_root=os.path.join(root, "PNGImages"),
        evaluator_type="coco",
        dirname=root,
        split=split,
    )
