"""Semantic segmentation mIoU: Detectron2's :class:`SemSegEvaluator` under the name ``"sem_seg"``."""

from typing import Optional

from detectron2.config import CfgNode
from detectron2.evaluation import SemSegEvaluator

from .build import EVALUATOR_REGISTRY

__all__ = ["build_sem_seg_evaluator"]


@EVALUATOR_REGISTRY.register("sem_seg")
def build_sem_seg_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> SemSegEvaluator:
    """
    Evaluator ``"sem_seg"``: mIoU, fwIoU, mACC, pACC and per-class IoU/ACC of
    ``outputs["sem_seg"]`` against the label maps ``sem_seg_file_name`` of the dataset, whose
    metadata gives ``stuff_classes`` and ``ignore_label`` (e.g. VOC's 21 classes and 255).
    """
    return SemSegEvaluator(dataset_name, distributed=True, output_dir=output_dir)
