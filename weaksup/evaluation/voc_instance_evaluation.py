"""
PASCAL VOC instance segmentation: mAP^r at several mask-IoU thresholds and ABO (average best
overlap), as reported in the VOC tables of Hybrid (Sec. 4, Tab. 1), BoxCaseg and BBTP.
"""

import itertools
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.pascal_voc_evaluation import voc_ap
from detectron2.utils import comm
from detectron2.utils.logger import create_small_table

from .build import EVALUATOR_REGISTRY
from .ground_truth import annotation_to_rle, records_by_image_id

__all__ = [
    "add_voc_instance_evaluation_config",
    "VOCInstanceEvaluator",
    "build_voc_instance_evaluator",
    "match_image",
    "pairwise_mask_iou",
    "voc_instance_metrics",
]


def add_voc_instance_evaluation_config(cfg: CfgNode) -> CfgNode:
    """Add ``cfg.WEAKSUP.VOC_EVAL`` (VOC-style instance segmentation: mAP^r and ABO) in place,
    after ``cfg.WEAKSUP`` exists, and return the config."""
    _C = cfg
    _C.WEAKSUP.VOC_EVAL = CfgNode()
    # Mask-IoU thresholds of the reported mAP^r (Hybrid Tab. 1, BoxCaseg and BBTP VOC tables).
    _C.WEAKSUP.VOC_EVAL.IOU_THRESHOLDS = [0.25, 0.5, 0.7, 0.75]
    return cfg


def pairwise_mask_iou(pred_rles: List[dict], gt_rles: List[dict]) -> np.ndarray:
    """Mask IoU (float64, shape (P, G)) of every prediction with every GT; 0 where the union is empty."""
    if not pred_rles or not gt_rles:
        return np.zeros((len(pred_rles), len(gt_rles)))
    return np.asarray(mask_util.iou(pred_rles, gt_rles, [0] * len(gt_rles)), dtype=np.float64)


