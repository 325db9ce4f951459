"""COCO box and mask AP: Detectron2's :class:`COCOEvaluator` with faster-coco-eval's C++ COCOeval."""

from typing import Optional
from unittest import mock

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import coco_evaluation as d2_coco_evaluation
from detectron2.modeling import META_ARCH_REGISTRY
from faster_coco_eval import COCOeval_faster

from .build import EVALUATOR_REGISTRY

__all__ = ["FasterCOCOEvaluator", "build_coco_evaluator"]


class FasterCOCOEvaluator(COCOEvaluator):
    """
    Detectron2's :class:`COCOEvaluator` where its fast path (Detectron2's compiled ``COCOeval_opt``,
    absent from weaksup's build of Detectron2) runs faster-coco-eval's C++ ``COCOeval_faster``.

    Everything else (gathering over DDP ranks, the COCO json conversion of the dataset, metric
    names and per-category AP) is Detectron2's. ``tests/foundation/test_eval_coco.py`` checks that it gives
    exactly pycocotools' AP on perturbed real predictions; ``use_fast_impl=False`` runs
    pycocotools (the official API).

    Detectron2 looks the fast class up as a module-level name of
    ``detectron2.evaluation.coco_evaluation``, so it is swapped there only for the duration of
    :meth:`_eval_predictions` (not thread-safe against another COCOEvaluator evaluating at the
    same moment in another thread of the same process; evaluation runs on one thread).
    """

    def __init__(self, dataset_name: str, *args, use_fast_impl: bool = True, **kwargs):
        super().__init__(dataset_name, *args, use_fast_impl=use_fast_impl, **kwargs)
        # Detectron2 turns the fast path off when its own `_C` is missing; faster-coco-eval's is here.
        self._use_fast_impl = use_fast_impl

    def _eval_predictions(self, predictions, img_ids=None):
        with mock.patch.object(d2_coco_evaluation, "COCOeval_opt", COCOeval_faster):
            super()._eval_predictions(predictions, img_ids=img_ids)


@EVALUATOR_REGISTRY.register("coco")
def build_coco_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> FasterCOCOEvaluator:
    """
    Evaluator ``"coco"``: COCO bbox AP, plus segm AP when ``cfg.MODEL.MASK_ON`` or when the
    meta-architecture's class says ``predicts_masks = True`` (a model whose masks come from
    elsewhere: Hybrid's small branch, a Faster R-CNN whose detections GrabCut segments); results
    ``{"bbox": {"AP", "AP50", ..., "AP-<class>"}, "segm": {...}}`` as Detectron2's. The tasks
    are fixed by the config, not inferred from the predictions, so a model with no detection at
    all still reports (zero) segm AP instead of dropping the task. A dataset registered box-only
    (metadata ``box_only``: the user's datasets of kind "boxonly") has no masks to score: bbox only.
    """
    arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    masks = cfg.MODEL.MASK_ON or getattr(arch, "predicts_masks", False)
    masks = masks and not MetadataCatalog.get(dataset_name).get("box_only", False)
    tasks = ("bbox", "segm") if masks else ("bbox",)
    return FasterCOCOEvaluator(dataset_name, tasks=tasks, distributed=True, output_dir=output_dir)
