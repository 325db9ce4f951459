"""Annotation sanity checks shared by every weaksup dataset loader.

All loaders report bad input the same way:

* a missing or unreadable annotation file -> ``FileNotFoundError`` / ``PermissionError`` naming it;
* an empty annotation file, or one that yields no image -> ``ValueError`` naming it;
* an unknown class, or an RLE mask whose size or counts do not fit the image -> ``ValueError``
  naming the file and the record;
* a box that is not 4 numbers (a string, a list of strings, 3 values) -> ``ValueError`` naming
  the file and the record;
* image files that do not exist (:func:`check_image_files`) -> ``FileNotFoundError`` naming the
  annotation file, the records and the paths;
* invalid boxes are repaired or dropped, with ONE counted warning per file that names the records:
  boxes partly outside the image are clipped to it; boxes with x2 < x1 or y2 < y1, boxes of zero
  area, boxes with a NaN or infinite coordinate and boxes fully outside the image are dropped (the
  rest of the image is kept).
"""

import logging
import math
import os
from typing import Dict, List, Optional, Sequence

from detectron2.structures import BoxMode

from ...utils.coco_json import is_box
from ...utils.rle import rle_problem

__all__ = [
    "check_annotation_file",
    "check_image_files",
    "unknown_class_error",
    "sanitize_dataset_dicts",
]

logger = logging.getLogger(__name__)

_MAX_LISTED = 10  # records named in a warning; the count always covers all of them


def check_annotation_file(path: str) -> None:
    """Raise a clear error naming ``path`` if it is missing, unreadable or empty."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Annotation file not found: {path}")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"Annotation file is not readable: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"Annotation file is empty: {path}")


def check_image_files(dataset_dicts: List[Dict], source: str) -> None:
    """Raise ``FileNotFoundError`` naming ``source`` and the records whose ``file_name`` is not a
    file (the first ones and the count), instead of a failure deep in a data-loader worker."""
    missing = [r for r in dataset_dicts if not os.path.isfile(r["file_name"])]
    if missing:
        listed = "; ".join(
            f"image {r.get('image_id')!r}: {r['file_name']}" for r in missing[:_MAX_LISTED]
        )
        more = len(missing) - _MAX_LISTED
        raise FileNotFoundError(
            f"{source}: {len(missing)} of {len(dataset_dicts)} image file(s) not found: {listed}"
            + (f"; ... and {more} more" if more > 0 else "")
        )


def unknown_class_error(source: str, record: str, label: object, known: Sequence) -> ValueError:
    """The error every loader raises (``raise unknown_class_error(...)``) for an unknown class."""
    known = list(known)
    shown = ", ".join(map(repr, known[:20])) + (", ..." if len(known) > 20 else "")
    return ValueError(f"{source}: {record}: unknown class {label!r} (known: {shown})")


def _describe(record: Dict, index: int) -> str:
    return f"image {record.get('image_id', record.get('file_name'))!r} annotation {index}"


def sanitize_dataset_dicts(
    dataset_dicts: List[Dict], source: str, num_classes: Optional[int]
) -> List[Dict]:
    """
    Check and repair Detectron2 dataset dicts in place; boxes come out as ``XYXY_ABS``.

    Args:
        dataset_dicts: dicts with ``height``, ``width`` and optional ``annotations``
            (``bbox``, ``bbox_mode``, ``category_id`` contiguous in ``[0, num_classes)``).
        source: the annotation file (or folder) the dicts come from, named in every message.
        num_classes: number of classes of the dataset; None skips the class check (raw dataset
            ids that the caller does not map).

    Returns:
        ``dataset_dicts`` (the same list), with invalid boxes clipped or dropped.
    """
    if not dataset_dicts:
        raise ValueError(f"{source}: no images found in the annotation source")
    dropped: List[str] = []
    clipped: List[str] = []
    for record in dataset_dicts:
        height, width = record["height"], record["width"]
        if not (height > 0 and width > 0):
            raise ValueError(
                f"{source}: image {record.get('image_id')!r}: invalid size {width}x{height}"
            )
        kept = []
        for i, ann in enumerate(record.get("annotations", [])):
            category = ann["category_id"]
            if num_classes is not None and not (
                isinstance(category, int) and 0 <= category < num_classes
            ):
                raise unknown_class_error(
                    source, _describe(record, i), category, range(num_classes)
                )
            if isinstance(ann.get("segmentation"), dict):  # RLE: size and counts must fit
                problem = rle_problem(ann["segmentation"], height, width)
                if problem:
                    where = f"{_describe(record, i)} (id {ann.get('id')!r})"
                    raise ValueError(f"{source}: {where}: {problem}")
            if not is_box(ann.get("bbox")):
                raise ValueError(
                    f"{source}: {_describe(record, i)} (id {ann.get('id')!r}): box "
                    f"{ann.get('bbox')!r} is not a list of 4 numbers"
                )
            x0, y0, x1, y1 = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                dropped.append(f"{_describe(record, i)}: not finite {[x0, y0, x1, y1]}")
                continue
            if x1 < x0 or y1 < y0:
                dropped.append(f"{_describe(record, i)}: x2<x1 or y2<y1 {[x0, y0, x1, y1]}")
                continue
            if x1 == x0 or y1 == y0:
                dropped.append(f"{_describe(record, i)}: zero area {[x0, y0, x1, y1]}")
                continue
            box = [
                min(max(x0, 0), width),
                min(max(y0, 0), height),
                min(max(x1, 0), width),
                min(max(y1, 0), height),
            ]
            if box[2] <= box[0] or box[3] <= box[1]:
                dropped.append(f"{_describe(record, i)}: outside the image {[x0, y0, x1, y1]}")
                continue
            if box != [x0, y0, x1, y1]:
                clipped.append(f"{_describe(record, i)}: {[x0, y0, x1, y1]} -> {box}")
            ann["bbox"], ann["bbox_mode"] = box, BoxMode.XYXY_ABS
            kept.append(ann)
        if "annotations" in record:
            record["annotations"] = kept
    if dropped or clipped:
        details = (dropped + clipped)[:_MAX_LISTED]
        more = len(dropped) + len(clipped) - len(details)
        logger.warning(
            f"{source}: dropped {len(dropped)} invalid box(es), clipped {len(clipped)} box(es) "
            f"to the image: " + "; ".join(details) + (f"; ... and {more} more" if more else "")
        )
    return dataset_dicts
