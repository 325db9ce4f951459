"""Boxes in, masks out in one job: pseudo masks of the training boxes, then a Mask R-CNN trained
on them (``WEAKSUP.PIPELINE "PseudoMasks"``; the README demo).

Stage 1 makes the pseudo masks of every box of ``DATASETS.TRAIN[0]`` with the pseudo-mask engine's
``WEAKSUP.PSEUDO_STAGE.METHOD`` (:func:`~weaksup.engine.pseudo_masks.run_pseudo_mask_stage`: per-annotation seeds, shards, all
training processes sharing the work) into ``OUTPUT_DIR/pseudo_masks/<dataset>_<method>.json``,
as a :class:`~weaksup.engine.stages.Stage` (settings: dataset, method, parameters, seed), so a
rerun of the same job skips the stage, an interrupted one resumes its shards and a changed setting
redoes it, with the log saying which and why. Stage 2 trains the configured model with
``WEAKSUP.MASK_SOURCE "pseudo_json"`` on that file (each annotation's mask and ``mask_valid`` flag;
ground-truth masks are never read) and evaluates; it is a training stage keyed by its config and
by the run of stage 1 (resumed from its last checkpoint after an interruption, only evaluated when
already trained, retrained when its config or the masks changed). It is the
box-supervised baseline of Hybrid Tab. 1 / BoxCaseg Tab. 1 ("Mask R-CNN trained on GrabCut
masks"), with any engine method as the mask maker.
"""

import logging
import os
from argparse import Namespace
from typing import Any, Dict

from detectron2.config import CfgNode

from weaksup.engine.pipeline import PIPELINE_REGISTRY, run_training_stage, training_stage
from weaksup.engine.pseudo_masks import run_pseudo_mask_stage
from weaksup.engine.trainer import WeaksupTrainer
from weaksup.pseudo import PseudoMaskConfig

__all__ = ["pseudo_mask_json_path", "run_pseudo_masks_pipeline"]

logger = logging.getLogger(__name__)


def pseudo_mask_json_path(cfg: CfgNode) -> str:
    """Where stage 1 writes the pseudo masks of ``cfg.DATASETS.TRAIN[0]``."""
    name = f"{cfg.DATASETS.TRAIN[0]}_{cfg.WEAKSUP.PSEUDO_STAGE.METHOD}.json"
    return os.path.join(cfg.OUTPUT_DIR, "pseudo_masks", name)


@PIPELINE_REGISTRY.register("PseudoMasks")
def run_pseudo_masks_pipeline(cfg: CfgNode, args: Namespace) -> Dict[str, Any]:
    """Stage 1 (pseudo masks, cached) and stage 2 (training on them, resumed); returns the final
    evaluation results (filled on the main process)."""
    if len(cfg.DATASETS.TRAIN) != 1:
        raise ValueError(
            f"the PseudoMasks pipeline trains on one dataset, got DATASETS.TRAIN "
            f"{cfg.DATASETS.TRAIN}"
        )
    p = cfg.WEAKSUP.PSEUDO_STAGE
    train, path = cfg.DATASETS.TRAIN[0], pseudo_mask_json_path(cfg)
    pseudo = run_pseudo_mask_stage(
        "stage 1",
        train,
        path,
        p.METHOD,
        PseudoMaskConfig(valid_threshold=p.VALID_THRESHOLD),
        seed=p.SEED,
        shard_size=p.SHARD_SIZE,
        num_workers=p.NUM_WORKERS,
        title=f"Validity of the {p.METHOD} pseudo masks of {train}",
    )
    stage = cfg.clone()
    stage.defrost()
    stage.WEAKSUP.MASK_SOURCE = "pseudo_json"
    stage.WEAKSUP.PSEUDO_MASKS = path
    stage.freeze()
    return run_training_stage(
        WeaksupTrainer,
        stage,
        training_stage(stage, "stage 2", [pseudo]),
        f"training on the {p.METHOD} pseudo masks",
        evaluate_when_done=True,
    )
