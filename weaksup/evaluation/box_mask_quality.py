"""
Box-conditioned mask quality (BoxCaseg Sec. 4): how well one mask per ground-truth box (a
pseudo mask, a proxy mask, or a model's mask for a given box) matches that instance's GT mask.
"""

import itertools
import logging
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import create_small_table

from .build import EVALUATOR_REGISTRY
from .ground_truth import annotation_to_rle, records_by_image_id

__all__ = [
    "COCO_SIZE_RANGES",
    "BoxMaskQualityEvaluator",
    "box_mask_quality",
    "build_box_mask_quality_evaluator",
    "paired_mask_iou",
    "summarize_mask_quality",
]

# COCO's object sizes by area in pixels, [low, high): small < 32^2 <= medium < 96^2 <= large.
COCO_SIZE_RANGES = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, float("inf")),
}


def paired_mask_iou(pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of ``pred_masks[i]`` with ``gt_masks[i]`` (bool, same shape); 0 where both are empty."""
    if len(pred_masks) != len(gt_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks for {len(gt_masks)} GT masks")
    ious = np.zeros(len(gt_masks))
    for i, (pred, gt) in enumerate(zip(pred_masks, gt_masks)):
        if pred.shape != gt.shape:
            raise ValueError(f"mask {i}: predicted shape {pred.shape} != GT shape {gt.shape}")
        union = np.logical_or(pred, gt).sum()
        ious[i] = np.logical_and(pred, gt).sum() / union if union else 0.0
    return ious


def summarize_mask_quality(
    ious: np.ndarray, classes: Sequence[int], class_names: Optional[Sequence[str]] = None
) -> "OrderedDict[str, float]":
    """
    BoxCaseg Sec. 4 metrics, in percent, of instance IoUs ``ious`` with classes ``classes``:

    * ``mIoU*``: mean IoU of each class's instances, then mean over the classes that have any.
    * ``IoU@50`` / ``IoU@75``: percentage of instances with IoU strictly larger than 0.5 / 0.75
      ("larger than k%"), over all instances pooled, not per class: BoxCaseg defines IoU@k for
      class-agnostic segmentation, while mIoU* is its class-related metric.
    * ``mIoU-<class>``: the per-class means (NaN for a class of ``class_names`` without
      instances; without ``class_names``, present class ids name the classes).
    """
    ious = np.asarray(ious, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64)
    if len(ious) != len(classes):
        raise ValueError(f"{len(ious)} IoUs for {len(classes)} classes")
    if len(ious) == 0:
        raise ValueError("no instances to summarize")
    ids = range(len(class_names)) if class_names is not None else np.unique(classes)
    names = class_names if class_names is not None else [str(c) for c in ids]
    per_class = [ious[classes == c].mean() if (classes == c).any() else np.nan for c in ids]
    results = OrderedDict()
    results["mIoU*"] = float(np.nanmean(per_class) * 100)
    results["IoU@50"] = float(np.mean(ious > 0.5) * 100)
    results["IoU@75"] = float(np.mean(ious > 0.75) * 100)
    results.update({f"mIoU-{n}": float(v * 100) for n, v in zip(names, per_class)})
    return results


def box_mask_quality(
    pred_masks: Sequence[np.ndarray],
    gt_masks: Sequence[np.ndarray],
    classes: Sequence[int],
    class_names: Optional[Sequence[str]] = None,
) -> "OrderedDict[str, float]":
    """mIoU*, IoU@50, IoU@75 (:func:`summarize_mask_quality`) of paired bool masks (numpy only)."""
    return summarize_mask_quality(paired_mask_iou(pred_masks, gt_masks), classes, class_names)


class BoxMaskQualityEvaluator(DatasetEvaluator):
    """
    :func:`box_mask_quality` of a model's (or mask source's) masks for the GT boxes of
    ``DatasetCatalog.get(dataset_name)`` (matched by ``image_id``).

    Contract for ``outputs["instances"]`` (``pred_masks`` at image resolution): one predicted
    mask per GT annotation, either

    * with a field ``gt_index`` (int): the index of its annotation in the image's
      ``annotations``; at most one prediction per annotation (else ``ValueError``); non-crowd
      annotations without a prediction count with IoU 0; or
    * without ``gt_index``: exactly one instance per non-crowd annotation, in annotation order
      (else ``ValueError``).

    Crowd annotations (``iscrowd=1``) are not evaluated: predictions for them are skipped.
    """

    def __init__(self, dataset_name: str, distributed: bool = True):
        self._logger = logging.getLogger(__name__)
        self._records = records_by_image_id(dataset_name)
        self._dataset_name = dataset_name
        self._class_names = MetadataCatalog.get(dataset_name).thing_classes
        self._distributed = distributed

    def reset(self):
        self._per_image = []  # (IoUs, classes) of each image's evaluated annotations

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            record = self._records[input["image_id"]]
            anns = record.get("annotations", [])
            evaluated = [j for j, a in enumerate(anns) if not a.get("iscrowd", 0)]
            instances = output["instances"].to(torch.device("cpu"))
            pred_masks = instances.pred_masks.numpy().astype(bool)
            if instances.has("gt_index"):
                gt_index = instances.gt_index.tolist()
                if len(set(gt_index)) != len(gt_index) or not set(gt_index) <= set(
                    range(len(anns))
                ):
                    raise ValueError(
                        f"{record['file_name']}: gt_index {gt_index} is not one prediction per "
                        f"annotation among its {len(anns)} annotations"
                    )
                by_ann = dict(zip(gt_index, pred_masks))
            elif len(instances) == len(evaluated):
                by_ann = dict(zip(evaluated, pred_masks))
            else:
                raise ValueError(
                    f"{record['file_name']}: {len(instances)} predicted masks for "
                    f"{len(evaluated)} non-crowd annotations and no `gt_index` field"
                )
            h, w = record["height"], record["width"]
            gt_masks = [
                mask_util.decode(annotation_to_rle(anns[j], record, self._dataset_name)) > 0
                for j in evaluated
            ]
            preds = [by_ann.get(j, np.zeros((h, w), bool)) for j in evaluated]
            classes = np.array([anns[j]["category_id"] for j in evaluated], dtype=np.int64)
            self._per_image.append((paired_mask_iou(preds, gt_masks), classes))

    def evaluate(self):
        per_image = self._per_image
        if self._distributed:
            comm.synchronize()
            per_image = list(itertools.chain(*comm.gather(per_image, dst=0)))
            if not comm.is_main_process():
                return {}
        if not sum(len(ious) for ious, _ in per_image):
            self._logger.warning("[BoxMaskQualityEvaluator] No instances were evaluated.")
            return {}
        ious, classes = (np.concatenate(x) for x in zip(*per_image))
        results = summarize_mask_quality(ious, classes, self._class_names)
        summary = {k: v for k, v in results.items() if not k.startswith("mIoU-")}
        self._logger.info("Box-conditioned mask quality:\n" + create_small_table(summary))
        return OrderedDict({"box_mask_quality": results})


@EVALUATOR_REGISTRY.register("box_mask_quality")
def build_box_mask_quality_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> BoxMaskQualityEvaluator:
    """Evaluator ``"box_mask_quality"`` (no configuration, no files written)."""
    return BoxMaskQualityEvaluator(dataset_name)
