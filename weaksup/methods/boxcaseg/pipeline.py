"""BoxCaseg end to end (BoxCaseg Sec. 3.2-3.4): three cached stages behind one command.

1. the BoxCaseg network on mixed box / salient patches (:class:`BoxCasegTrainer`), written to
   ``<OUTPUT_DIR>/stage1``;
2. proxy masks for every GT box of ``DATASETS.TRAIN``
   (:func:`~weaksup.methods.boxcaseg.proxy_masks.generate_proxy_masks`), written to
   ``<OUTPUT_DIR>/proxy_masks/<dataset>.json``;
3. Proxy Mask R-CNN on the GT boxes + proxy masks (dropped masks flagged, mask loss skips them),
   written to ``<OUTPUT_DIR>`` and evaluated with ``WEAKSUP.EVALUATORS``.

Each stage is a :class:`~weaksup.engine.stages.Stage`: skipped only when its output was made
with the same settings and inputs (its fingerprint: the stage's config, the proxy settings, the
earlier stages'), resumed from its last checkpoint / finished shards after an interruption,
redone from scratch when a setting it depends on changed (e.g. ``PROXY.DROP_THRESHOLD`` redoes
stage 2 and then stage 3); the log says which and why.
"""

import logging
import os
from argparse import Namespace
from typing import Any, Dict, List, Optional, Tuple

from detectron2.config import CfgNode
from detectron2.utils import comm

from weaksup.config import load_config
from weaksup.data import build_mapper
from weaksup.data.datasets import register_coco_instances, remove_dataset
from weaksup.engine.pipeline import (
    PIPELINE_REGISTRY,
    run_training_stage,
    stage_config,
    training_stage,
)
from weaksup.engine.stages import Stage, run_stage
from weaksup.engine.trainer import WeaksupTrainer
from weaksup.utils.checkpoint import SafeDetectionCheckpointer

from .data import build_boxcaseg_train_loader
from .proxy_masks import generate_proxy_masks, proxy_mask_quality

__all__ = [
    "BoxCasegTrainer",
    "make_proxy_masks",
    "proxy_stage",
    "run_boxcaseg_network",
    "run_boxcaseg_pipeline",
    "stage1_config",
]

logger = logging.getLogger(__name__)

PROXY_SUFFIX = "_boxcaseg_proxy"


class BoxCasegTrainer(WeaksupTrainer):
    """:class:`WeaksupTrainer` for the BoxCaseg network: mixed batches of patches
    (:func:`build_boxcaseg_train_loader`, mapper ``WEAKSUP.TRAIN_MAPPER``, e.g.
    ``BoxCasegPatchMapper``); evaluation through ``WEAKSUP.TEST_MAPPER`` (``BoxCasegTestMapper``:
    one mask per GT box) and ``WEAKSUP.EVALUATORS`` (``box_mask_quality``)."""

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        return build_boxcaseg_train_loader(cfg, build_mapper(cfg, is_train=True))


@PIPELINE_REGISTRY.register("BoxCasegNetwork")
def run_boxcaseg_network(cfg: CfgNode, args: Namespace):
    """Stage 1 alone: train (``--resume`` continues) and evaluate the BoxCaseg network."""
    trainer = BoxCasegTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def stage1_config(cfg: CfgNode) -> CfgNode:
    """The stage-1 config: ``WEAKSUP.BOXCASEG.STAGE1_CONFIG``, the job-wide command-line
    overrides (:func:`~weaksup.engine.pipeline.stage_config`), ``STAGE1_OPTS``; its output in
    ``<OUTPUT_DIR>/stage1``, its device resolved for this machine."""
    path = cfg.WEAKSUP.BOXCASEG.STAGE1_CONFIG
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"WEAKSUP.BOXCASEG.STAGE1_CONFIG={path!r}: no such config file")
    opts = list(cfg.WEAKSUP.BOXCASEG.STAGE1_OPTS)
    out = os.path.join(cfg.OUTPUT_DIR, "stage1")
    return stage_config(load_config(path, opts), out, cfg, opts, "stage 1")


