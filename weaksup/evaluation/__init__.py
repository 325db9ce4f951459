"""Evaluators of weaksup, all :class:`DatasetEvaluator` s that work under DDP."""
from .build import EVALUATOR_REGISTRY, build_evaluators
from .box_mask_quality import BoxMaskQualityEvaluator, box_mask_quality
from .coco_evaluation import FasterCOCOEvaluator
from .voc_instance_evaluation import VOCInstanceEvaluator

__all__ = [
    "EVALUATOR_REGISTRY",
    "BoxMaskQualityEvaluator",
    "FasterCOCOEvaluator",
    "VOCInstanceEvaluator",
    "box_mask_quality",
    "build_evaluators",
]
