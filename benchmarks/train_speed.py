#!/usr/bin/env python
"""Training speed and peak memory: weaksup's trainer against plain Detectron2, and Enhanced-FPN
against FPN, in one run.

The trainers train the same Mask R-CNN config on the same images with the same masks:

* ``detectron2``: ``DefaultTrainer``, Detectron2's ``DatasetMapper`` and ``MaskRCNNConvUpsampleHead``;
* ``weaksup``: ``WeaksupTrainer``, ``BoxSupervisedDatasetMapper`` (mask source ``annotation``, so
  the masks are the same ground truth) and ``FlaggedMaskRCNNConvUpsampleHead``;
* ``enhanced_fpn``: ``weaksup`` with the Hybrid networks' Enhanced-FPN backbone
  (``build_resnet_enhanced_fpn_backbone``) in place of FPN, for the Enhanced-FPN / FPN ratio.

All see the same images in the same order at the same sizes (seeded). Each measurement runs in a
fresh subprocess (so peak memory is its own), rotating the trainers ``--repeats`` times; the
tables report the median seconds per iteration after ``--warmup`` iterations, the peak memory
(CUDA: ``max_memory_allocated``; CPU: peak RSS), the backbone's parameters, and the weaksup /
detectron2 and Enhanced-FPN / FPN ratios.

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
DEFAULT_CONFIG = os.path.join(REPO_ROOT, "configs/PseudoMasks/demo/pennfudan_box_mask_rcnn_R18_FPN_GN.yaml")
KINDS = ("detectron2", "weaksup", "enhanced_fpn")


def _measure(kind: str, config_file: str, iters: int, warmup: int, opts: list) -> dict:
    """Train ``warmup + iters`` iterations with one trainer; runs inside the child process."""
    import tempfile

    import torch
    from detectron2.engine import DefaultTrainer, HookBase
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    from weaksup import load_config
    from weaksup.engine import WeaksupTrainer, resolve_device

    setup_logger(name="fvcore")
    cfg = load_config(config_file, opts)
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
    if kind == "enhanced_fpn":
        cfg.MODEL.BACKBONE.NAME = "build_resnet_enhanced_fpn_backbone"
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
    model = getattr(trainer.model, "module", trainer.model)
    return {
        "kind": kind,
        "s_per_iter": statistics.median(timer.times),
        "peak_mib": peak,
        "backbone_params": sum(p.numel() for p in model.backbone.parameters()),
        "device": cfg.MODEL.DEVICE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per trainer")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    args = parser.parse_args()

    if args.child:
        result = _measure(args.child, args.config_file, args.iters, args.warmup, args.opts)
        print("RESULT " + json.dumps(result))
        return

    results = {k: [] for k in KINDS}
    for rep in range(args.repeats):
        for kind in KINDS[rep % len(KINDS) :] + KINDS[: rep % len(KINDS)]:  # rotated order
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
    params = {k: v[0]["backbone_params"] for k, v in results.items()}
    device = results["weaksup"][0]["device"]
    print(
        f"\nMask R-CNN training, {os.path.relpath(args.config_file, REPO_ROOT)}, device {device}, "
        f"{args.iters} timed iterations after {args.warmup}, median of {args.repeats} runs"
    )
    print(f"| trainer | s/iter | peak memory (MiB) |\n|---|---|---|")
    for k in ("detectron2", "weaksup"):
        s, m = summary[k]
        print(f"| {k} | {s:.3f} | {m:.0f} |")
    (sd, md), (sw, mw) = summary["detectron2"], summary["weaksup"]
    print(f"| ratio weaksup/detectron2 | {sw / sd:.3f} | {mw / md:.3f} |")
    (se, me), pf, pe = summary["enhanced_fpn"], params["weaksup"], params["enhanced_fpn"]
    print("\n| backbone (weaksup trainer) | s/iter | peak memory (MiB) | backbone parameters |")
    print("|---|---|---|---|")
    print(f"| FPN | {sw:.3f} | {mw:.0f} | {pf:,} |")
    print(f"| Enhanced-FPN (Hybrid Sec. 2.3) | {se:.3f} | {me:.0f} | {pe:,} |")
    print(f"| ratio Enhanced-FPN/FPN | {se / sw:.3f} | {me / mw:.3f} | {pe / pf:.3f} |")


if __name__ == "__main__":
    main()