def proxy_stage(cfg: CfgNode, dataset_name: str, stage1: Stage) -> Stage:
    """Stage 2 of one training dataset: its proxy-mask json, made by the stage-1 model with the
    merge and drop settings (``WEAKSUP.BOXCASEG.PROXY``)."""
    p = cfg.WEAKSUP.BOXCASEG.PROXY
    settings = {"dataset": dataset_name, "merge": p.MERGE, "drop_threshold": p.DROP_THRESHOLD}
    return Stage(
        f"stage 2 ({dataset_name})",
        proxy_json_path(cfg, dataset_name),
        settings,
        [stage1],
        datasets=[dataset_name],  # by content: an edited box or image redoes the proxies
    )


def proxy_json_path(cfg: CfgNode, dataset_name: str) -> str:
    return os.path.join(cfg.OUTPUT_DIR, "proxy_masks", f"{dataset_name}.json")


def register_proxy_dataset(dataset_name: str, json_file: str) -> str:
    """Register ``json_file`` (absolute image paths) as ``<dataset_name>_boxcaseg_proxy``."""
    name = dataset_name + PROXY_SUFFIX
    remove_dataset(name)
    register_coco_instances(name, {}, json_file, "")  # classes: the json's (= the dataset's)
    return name


def make_proxy_masks(
    cfg: CfgNode, cfg1: CfgNode, stage1: Optional[Stage] = None
) -> Tuple[List[str], List[Stage]]:
    """Stage 2: proxy masks of each of ``cfg.DATASETS.TRAIN`` with the stage-1 model (each a
    cached :func:`proxy_stage`), quality reports; returns the registered proxy datasets and
    their stages."""
    p = cfg.WEAKSUP.BOXCASEG.PROXY
    gt_datasets = list(p.GT_DATASETS) or [""] * len(cfg.DATASETS.TRAIN)
    if len(gt_datasets) != len(cfg.DATASETS.TRAIN):
        raise ValueError(
            f"WEAKSUP.BOXCASEG.PROXY.GT_DATASETS {gt_datasets} must match DATASETS.TRAIN "
            f"{list(cfg.DATASETS.TRAIN)} one to one ('' for none)"
        )
    stage1 = stage1 or training_stage(cfg1, "stage 1")
    weights = os.path.join(cfg1.OUTPUT_DIR, "model_final.pth")
    model, names, stages = None, [], []
    for dataset_name, gt_name in zip(cfg.DATASETS.TRAIN, gt_datasets):
        stage = proxy_stage(cfg, dataset_name, stage1)

        def body(dataset_name=dataset_name, gt_name=gt_name, path=stage.output):
            nonlocal model
            if model is None:
                model = BoxCasegTrainer.build_model(cfg1)
                SafeDetectionCheckpointer(model).load(weights)
            generate_proxy_masks(
                cfg1,
                model,
                dataset_name,
                path,
                weights=weights,
                merge=p.MERGE,
                drop_threshold=p.DROP_THRESHOLD,
                shard_size=p.SHARD_SIZE,
            )
            if gt_name and comm.is_main_process():
                proxy_mask_quality(path, gt_name)

        run_stage(stage, body)
        names.append(register_proxy_dataset(dataset_name, stage.output))
        stages.append(stage)
    return names, stages


@PIPELINE_REGISTRY.register("BoxCaseg")
def run_boxcaseg_pipeline(cfg: CfgNode, args: Namespace) -> Dict[str, Any]:
    """Stages 1-3 with caching (module docstring); returns stage 3's evaluation results."""
    if cfg.WEAKSUP.MASK_SOURCE != "annotation":
        raise ValueError(
            "the BoxCaseg pipeline trains stage 3 on proxy-mask jsons: set "
            f"WEAKSUP.MASK_SOURCE 'annotation' (got {cfg.WEAKSUP.MASK_SOURCE!r})"
        )
    cfg1 = stage1_config(cfg)
    stage1 = training_stage(cfg1, "stage 1")
    run_training_stage(BoxCasegTrainer, cfg1, stage1, "BoxCaseg network")
    names, proxy_stages = make_proxy_masks(cfg, cfg1, stage1)
    cfg3 = cfg.clone()
    cfg3.defrost()
    cfg3.DATASETS.TRAIN = tuple(names)
    cfg3.freeze()
    return run_training_stage(
        WeaksupTrainer,
        cfg3,
        "stage 3",
        f"Proxy Mask R-CNN on {list(cfg3.DATASETS.TRAIN)}",
        evaluate_when_done=True,
        inputs=proxy_stages,
    )
