"""Evaluators of weaksup, all :class:`DatasetEvaluator` s that work under DDP.

Importing this package registers them in ``EVALUATOR_REGISTRY``: ``"coco"``,
``"voc_instance"``, ``"box_mask_quality"`` and ``"sem_seg"``.
"""

from .box_mask_quality import BoxMaskQualityEvaluator, box_mask_quality
from .build import EVALUATOR_REGISTRY, build_evaluators
from .coco_evaluation import FasterCOCOEvaluator
from .sem_seg_evaluation import build_sem_seg_evaluator
from .voc_instance_evaluation import VOCInstanceEvaluator

__all__ = [
    "EVALUATOR_REGISTRY",
    "BoxMaskQualityEvaluator",
    "FasterCOCOEvaluator",
    "VOCInstanceEvaluator",
    "box_mask_quality",
    "build_evaluators",
    "build_sem_seg_evaluator",
]
