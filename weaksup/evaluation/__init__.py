"""Evaluators of weaksup, all :class:`DatasetEvaluator` s that work under DDP."""
from .build import EVALUATOR_REGISTRY, build_evaluators
from .coco_evaluation import FasterCOCOEvaluator
from .voc_instance_evaluation import VOCInstanceEvaluator

__all__ = ["EVALUATOR_REGISTRY", "build_evaluators", "FasterCOCOEvaluator", "VOCInstanceEvaluator"]