def match_image(
    scores: np.ndarray,
    pred_classes: np.ndarray,
    gt_classes: np.ndarray,
    gt_ignore: np.ndarray,
    ious: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """
    SDS matching (Hariharan et al., ECCV 2014) of one image's predictions at one IoU threshold.

    In decreasing score order (stable: ties keep prediction order), each prediction takes, among
    the GT of its class that are ignored or not yet matched, the one with the highest mask IoU
    (ties: first annotation). If that IoU >= ``iou_threshold`` it is a TP and the GT becomes
    matched, or, when that GT is ignored (``iscrowd``: VOC difficult/crowd), neither TP nor FP;
    otherwise it is an FP. An ignored GT absorbs any number of predictions.

    Returns:
        int8 array (P,): 1 for TP, 0 for FP, -1 for ignored predictions.
    """
    labels = np.zeros(len(scores), dtype=np.int8)
    matched = np.zeros(len(gt_classes), dtype=bool)
    for d in np.argsort(-scores, kind="stable"):
        candidates = (gt_classes == pred_classes[d]) & (gt_ignore | ~matched)
        if not candidates.any():
            continue
        overlaps = np.where(candidates, ious[d], -1.0)
        j = int(overlaps.argmax())
        if overlaps[j] >= iou_threshold:
            if gt_ignore[j]:
                labels[d] = -1
            else:
                labels[d] = 1
                matched[j] = True
    return labels


def voc_instance_metrics(
    images: Sequence[Dict[str, np.ndarray]],
    iou_thresholds: Sequence[float],
    class_names: Sequence[str],
) -> "OrderedDict[str, float]":
    """
    mAP^r and ABO, in percent, from per-image data (a non-empty list of dicts with keys
    ``scores``, ``pred_classes`` (P,), ``gt_classes``, ``gt_ignore`` (G,) and ``ious`` (P, G)).

    * ``AP@<t>-<class>``: per class, the predictions of all images (in the given image order)
      are ranked by score (stable sort), labelled by :func:`match_image`; ignored ones are
      dropped, and AP is the area under the interpolated precision-recall curve, VOC2010+
      "all points" (Detectron2's ``voc_ap`` with ``use_07_metric=False``), not VOC2007's 11
      points. Recall is over the class's non-ignored GT instances.
    * ``mAP@<t>``: mean of the per-class APs over classes with at least one non-ignored GT
      instance (the others are NaN and left out, as COCO leaves out classes without GT).
    * ``ABO``: for every non-ignored GT instance, its best mask IoU with any prediction of its
      class in its image, whatever the score (0 if there is none); ``ABO`` is the mean over all
      instances (instance-level, as Pont-Tuset & Van Gool's ABO cited by Hybrid Sec. 4), and
      ``ABO-<class>`` the mean over the class's instances.
    """
    results = OrderedDict()
    num_gt = np.zeros(len(class_names), dtype=np.int64)
    best_overlaps = [[] for _ in class_names]
    for im in images:
        for j in np.flatnonzero(~im["gt_ignore"]):
            c = im["gt_classes"][j]
            num_gt[c] += 1
            same_class = im["pred_classes"] == c
            best_overlaps[c].append(im["ious"][same_class, j].max() if same_class.any() else 0.0)

    scores = np.concatenate([im["scores"] for im in images])
    pred_classes = np.concatenate([im["pred_classes"] for im in images])
    for t in iou_thresholds:
        labels = np.concatenate(
            [
                match_image(
                    im["scores"],
                    im["pred_classes"],
                    im["gt_classes"],
                    im["gt_ignore"],
                    im["ious"],
                    t,
                )
                for im in images
            ]
        )
        aps = np.full(len(class_names), np.nan)
        for c in np.flatnonzero(num_gt):
            keep = (pred_classes == c) & (labels >= 0)
            order = np.argsort(-scores[keep], kind="stable")
            tp = np.cumsum(labels[keep][order] == 1)
            aps[c] = voc_ap(tp / num_gt[c], tp / np.arange(1, len(tp) + 1), use_07_metric=False)
        results[f"mAP@{t:g}"] = float(np.nanmean(aps) * 100) if num_gt.any() else float("nan")
        results.update({f"AP@{t:g}-{name}": float(ap * 100) for name, ap in zip(class_names, aps)})

    all_overlaps = list(itertools.chain(*best_overlaps))
    results["ABO"] = float(np.mean(all_overlaps) * 100) if all_overlaps else float("nan")
    for name, overlaps in zip(class_names, best_overlaps):
        results[f"ABO-{name}"] = float(np.mean(overlaps) * 100) if overlaps else float("nan")
    return results


class VOCInstanceEvaluator(DatasetEvaluator):
    """
    VOC instance segmentation (mAP^r at ``iou_thresholds`` and ABO, see
    :func:`voc_instance_metrics`) of ``outputs["instances"]`` (``pred_masks`` at image resolution,
    ``scores``, ``pred_classes``) against the masks of ``DatasetCatalog.get(dataset_name)``,
    matched by ``image_id``; GT with ``iscrowd=1`` (VOC difficult, crowd) is ignored.

    :meth:`process` keeps only compact per-image data (scores, classes, the prediction x GT
    mask-IoU matrix, GT classes and ignore flags); :meth:`evaluate` gathers it on the main
    process (other ranks return ``{}``) and ranks images in dataset order, so the result does
    not depend on the number of processes.
    """

    def __init__(
        self,
        dataset_name: str,
        iou_thresholds: Sequence[float] = (0.25, 0.5, 0.7, 0.75),
        distributed: bool = True,
    ):
        self._logger = logging.getLogger(__name__)
        self._records = records_by_image_id(dataset_name)
        self._order = {image_id: i for i, image_id in enumerate(self._records)}
        self._class_names = MetadataCatalog.get(dataset_name).thing_classes
        self._iou_thresholds = list(iou_thresholds)
        self._distributed = distributed
        self._dataset_name = dataset_name

    def reset(self):
        self._images = []

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            record = self._records.get(input["image_id"])
            if record is None:
                raise KeyError(f"image_id {input['image_id']!r} is not in '{self._dataset_name}'")
            anns = record.get("annotations", [])
            gt_rles = [annotation_to_rle(a, record, self._dataset_name) for a in anns]
            instances = output["instances"].to(torch.device("cpu"))
            masks = instances.pred_masks.numpy().astype(np.uint8).transpose(1, 2, 0)
            pred_rles = mask_util.encode(np.asfortranarray(masks)) if len(instances) else []
            self._images.append(
                {
                    "order": self._order[input["image_id"]],
                    "scores": instances.scores.numpy().astype(np.float64),
                    "pred_classes": instances.pred_classes.numpy().astype(np.int64),
                    "gt_classes": np.array([a["category_id"] for a in anns], dtype=np.int64),
                    "gt_ignore": np.array([a.get("iscrowd", 0) == 1 for a in anns], dtype=bool),
                    "ious": pairwise_mask_iou(pred_rles, gt_rles),
                }
            )

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            images = list(itertools.chain(*comm.gather(self._images, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            images = self._images
        if not images:
            self._logger.warning("[VOCInstanceEvaluator] Did not receive valid predictions.")
            return {}
        images = sorted(images, key=lambda im: im["order"])
        results = voc_instance_metrics(images, self._iou_thresholds, self._class_names)
        summary = {k: v for k, v in results.items() if "-" not in k}
        self._logger.info("VOC instance segmentation:\n" + create_small_table(summary))
        return OrderedDict({"voc_instance": results})


@EVALUATOR_REGISTRY.register("voc_instance")
def build_voc_instance_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> VOCInstanceEvaluator:
    """Evaluator ``"voc_instance"`` at ``cfg.WEAKSUP.VOC_EVAL.IOU_THRESHOLDS`` (no files written)."""
    return VOCInstanceEvaluator(dataset_name, cfg.WEAKSUP.VOC_EVAL.IOU_THRESHOLDS)
