#!/usr/bin/env python
"""DASNet mask quality against the number of mask images, in one run (PennFudan, CPU).

One stage-1 detector (trained here, or ``--detector-weights``) is shared; stage 2 (the demo's
segmentation stage, same schedule and seed) is trained once per mask subset: 5, 20 and all 128
images of PennFudan's training split (``per_class`` draws with seed 0, one class). Each model is
evaluated on PennFudan val: VOC mAP^r at 0.5 / 0.75 (instance branch) and mIoU (semantic branch,
label maps derived from the val instance masks). Prints a table (and writes it as json).

    python benchmarks/dasnet.py --detector-weights output/dasnet_pennfudan/stage1/model_final.pth
"""

import argparse
import json
import logging
import os
import time

import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.utils.logger import setup_logger

from weaksup import add_weaksup_config
from weaksup.data.mask_subset import register_mask_subset
from weaksup.engine import WeaksupTrainer, resolve_device

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "configs", "DASNet", "demo")


def _cfg(config: str, output_dir: str, opts: list):
    cfg = get_cfg()
    add_weaksup_config(cfg)
    cfg.merge_from_file(os.path.join(DEMO, config))
    cfg.merge_from_list(["OUTPUT_DIR", output_dir, "WEAKSUP.HOOKS", "[]", *opts])
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def _train(cfg) -> dict:
    torch.manual_seed(cfg.SEED if cfg.SEED >= 0 else 0)
    trainer = WeaksupTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer.test(cfg, trainer.model) if cfg.DATASETS.TEST else {}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detector-weights", help="stage-1 checkpoint; trained here if absent")
    parser.add_argument("--stage1-iters", type=int, default=160)
    parser.add_argument("--stage2-iters", type=int, default=100)
    parser.add_argument("--mask-images", type=int, nargs="+", default=[5, 20, 128])
    parser.add_argument("--output-dir", default=os.path.join(REPO, "output", "benchmark_dasnet"))
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    setup_logger(name="weaksup")
    setup_logger()
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    os.makedirs(args.output_dir, exist_ok=True)

    start = time.perf_counter()
    weights = args.detector_weights
    if weights is None:
        out = os.path.join(args.output_dir, "stage1")
        steps = f"({int(args.stage1_iters * 0.75)}, {int(args.stage1_iters * 0.9)})"
        _train(
            _cfg(
                "pennfudan_stage1_det_R18_FPN_GN.yaml",
                out,
                [
                    "SOLVER.MAX_ITER",
                    str(args.stage1_iters),
                    "SOLVER.STEPS",
                    steps,
                    "DATASETS.TEST",
                    "()",
                    *args.opts,
                ],
            )
        )
        weights = os.path.join(out, "model_final.pth")

    num_train = len(DatasetCatalog.get("pennfudan_train"))
    rows = []
    for n in args.mask_images:
        name = f"benchmark_pennfudan_train_seg{n}_masks"
        subset = {} if n >= num_train else {"per_class": n, "seed": 0}
        register_mask_subset(name, "pennfudan_train", subset_only=True, **subset)
        steps = f"({int(args.stage2_iters * 0.8)},)"
        cfg = _cfg(
            "pennfudan_stage2_seg_R18_FPN_GN.yaml",
            os.path.join(args.output_dir, f"stage2_seg{n}"),
            [
                "MODEL.WEIGHTS",
                weights,
                "DATASETS.TRAIN",
                f"('{name}',)",
                "SOLVER.MAX_ITER",
                str(args.stage2_iters),
                "SOLVER.STEPS",
                steps,
                *args.opts,
            ],
        )
        res = _train(cfg)
        voc, sem = res["voc_instance"], res["sem_seg"]
        rows.append(
            {
                "mask_images": len(DatasetCatalog.get(name)),
                "mAP^r@0.5": voc["mAP@0.5"],
                "mAP^r@0.75": voc["mAP@0.75"],
                "mIoU": sem["mIoU"],
                "IoU-person": sem["IoU-person"],
                "segm AP": res["segm"]["AP"],
            }
        )
    minutes = (time.perf_counter() - start) / 60
    header = list(rows[0])
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += [
        "| "
        + " | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) else str(r[k]) for k in header)
        + " |"
        for r in rows
    ]
    text = "\n".join(table)
    print(
        f"\nDASNet on PennFudan val, stage 2 x {args.stage2_iters} iterations per row, "
        f"detector {weights}, {minutes:.1f} min in all:\n{text}"
    )
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(
            {"detector": weights, "stage2_iters": args.stage2_iters, "rows": rows}, f, indent=1
        )


if __name__ == "__main__":
    main()
