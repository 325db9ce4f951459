"""Config names checked before any work: a misspelled evaluator, mapper, hook, mask source,
pipeline or dataset name fails at start-up, not after a whole training (evaluators and test
datasets are otherwise first looked up at the final evaluation); so does a dataset whose classes
are not the R-CNN model's ``MODEL.ROI_HEADS.NUM_CLASSES``."""

import difflib
from typing import Iterable, List

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data import MAPPER_REGISTRY, MASK_SOURCE_REGISTRY
from ..data.datasets.user import roi_heads_num_classes
from ..evaluation import EVALUATOR_REGISTRY
from .hook_registry import HOOK_REGISTRY
from .pipeline import PIPELINE_REGISTRY

__all__ = ["check_config_names"]


def _unknown(key: str, what: str, name: str, known: Iterable[str], list_known: bool = True) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = f" (known: {', '.join(map(repr, known))})" if list_known else ""
    return f"cfg.{key}: unknown {what} {name!r}{hint}{shown}"


def check_config_names(cfg: CfgNode) -> None:
    """Raise one ``ValueError`` listing every name of ``cfg`` that is not registered:
    ``WEAKSUP.EVALUATORS``, ``TRAIN_MAPPER``, ``TEST_MAPPER``, ``HOOKS``, ``MASK_SOURCE``,
    ``PIPELINE`` and ``DATASETS.TRAIN`` / ``TEST`` (a pipeline's config names datasets registered
    before it runs; those it registers itself are its stages', checked by each stage's trainer),
    and every dataset whose class count is not the R-CNN model's."""
    w = cfg.WEAKSUP
    checks = [("WEAKSUP.EVALUATORS", "evaluator", n, EVALUATOR_REGISTRY) for n in w.EVALUATORS]
    checks += [("WEAKSUP.HOOKS", "hook", n, HOOK_REGISTRY) for n in w.HOOKS]
    checks += [
        ("WEAKSUP.TRAIN_MAPPER", "mapper", w.TRAIN_MAPPER, MAPPER_REGISTRY),
        ("WEAKSUP.TEST_MAPPER", "mapper", w.TEST_MAPPER, MAPPER_REGISTRY),
    ]
    if w.MASK_SOURCE != "none":
        checks.append(("WEAKSUP.MASK_SOURCE", "mask source", w.MASK_SOURCE, MASK_SOURCE_REGISTRY))
    if w.PIPELINE:
        checks.append(("WEAKSUP.PIPELINE", "pipeline", w.PIPELINE, PIPELINE_REGISTRY))
    problems: List[str] = [
        _unknown(key, what, name, [k for k, _ in registry])
        for key, what, name, registry in checks
        if name not in registry
    ]
    registered = DatasetCatalog.list()
    problems += [
        _unknown(f"DATASETS.{split}", "dataset", name, registered, list_known=False)
        for split in ("TRAIN", "TEST")
        for name in cfg.DATASETS[split]
        if name not in registered
    ]
    problems += _class_count_problems(cfg, registered)
    if problems:
        raise ValueError(
            "Config names or class counts wrong (nothing run):\n  " + "\n  ".join(problems)
        )


def _class_count_problems(cfg: CfgNode, registered: Iterable[str]) -> List[str]:
    """Datasets of ``DATASETS.TRAIN`` / ``TEST`` whose ``thing_classes`` (known before loading:
    builtin datasets) are not as many as an R-CNN model's ``MODEL.ROI_HEADS.NUM_CLASSES``
    (``--register`` ed datasets are checked as they load their json)."""
    num_classes, registered = roi_heads_num_classes(cfg), set(registered)
    problems = []
    for split in ("TRAIN", "TEST"):
        for name in cfg.DATASETS[split]:
            classes = MetadataCatalog.get(name).get("thing_classes") if name in registered else None
            if num_classes is not None and classes is not None and len(classes) != num_classes:
                problems.append(
                    f"cfg.DATASETS.{split}: dataset {name!r} has {len(classes)} classes "
                    f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}) but "
                    f"MODEL.ROI_HEADS.NUM_CLASSES is {num_classes}: set it to {len(classes)}"
                )
    return problems
