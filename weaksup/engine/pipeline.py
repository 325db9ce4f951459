"""Multi-stage pipelines chosen by config (``cfg.WEAKSUP.PIPELINE``), run by ``train_net.py``,
and the stage helpers they share: a stage's config, whether a training stage is done, and
training a stage with resume (used by the BoxCaseg and Hybrid pipelines)."""

import logging
import os

from detectron2.config import CfgNode
from detectron2.utils import comm

from ..registry import Registry
from .device import resolve_device

__all__ = ["PIPELINE_REGISTRY", "stage_config", "stage_done", "train_stage"]

logger = logging.getLogger(__name__)

PIPELINE_REGISTRY = Registry("WEAKSUP_PIPELINE")
PIPELINE_REGISTRY.__doc__ = """
Pipelines for ``cfg.WEAKSUP.PIPELINE``. Each registered object is called as ``obj(cfg, args)`` in
every process launched by ``train_net.py`` (``args``: its parsed command line) and returns what
``main`` returns (e.g. the final evaluation results). A pipeline runs one or several training /
generation stages, each skipped when its result exists and resumed when it was interrupted.
"""


def stage_config(cfg: CfgNode, output_dir: str) -> CfgNode:
    """A stage's config: ``cfg`` (as loaded from its file and overrides by the method, e.g. with
    :func:`weaksup.config.load_config`), its ``OUTPUT_DIR`` set to ``output_dir``, its device
    resolved for this machine, frozen."""
    cfg.OUTPUT_DIR = output_dir
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def stage_done(output_dir: str) -> bool:
    """A training stage is done when ``last_checkpoint`` names ``model_final.pth`` and it exists
    (both are written atomically by :class:`AtomicDetectionCheckpointer`)."""
    last = os.path.join(output_dir, "last_checkpoint")
    if not os.path.isfile(last):
        return False
    with open(last) as f:
        name = f.read().strip()
    return name == "model_final.pth" and os.path.isfile(os.path.join(output_dir, name))


def run_training_stage(
    trainer_cls, cfg: CfgNode, stage: str, title: str, *, evaluate_when_done: bool = False
):
    """Run one cached training stage, logging which case applies: done -> skipped (or, with
    ``evaluate_when_done``, only evaluated); else ``title`` and :func:`train_stage` (which resumes
    from the last checkpoint). Returns the final evaluation results (``{}`` when skipped)."""
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    if stage_done(cfg.OUTPUT_DIR):
        if not evaluate_when_done:
            logger.info(f"{stage}: skipped, found {final}")
            return {}
        logger.info(f"{stage}: already trained ({final}), evaluating")
    else:
        logger.info(f"{stage}: {title}")
    return train_stage(trainer_cls, cfg, stage)


def train_stage(trainer_cls, cfg: CfgNode, stage: str):
    """Train ``cfg`` with ``trainer_cls`` in ``cfg.OUTPUT_DIR``, resuming from its last checkpoint
    (a finished stage resumes at MAX_ITER: no training, final evaluation only); returns the
    final evaluation results (``{}`` without test datasets; filled on the main process)."""
    last = os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
    if os.path.isfile(last):
        with open(last) as f:
            logger.info(f"{stage}: resuming from {os.path.join(cfg.OUTPUT_DIR, f.read().strip())}")
    else:
        logger.info(f"{stage}: no checkpoint in {cfg.OUTPUT_DIR}, training from the start")
    if comm.is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=True)
    trainer.train()
    # DefaultTrainer.train returns them only with TEST.EXPECTED_RESULTS; its EvalHook keeps them
    return getattr(trainer, "_last_eval_results", {})
