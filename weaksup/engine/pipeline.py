"""Multi-stage pipelines chosen by config (``cfg.WEAKSUP.PIPELINE``), run by ``train_net.py``,
and the training-stage helpers they share: a stage's config, whether a training stage is done,
its :class:`~weaksup.engine.stages.Stage` (fingerprint: the stage's config and inputs) and
training it with resume."""

import copy
import gc
import glob
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml
from detectron2.config import CfgNode
from detectron2.utils import comm

from ..registry import Registry
from .device import resolve_device
from .stages import Stage, run_stage

__all__ = [
    "PIPELINE_REGISTRY",
    "FORWARDED_KEYS",
    "config_settings",
    "config_value",
    "forwarded_overrides",
    "ignored_overrides",
    "run_training_stage",
    "stage_config",
    "stage_done",
    "train_stage",
    "training_stage",
]

# Config keys that do not change what a stage makes (where it is written, how fast, how often it
# is checkpointed, evaluated or drawn): left out of a training stage's fingerprint.
VOLATILE_KEYS = (
    "OUTPUT_DIR",
    "WEAKSUP.OVERRIDES",
    "MODEL.DEVICE",
    "DATALOADER.NUM_WORKERS",
    "SOLVER.CHECKPOINT_PERIOD",
    "TEST.EVAL_PERIOD",
    "VIS_PERIOD",
    "CUDNN_BENCHMARK",
    "WEAKSUP.VIS",
)
# Command-line overrides a pipeline passes on to every stage config it loads (stage_config): how
# and where the job runs, the same for all its stages. MODEL.WEIGHTS follows its own rule
# (forwarded_overrides); any other command-line key sets the pipeline's own config only.
FORWARDED_KEYS = (
    "MODEL.DEVICE",
    "SOLVER.AMP.ENABLED",
    "DATALOADER.NUM_WORKERS",
    "SOLVER.REFERENCE_WORLD_SIZE",
    "SEED",
    "CUDNN_BENCHMARK",
)
# Keys that only choose what a trained model is evaluated on (not how it trains): a training
# stage is not redone when they change, so a rerun evaluates the cached model on other datasets.
EVALUATION_KEYS = ("DATASETS.TEST", "WEAKSUP.EVALUATORS")

logger = logging.getLogger(__name__)

PIPELINE_REGISTRY = Registry("WEAKSUP_PIPELINE")
PIPELINE_REGISTRY.__doc__ = """
Pipelines for ``cfg.WEAKSUP.PIPELINE``. Each registered object is called as ``obj(cfg, args)`` in
every process launched by ``train_net.py`` (``args``: its parsed command line) and returns what
``main`` returns (e.g. the final evaluation results). A pipeline runs one or several training /
generation stages, each skipped when its result exists and resumed when it was interrupted.
"""


def stage_config(
    cfg: CfgNode,
    output_dir: str,
    pipeline: Optional[CfgNode] = None,
    opts: Sequence[Any] = (),
    name: str = "",
) -> CfgNode:
    """A stage's config: ``cfg`` (as loaded from its file and overrides by the method, e.g. with
    :func:`weaksup.config.load_config`), its ``OUTPUT_DIR`` set to ``output_dir``, its device
    resolved for this machine, frozen.

    With ``pipeline`` (the config the job was started with), the stage takes the pipeline's
    command-line overrides of :data:`FORWARDED_KEYS` (and ``MODEL.WEIGHTS`` where
    :func:`forwarded_overrides` says), then ``opts`` again (what the method set for the stage
    wins); a WARNING named ``name`` lists the command-line overrides the stage does not take."""
    if pipeline is not None:
        cfg.merge_from_list(forwarded_overrides(pipeline, cfg) + list(opts))
        ignored = ignored_overrides(pipeline, cfg, opts)
        if ignored:
            logger.warning(
                f"{name or output_dir}: command-line overrides not taken by this stage (its own "
                f"config file sets them; docs/foundation.md, 'Several GPUs / machines'): "
                + ", ".join(ignored)
            )
    cfg.OUTPUT_DIR = output_dir
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def _trunk(cfg: CfgNode) -> Tuple[Any, ...]:
    """The backbone's family and size: which ImageNet weights file it loads."""
    name = cfg.MODEL.BACKBONE.NAME
    if "hrnet" in name:
        return ("hrnet", cfg.MODEL.HRNET.WIDTH)
    if "efficientnet" in name:
        return ("efficientnet", cfg.MODEL.EFFICIENTNET.VARIANT)
    if "resnet" in name:
        return ("resnet", cfg.MODEL.RESNETS.DEPTH)
    return (name,)


def _command_line_keys(pipeline: CfgNode) -> List[str]:
    opts = list(pipeline.WEAKSUP.OVERRIDES)
    return [str(k) for k in opts[0::2]]


