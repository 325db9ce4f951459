"""Evaluators chosen by config (``cfg.WEAKSUP.EVALUATORS``)."""

import os
from typing import Optional

from detectron2.config import CfgNode
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from ..registry import Registry

EVALUATOR_REGISTRY = Registry("WEAKSUP_EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Evaluators for ``cfg.WEAKSUP.EVALUATORS``. Each registered object is called as
``obj(cfg, dataset_name, output_dir)`` and returns a :class:`DatasetEvaluator`.
"""


def build_evaluators(
    cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None
) -> DatasetEvaluator:
    """Build every evaluator named in ``cfg.WEAKSUP.EVALUATORS`` for ``dataset_name``."""
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    names = list(cfg.WEAKSUP.EVALUATORS)
    if not names:
        raise ValueError("cfg.WEAKSUP.EVALUATORS is empty: name at least one evaluator")
    evaluators = [EVALUATOR_REGISTRY.get(n)(cfg, dataset_name, output_folder) for n in names]
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)
