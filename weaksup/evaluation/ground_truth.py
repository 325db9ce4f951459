"""Ground truth of a registered dataset for evaluators: records by image id, masks from annotations."""

from typing import Any, Dict, List, Union

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog

from ..utils.rle import rle_problem

__all__ = [
    "annotation_to_rle",
    "records_by_image_id",
    "segmentation_to_rle",
    "segmentation_to_bitmask",
]

Segmentation = Union[List[List[float]], Dict[str, Any]]


def records_by_image_id(dataset_name: str) -> Dict[Any, Dict[str, Any]]:
    """
    The dataset dicts of ``dataset_name`` keyed by ``image_id``, in dataset order. Test mappers
    drop annotations, so evaluators read the ground truth here rather than from their inputs.
    """
    records = {}
    for record in DatasetCatalog.get(dataset_name):
        if record["image_id"] in records:
            raise ValueError(
                f"Dataset '{dataset_name}' has image_id {record['image_id']!r} twice "
                f"({records[record['image_id']]['file_name']} and {record['file_name']})"
            )
        records[record["image_id"]] = record
    return records


def segmentation_to_rle(segm: Segmentation, height: int, width: int) -> Dict[str, Any]:
    """
    A Detectron2/COCO ``segmentation`` (polygons, uncompressed RLE or compressed RLE) as one
    compressed RLE of an image of size (height, width). Same three cases as pycocotools'
    ``COCO.annToRLE``, which needs a whole COCO index and is therefore not reused.
    """
    if isinstance(segm, list):
        if not segm:
            raise ValueError("empty polygon list: the annotation has no mask")
        return mask_util.merge(mask_util.frPyObjects(segm, height, width))
    if isinstance(segm, dict) and "counts" in segm:
        problem = rle_problem(segm, height, width)  # size and counts, both RLE forms
        if problem:
            raise ValueError(problem)
        if isinstance(segm["counts"], list):
            return mask_util.frPyObjects(segm, height, width)
        return segm
    raise ValueError(f"unknown segmentation format {type(segm).__name__}: {str(segm)[:80]}")


def segmentation_to_bitmask(segm: Segmentation, height: int, width: int) -> np.ndarray:
    """``segm`` (see :func:`segmentation_to_rle`) as a bool mask of shape (height, width)."""
    return mask_util.decode(segmentation_to_rle(segm, height, width)).astype(bool)


def annotation_to_rle(ann: Dict[str, Any], record: Dict[str, Any], source: str) -> Dict[str, Any]:
    """:func:`segmentation_to_rle` of annotation ``ann`` of dataset dict ``record``; an unusable
    mask raises a ``ValueError`` naming ``source`` (dataset or file), the image and the annotation.
    """
    try:
        return segmentation_to_rle(ann["segmentation"], record["height"], record["width"])
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(
            f"{source}: image {record.get('file_name', record.get('image_id'))!r} annotation id "
            f"{ann.get('id')!r}: no usable mask ({e})"
        ) from e