def config_value(cfg: CfgNode, key: str) -> Any:
    """The value of the dotted ``key`` (``"MODEL.WEIGHTS"``) in ``cfg``; ``KeyError`` if absent."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def forwarded_overrides(pipeline: CfgNode, stage: CfgNode) -> List[Any]:
    """``KEY VALUE`` pairs of the pipeline's command-line overrides (``WEAKSUP.OVERRIDES``) that a
    stage config takes: the keys of :data:`FORWARDED_KEYS` always; ``MODEL.WEIGHTS`` (the
    trunk's initial weights) when the stage's backbone is the pipeline's (family and depth /
    width, :func:`_trunk`)."""
    out: List[Any] = []
    for key in dict.fromkeys(_command_line_keys(pipeline)):
        take = key in FORWARDED_KEYS or (
            key == "MODEL.WEIGHTS" and _trunk(stage) == _trunk(pipeline)
        )
        if take:
            out += [key, config_value(pipeline, key)]
    return out


def ignored_overrides(pipeline: CfgNode, stage: CfgNode, opts: Sequence[Any] = ()) -> List[str]:
    """The pipeline's command-line keys whose value the stage does not have (``KEY (VALUE)``),
    besides ``OUTPUT_DIR``, the pipeline's own settings (``WEAKSUP.<group>.*``) and the keys the
    method sets for the stage (``opts``, e.g. the previous stage's weights)."""
    out = []
    own = {str(k) for k in list(opts)[0::2]}
    for key in dict.fromkeys(_command_line_keys(pipeline)):
        parts = key.split(".")
        if key in own or key == "OUTPUT_DIR" or (parts[0] == "WEAKSUP" and len(parts) > 2):
            continue
        try:
            value = config_value(pipeline, key)
            if config_value(stage, key) != value:
                out.append(f"{key} ({value!r})")
        except KeyError:  # a renamed or unknown key was rejected when the config was loaded
            continue
    return out


def stage_done(output_dir: str) -> bool:
    """A training stage is done when ``last_checkpoint`` names ``model_final.pth`` and it exists
    (both are written atomically by :class:`AtomicDetectionCheckpointer`)."""
    last = os.path.join(output_dir, "last_checkpoint")
    if not os.path.isfile(last):
        return False
    with open(last) as f:
        name = f.read().strip()
    return name == "model_final.pth" and os.path.isfile(os.path.join(output_dir, name))


def _training_settings(settings: Dict[str, Any]) -> Dict[str, Any]:
    """``settings`` (a config as a dict) without :data:`VOLATILE_KEYS` and
    :data:`EVALUATION_KEYS`: what makes a training stage's checkpoints."""
    settings = copy.deepcopy(settings)
    for key in VOLATILE_KEYS + EVALUATION_KEYS:
        *parents, leaf = key.split(".")
        node = settings
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return settings


def config_settings(cfg: CfgNode) -> Dict[str, Any]:
    """A config as the settings of a training stage: its values without :data:`VOLATILE_KEYS`
    and :data:`EVALUATION_KEYS`."""
    return _training_settings(yaml.safe_load(cfg.dump()))


def training_stage(cfg: CfgNode, name: str, inputs: Sequence[Union[Stage, str]] = ()) -> Stage:
    """The :class:`Stage` that trains ``cfg`` in ``cfg.OUTPUT_DIR``: its settings are the config
    (:func:`config_settings`), its inputs the earlier stages it reads (e.g. the stage whose
    checkpoint is ``MODEL.WEIGHTS``, or the one that made its training masks). A stale stage is
    restarted by removing its checkpoints (nothing else in the folder). With
    ``SOLVER.REFERENCE_WORLD_SIZE`` the schedule (batch, learning rate, iterations) follows the
    number of processes, so an interrupted stage resumes only at the number it ran with (its
    ``resume_settings``); a finished one is used at any."""

    def clear() -> None:
        for path in glob.glob(os.path.join(cfg.OUTPUT_DIR, "model_*.pth")) + [
            os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
        ]:
            if os.path.isfile(path):
                os.remove(path)

    return Stage(
        name,
        cfg.OUTPUT_DIR,
        config_settings(cfg),
        inputs,
        is_dir=True,
        clear=clear,
        datasets=list(cfg.DATASETS.TRAIN),  # by content: an edited box retrains
        resume_settings=(
            {"processes (SOLVER.REFERENCE_WORLD_SIZE scales the schedule)": comm.get_world_size()}
            if cfg.SOLVER.REFERENCE_WORLD_SIZE
            else {}
        ),
    )


def run_training_stage(
    trainer_cls,
    cfg: CfgNode,
    stage: Union[str, Stage],
    title: str,
    *,
    evaluate_when_done: bool = False,
    inputs: Sequence[Union[Stage, str]] = (),
):
    """Run one cached training stage (:func:`~weaksup.engine.stages.run_stage`): skipped when
    trained with the same config and inputs (with ``evaluate_when_done``: only evaluated), resumed
    from its last checkpoint after an interruption, retrained from scratch when they changed.
    ``stage``: a name (then ``inputs`` are its inputs) or a :func:`training_stage`. Returns the
    final evaluation results (``{}`` when skipped)."""
    if isinstance(stage, str):
        stage = training_stage(cfg, stage, inputs)

    def body():
        logger.info(f"{stage.name}: {title}")
        return train_stage(trainer_cls, cfg, stage.name)

    def skipped():
        if not evaluate_when_done:
            return {}
        logger.info(f"{stage.name}: already trained, evaluating")
        return train_stage(trainer_cls, cfg, stage.name)

    return run_stage(stage, body, output_done=lambda: stage_done(cfg.OUTPUT_DIR), skipped=skipped)


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
    results = getattr(trainer, "_last_eval_results", {})
    # Detectron2's EvalHook closes over the trainer (a reference cycle): without this the model,
    # optimizer and loader workers of a finished stage lived on into the next stages
    trainer._hooks = []
    del trainer
    gc.collect()
    return results
