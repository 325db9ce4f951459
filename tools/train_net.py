#!/usr/bin/env python
"""Train and evaluate weaksup models with Detectron2's trainer: the clone's ``train_net.py`` and
the installed ``weaksup-train`` (same arguments).

Examples: the clone's train_net.py.
"""

import argparse
import logging
import os
from datetime import timedelta
from typing import Callable

from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from weaksup.config import load_config, resolve_config_path
from weaksup.data.datasets import add_register_argument, register_user_datasets
from weaksup.engine import (
    PIPELINE_REGISTRY,
    WeaksupTrainer,
    launch,
    resolve_device,
    write_prediction_overlays,
)
from weaksup.engine.launch import add_dist_timeout_argument
from weaksup.engine.pipeline import training_stage
from weaksup.engine.stages import run_stage, stage_changes
from weaksup.engine.preflight import check_config_names
from weaksup.utils.checkpoint import SafeDetectionCheckpointer


def setup(args):
    """Config from file and command line, logging, device choice. ``args.config_file`` becomes
    the file found (a shipped config's name works from any folder), which default_setup reads."""
    args.config_file = resolve_config_path(args.config_file)
    cfg = load_config(args.config_file, args.opts)
    register_user_datasets(cfg, getattr(args, "register", ()))  # in every process, before use
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="weaksup")
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def main(args):
    cfg = setup(args)
    # every registry and dataset name now: a pipeline's own names too (the datasets it registers
    # as it runs are its stages', checked by each stage's trainer), before its first stage
    check_config_names(cfg)
    if args.eval_only:
        model = WeaksupTrainer.build_model(cfg)
        SafeDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        res = WeaksupTrainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
            write_prediction_overlays(cfg, model, os.path.join(cfg.OUTPUT_DIR, "overlays_eval"))
        return res

    if cfg.WEAKSUP.PIPELINE:  # a multi-stage method (e.g. BoxCaseg) runs its own stages
        return PIPELINE_REGISTRY.get(cfg.WEAKSUP.PIPELINE)(cfg, args)
    # one training, recorded as a stage (its config and initial weights, e.g. DASNet's stage 1
    # checkpoint for stage 2): an explicit --resume is obeyed, with a warning when they changed
    weights = [cfg.MODEL.WEIGHTS] if os.path.isfile(cfg.MODEL.WEIGHTS) else []
    stage = training_stage(cfg, "training", weights)
    changed = stage_changes(stage) if args.resume and comm.is_main_process() else None
    if changed:
        logging.getLogger("weaksup").warning(
            f"--resume: the checkpoints in {cfg.OUTPUT_DIR} were made with other settings or "
            f"inputs ({changed}); resuming as asked"
        )

    def train():
        trainer = WeaksupTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        return trainer.train()

    how = "resuming (--resume)" if args.resume else "training from MODEL.WEIGHTS (no --resume)"
    return run_stage(stage, train, force=how)


def build_parser() -> argparse.ArgumentParser:
    """Detectron2's training arguments, ``--register`` and ``--dist-timeout``."""
    return add_dist_timeout_argument(add_register_argument(default_argument_parser()))


def launch_job(job: Callable, args: argparse.Namespace):
    """Run ``job(args)`` in ``--num-gpus`` processes on each of ``--num-machines`` machines."""
    return launch(
        job,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
        timeout=timedelta(minutes=args.dist_timeout),  # the process-group timeout
    )


def cli(argv=None) -> None:
    """``train_net.py`` / ``weaksup-train``: parse :func:`build_parser`'s arguments and launch
    :func:`main`."""
    launch_job(main, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli()
