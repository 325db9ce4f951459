#!/usr/bin/env python
"""Training speed and peak memory: weaksup's trainer against plain Detectron2, in one run.

Both trainers train the same Mask R-CNN config on the same images with the same masks:

* ``detectron2``: ``DefaultTrainer``, Detectron2's ``DatasetMapper`` and ``MaskRCNNConvUpsampleHead``;
* ``weaksup``: ``WeaksupTrainer``, ``BoxSupervisedDatasetMapper`` (mask source ``annotation``, so
  the masks are the same ground truth) and ``FlaggedMaskRCNNConvUpsampleHead``.

Both see the same images in the same order at the same sizes (seeded). Each measurement runs in a
fresh subprocess (so peak memory is its own), alternating the two
trainers ``--repeats`` times; the table reports the median seconds per iteration after
``--warmup`` iterations, the peak memory (CUDA: ``max_memory_allocated``; CPU: peak RSS), and the
weaksup / detectron2 ratios.

Usage: python benchmarks/train_speed.py [--config-file CFG] [--iters 20] [--warmup 5] [--repeats 2]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, "configs/demo/pennfudan_box_mask_rcnn_R18_FPN_GN.yaml")


def _measure(kind: str, config_file: str, iters: int, warmup: int, opts: list) -> dict:
    """Train ``warmup + iters`` iterations with one trainer; runs inside the child process."""
    import tempfile

    import torch
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultTrainer, HookBase
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    from weaksup import add_weaksup_config
    from weaksup.engine import WeaksupTrainer, resolve_device

    setup_logger(name="fvcore")
    cfg = add_weaksup_config(get_cfg())
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN",
            ("pennfudan_train",),
            "DATASETS.TEST",
            (),
            "SEED",
            0,
            "SOLVER.MAX_ITER",
            warmup + iters,
            "SOLVER.CHECKPOINT_PERIOD",
            10**9,
            "OUTPUT_DIR",
            tempfile.mkdtemp(prefix="train_speed_"),
            "WEAKSUP.HOOKS",
            [],
            "WEAKSUP.MASK_SOURCE",
            "annotation",
        ]
    )
    if kind == "detectron2":
        cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
        trainer_cls = DefaultTrainer
    else:
        trainer_cls = WeaksupTrainer
    resolve_device(cfg)
    seed_all_rng(cfg.SEED)  # same images, sizes and order for both trainers
    cuda = cfg.MODEL.DEVICE.startswith("cuda")

    class Timer(HookBase):
        def __init__(self):
            self.times = []

        def before_step(self):
            if cuda:
                torch.cuda.synchronize()
            self._t0 = time.perf_counter()

        def after_step(self):
            if cuda:
                torch.cuda.synchronize()
            if self.trainer.iter >= warmup:
                self.times.append(time.perf_counter() - self._t0)

    trainer = trainer_cls(cfg)
    timer = Timer()
    trainer.register_hooks([timer])
    trainer.resume_or_load(resume=False)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "kind": kind,
        "s_per_iter": statistics.median(timer.times),
        "peak_mib": peak,
        "device": cfg.MODEL.DEVICE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per trainer")
    parser.add_argument("--child", choices=["detectron2", "weaksup"], help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args()

    if args.child:
        result = _measure(args.child, args.config_file, args.iters, args.warmup, args.opts)
        print("RESULT " + json.dumps(result))
        return

    results = {"detectron2": [], "weaksup": []}
    for rep in range(args.repeats):
        for kind in ("detectron2", "weaksup") if rep % 2 == 0 else ("weaksup", "detectron2"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--config-file",
                args.config_file,
                "--iters",
                str(args.iters),
                "--warmup",
                str(args.warmup),
                *args.opts,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
            line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                sys.exit(f"{kind} measurement failed:\n{out.stderr[-3000:]}")
            results[kind].append(json.loads(line[0][len("RESULT ") :]))
            print(
                f"  run {rep + 1}/{args.repeats} {kind:>10}: "
                f"{results[kind][-1]['s_per_iter']:.3f} s/iter",
                file=sys.stderr,
            )

    summary = {
        k: (
            statistics.median(r["s_per_iter"] for r in v),
            statistics.median(r["peak_mib"] for r in v),
        )
        for k, v in results.items()
    }
    device = results["weaksup"][0]["device"]
    print(
        f"\nMask R-CNN training, {os.path.relpath(args.config_file, REPO_ROOT)}, device {device}, "
        f"{args.iters} timed iterations after {args.warmup}, median of {args.repeats} runs"
    )
    print(f"| trainer | s/iter | peak memory (MiB) |\n|---|---|---|")
    for k, (s, m) in summary.items():
        print(f"| {k} | {s:.3f} | {m:.0f} |")
    (sd, md), (sw, mw) = summary["detectron2"], summary["weaksup"]
    print(f"| ratio weaksup/detectron2 | {sw / sd:.3f} | {mw / md:.3f} |")


if __name__ == "__main__":
    main()
