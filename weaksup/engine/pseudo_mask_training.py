"""Boxes in, masks out in one job: pseudo masks of the training boxes, then a Mask R-CNN trained
on them (``WEAKSUP.PIPELINE "PseudoMaskTraining"``; the README demo).

Stage 1 makes the pseudo masks of every box of ``DATASETS.TRAIN[0]`` with the pseudo-mask engine's
``WEAKSUP.PSEUDO_STAGE.METHOD`` (:func:`generate_pseudo_masks`: per-annotation seeds, shards, all
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
from detectron2.config import CfgNode as CN

from ..pseudo import PseudoMaskConfig
from .pipeline import PIPELINE_REGISTRY, run_training_stage, training_stage
from .pseudo_masks import generate_pseudo_masks, log_pseudo_mask_validity, pseudo_mask_stage
from .stages import run_stage
from .trainer import WeaksupTrainer

__all__ = ["add_pseudo_mask_training_config", "pseudo_mask_json_path", "run_pseudo_mask_training"]

logger = logging.getLogger(__name__)


def add_pseudo_mask_training_config(cfg: CfgNode) -> None:
    """Add ``cfg.WEAKSUP.PSEUDO_STAGE`` (in place; after ``cfg.WEAKSUP`` exists)."""
    _C = cfg
    _C.WEAKSUP.PSEUDO_STAGE = CN()
    # Pseudo-mask method of stage 1 (weaksup.pseudo.METHODS, e.g. "consensus", "grabcut",
    # "ellipse"); its masks of DATASETS.TRAIN[0] train the model of stage 2.
    _C.WEAKSUP.PSEUDO_STAGE.METHOD = "consensus"
    # A mask is valid (trains the mask head) when its agreement with the box is >= this.
    _C.WEAKSUP.PSEUDO_STAGE.VALID_THRESHOLD = 0.5
    # Worker processes per training process (0: in the process itself).
    _C.WEAKSUP.PSEUDO_STAGE.NUM_WORKERS = 0
    # Images per shard (the unit of work that is saved and resumed).
    _C.WEAKSUP.PSEUDO_STAGE.SHARD_SIZE = 32
    # Seed of the methods' randomness (each annotation's own seed derives from it and its id).
    _C.WEAKSUP.PSEUDO_STAGE.SEED = 0


def pseudo_mask_json_path(cfg: CfgNode) -> str:
    """Where stage 1 writes the pseudo masks of ``cfg.DATASETS.TRAIN[0]``."""
    name = f"{cfg.DATASETS.TRAIN[0]}_{cfg.WEAKSUP.PSEUDO_STAGE.METHOD}.json"
    return os.path.join(cfg.OUTPUT_DIR, "pseudo_masks", name)


@PIPELINE_REGISTRY.register("PseudoMaskTraining")
def run_pseudo_mask_training(cfg: CfgNode, args: Namespace) -> Dict[str, Any]:
    """Stage 1 (pseudo masks, cached) and stage 2 (training on them, resumed); returns the final
    evaluation results (filled on the main process)."""
    if len(cfg.DATASETS.TRAIN) != 1:
        raise ValueError(
            f"the PseudoMaskTraining pipeline trains on one dataset, got DATASETS.TRAIN "
            f"{cfg.DATASETS.TRAIN}"
        )
    p = cfg.WEAKSUP.PSEUDO_STAGE
    train, path = cfg.DATASETS.TRAIN[0], pseudo_mask_json_path(cfg)
    pcfg = PseudoMaskConfig(valid_threshold=p.VALID_THRESHOLD)
    logger.info(f"stage 1: pseudo masks ({p.METHOD}) of {train}")
    pseudo = pseudo_mask_stage("stage 1", train, path, p.METHOD, pcfg, p.SEED)
    run_stage(
        pseudo,
        lambda: generate_pseudo_masks(
            train,
            path,
            p.METHOD,
            pcfg,
            seed=p.SEED,
            shard_size=p.SHARD_SIZE,
            num_workers=p.NUM_WORKERS,
        ),
    )
    log_pseudo_mask_validity(path, f"Validity of the {p.METHOD} pseudo masks of {train}")
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
