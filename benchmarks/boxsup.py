#!/usr/bin/env python
"""BoxSup's training labels against the GT masks, epoch by epoch (Fig. 3 in numbers, Tab. 2's
mask estimates): rectangles vs GrabCut vs BoxSup on PennFudan's 128 training images (CPU).

Rectangles and GrabCut are made once by the pseudo-mask engine (never updated, as in Tab. 2), with
the same overlap rule as BoxSup (the smaller mask wins). BoxSup's labels are those of a BoxSup
training run (the CPU demo, trained here unless ``--run-dir`` names a finished one): labelling 0
by E_o, then one per epoch by E_o + lambda E_r with the network of that epoch. Prints a table of
the labels' mIoU (background + person, against label maps of the GT instance masks) that each
epoch trains on, with the run's validation mIoU, and writes it as json.

    python benchmarks/boxsup.py                       # trains the demo (~15 min on 2 quiet cores)
    python benchmarks/boxsup.py --run-dir output/boxsup/pennfudan_demo   # a finished demo run

``--lambda-weights W`` also relabels the training images once with the network ``W`` (e.g. the
demo's checkpoint after epoch 1) for each lambda of ``--lambdas`` (k = 1, deterministic): how much
the network feedback moves the labels, and whether it helps, for a network of that quality.
"""

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time

import torch
from detectron2.data import get_detection_dataset_dicts
from detectron2.utils.logger import setup_logger
from tabulate import tabulate

from weaksup import load_config
from weaksup.methods.boxsup.label_update import LabelSpec, make_labelling
from weaksup.methods.boxsup.labelling import miou_from_confusion

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "configs", "BoxSup", "demo", "pennfudan_boxsup_R18_GN.yaml")


def fixed_label_miou(cfg, source: str, work_dir: str, num_workers: int):
    """mIoU and seconds of the labels an engine method makes once for the training images."""
    records = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
    by_file = {
        r["file_name"]: r
        for r in get_detection_dataset_dicts([cfg.WEAKSUP.BOXSUP.GT_DATASET], filter_empty=False)
    }
    spec = dataclasses.replace(LabelSpec.from_config(cfg), source=source)
    start = time.perf_counter()
    stats = make_labelling(
        records,
        spec,
        0,
        os.path.join(work_dir, source),
        gt_records=[by_file[r["file_name"]] for r in records],
        num_workers=num_workers,
        num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
    )
    return miou_from_confusion(stats["confusion"]), time.perf_counter() - start


def lambda_sweep(cfg, weights: str, lambdas, work_dir: str, num_workers: int):
    """Label mIoU of one labelling per lambda with the network ``weights`` (k = 1)."""
    from detectron2.modeling import build_model

    from weaksup.utils.checkpoint import SafeDetectionCheckpointer

    model = build_model(cfg)
    SafeDetectionCheckpointer(model).load(weights)
    model.eval()
    records = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
    by_file = {
        r["file_name"]: r
        for r in get_detection_dataset_dicts([cfg.WEAKSUP.BOXSUP.GT_DATASET], filter_empty=False)
    }
    out = []
    for lam in lambdas:
        spec = dataclasses.replace(LabelSpec.from_config(cfg), regression_weight=lam, top_k=1)
        stats = make_labelling(
            records,
            spec,
            1,
            os.path.join(work_dir, f"lambda_{lam}"),
            model if lam > 0 else None,
            [by_file[r["file_name"]] for r in records],
            num_workers,
            num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        )
        out.append((lam, miou_from_confusion(stats["confusion"])))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", default=DEMO)
    parser.add_argument("--run-dir", help="OUTPUT_DIR of a finished BoxSup run of the config")
    parser.add_argument("--output-dir", default=os.path.join(REPO, "output", "benchmark_boxsup"))
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--lambda-weights", help="a checkpoint of the config's network")
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0, 0.1, 0.3, 1, 3])
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    setup_logger(name="weaksup")
    logging.getLogger("weaksup").setLevel(logging.WARNING)  # no per-image progress lines
    cfg = load_config(args.config_file, args.opts)

    run_dir = args.run_dir
    if run_dir is None:
        run_dir = os.path.join(args.output_dir, "boxsup_run")
        cmd = [sys.executable, os.path.join(REPO, "train_net.py"), "--config-file"]
        cmd += [args.config_file, *args.opts, "OUTPUT_DIR", run_dir]
        print("training:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
    with open(os.path.join(run_dir, "boxsup", "epochs.json")) as f:
        epochs = json.load(f)

    fixed = {
        source: fixed_label_miou(cfg, source, args.output_dir, args.num_workers)
        for source in ("box", "grabcut")
    }
    rows = []
    for e in epochs:
        rows.append(
            {
                "epoch": e["epoch"],
                "rectangles": fixed["box"][0],
                "GrabCut": fixed["grabcut"][0],
                "BoxSup": e["label_mIoU"],
                "BoxSup labelling": e["labelling"],
                "BoxSup val mIoU": e["val_mIoU"],
            }
        )
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(
        "\nmIoU (%) of the training labels each epoch trains on, against the GT masks "
        f"({cfg.DATASETS.TRAIN[0]}, background + person):"
    )
    print(
        tabulate(
            [
                [r["epoch"], fmt(r["rectangles"]), fmt(r["GrabCut"]), fmt(r["BoxSup"]),
                 r["BoxSup labelling"], fmt(r["BoxSup val mIoU"])]
                for r in rows
            ],
            headers=["epoch", "rectangles", "GrabCut", "BoxSup", "labelling", "BoxSup val mIoU"],
            tablefmt="pipe",
        )
    )  # fmt: skip
    print(
        f"labelling time (s, {args.num_workers} workers): rectangles {fixed['box'][1]:.1f}, "
        f"GrabCut {fixed['grabcut'][1]:.1f}; BoxSup run: {run_dir}"
    )
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "boxsup_labels.json"), "w") as f:
        json.dump(rows, f, indent=1)
    if args.lambda_weights:
        cfg.MODEL.DEVICE = "cpu" if not torch.cuda.is_available() else cfg.MODEL.DEVICE
        sweep = lambda_sweep(
            cfg, args.lambda_weights, args.lambdas, args.output_dir, args.num_workers
        )
        print(f"\nlabels made once with {args.lambda_weights} (k = 1), mIoU (%) against the GT:")
        print(
            tabulate(
                [[lam, f"{m:.1f}"] for lam, m in sweep],
                headers=["lambda", "label mIoU"],
                tablefmt="pipe",
            )
        )


if __name__ == "__main__":
    main()
