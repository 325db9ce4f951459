#!/usr/bin/env python
"""DASNet mask quality against the number of mask images, in one run (PennFudan, CPU).

One stage-1 detector (trained here, or ``--detector-weights``) is shared; stage 2 (the demo's
segmentation stage, same schedule) is trained once per mask subset and seed: 5, 20 and all 128
images of PennFudan's training split (``per_class`` draws with seed 0, one class), each with
``--seeds`` (default 1 and 2: the spread of a point is the difference of its two runs). Also, at
``--ablation-masks`` images and the first seed, stage 2 with box attention off
(``MODEL.DASNET.BOX_ATTENTION False``: Eq. 1's contribution), and the reference the paper compares
against: a Mask R-CNN trained on all 128 masks at the same backbone and schedule
(``--reference``). Every model is evaluated on PennFudan val: VOC mAP^r at 0.5 / 0.75 (instance
branch), mIoU (semantic branch, label maps from the val instance masks) and COCO mask AP. Prints
the tables (and writes them as json). Default configs: the ImageNet Lite0-FPN demo's.

    python benchmarks/dasnet.py [--detector-weights W] [--seeds 1 2] [KEY VALUE ...]
"""

import argparse
import json
import logging
import os
import time

from detectron2.data import DatasetCatalog
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from weaksup import load_config
from weaksup.data.datasets import remove_dataset
from weaksup.data.datasets.mask_subset import register_mask_subset
from weaksup.engine import WeaksupTrainer, resolve_device

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "configs", "DASNet", "demo")
REFERENCE = os.path.join(REPO, "configs", "demo", "pennfudan_box_mask_rcnn_Lite0_FPN.yaml")


def _cfg(config: str, output_dir: str, opts: list):
    cfg = load_config(config, ["OUTPUT_DIR", output_dir, "WEAKSUP.HOOKS", "[]", *opts])
    resolve_device(cfg)
    cfg.freeze()
    return cfg


def _train(cfg) -> dict:
    seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
    trainer = WeaksupTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    if not cfg.DATASETS.TEST:
        return {}
    # the trainer's EvalHook has evaluated the final model already: not a second time
    results = getattr(trainer, "_last_eval_results", None)
    return results if results else trainer.test(cfg, trainer.model)


def _row(res: dict, **keys) -> dict:
    voc, segm = res["voc_instance"], res["segm"]
    row = dict(keys, **{"mAP^r@0.5": voc["mAP@0.5"], "mAP^r@0.75": voc["mAP@0.75"]})
    if "sem_seg" in res:
        row.update(mIoU=res["sem_seg"]["mIoU"], **{"IoU-person": res["sem_seg"]["IoU-person"]})
    row["mask AP"] = segm["AP"]
    return row


def _table(rows) -> str:
    header = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.get(k, "") for k in header]
        lines.append(
            "| " + " | ".join(f"{c:.1f}" if isinstance(c, float) else str(c) for c in cells) + " |"
        )
    return "\n".join(lines)


def _spread(rows, metrics=("mAP^r@0.5", "mAP^r@0.75", "mIoU", "mask AP")) -> list:
    """Per mask count: mean +- half the range of its seeds."""
    out = []
    for n in dict.fromkeys(r["mask images"] for r in rows):
        runs = [r for r in rows if r["mask images"] == n]
        cell = {"mask images": n, "seeds": len(runs)}
        for m in metrics:
            v = [r[m] for r in runs]
            cell[m] = f"{sum(v) / len(v):.1f} +- {(max(v) - min(v)) / 2:.1f}"
        out.append(cell)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--stage1-config", default=os.path.join(DEMO, "pennfudan_stage1_det_Lite0_FPN.yaml")
    )
    parser.add_argument(
        "--stage2-config", default=os.path.join(DEMO, "pennfudan_stage2_seg_Lite0_FPN.yaml")
    )
    parser.add_argument("--detector-weights", help="stage-1 checkpoint; trained here if absent")
    parser.add_argument("--mask-images", type=int, nargs="+", default=[5, 20, 128])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--ablation-masks",
        type=int,
        default=5,
        help="mask images of the attention-off row (0: none)",
    )
    parser.add_argument(
        "--reference", default=REFERENCE, help="Mask R-CNN config trained on all masks ('' : none)"
    )
    parser.add_argument("--output-dir", default=os.path.join(REPO, "output", "benchmark_dasnet"))
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of every training"
    )
    args = parser.parse_args(argv)
    setup_logger(name="weaksup")
    setup_logger()
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    os.makedirs(args.output_dir, exist_ok=True)

    start = time.perf_counter()
    weights = args.detector_weights
    if weights is None:
        out = os.path.join(args.output_dir, "stage1")
        _train(_cfg(args.stage1_config, out, list(args.opts) + ["DATASETS.TEST", "()"]))
        weights = os.path.join(out, "model_final.pth")

    num_train = len(DatasetCatalog.get("pennfudan_train"))

    def stage2(n: int, seed: int, tag: str, extra=()) -> dict:
        name = f"benchmark_pennfudan_train_seg{n}_masks"
        subset = {} if n >= num_train else {"per_class": n, "seed": 0}
        remove_dataset(name)  # registered again for each seed and the ablation
        register_mask_subset(name, "pennfudan_train", subset_only=True, **subset)
        out = os.path.join(args.output_dir, f"stage2_seg{n}_seed{seed}{tag}")
        opts = ["MODEL.WEIGHTS", weights, "DATASETS.TRAIN", f"('{name}',)", "SEED", str(seed)]
        return _train(_cfg(args.stage2_config, out, list(args.opts) + opts + list(extra)))

    rows = []
    for n in args.mask_images:
        for seed in args.seeds:
            rows.append(_row(stage2(n, seed, ""), **{"mask images": n, "seed": seed}))
    tables = {"runs": rows, "per mask count": _spread(rows)}
    if args.ablation_masks:
        n, seed = args.ablation_masks, args.seeds[0]
        ablation = [r for r in rows if r["mask images"] == n and r["seed"] == seed]
        off = stage2(n, seed, "_no_attention", ["MODEL.DASNET.BOX_ATTENTION", "False"])
        ablation = [dict(r, **{"box attention": "on (Eq. 1)"}) for r in ablation]
        ablation.append(_row(off, **{"mask images": n, "seed": seed, "box attention": "off"}))
        tables["box attention"] = ablation
    if args.reference:
        out = os.path.join(args.output_dir, "reference_mask_rcnn")
        opts = ["DATASETS.TRAIN", "('pennfudan_train',)", "WEAKSUP.MASK_SOURCE", "annotation"]
        res = _train(
            _cfg(args.reference, out, list(args.opts) + opts + ["SEED", str(args.seeds[0])])
        )
        tables["Mask R-CNN, all masks"] = [
            _row(res, **{"mask images": num_train, "seed": args.seeds[0]})
        ]

    minutes = (time.perf_counter() - start) / 60
    print(
        f"\nDASNet on PennFudan val, stage 2 of {args.stage2_config}, detector {weights}, "
        f"{minutes:.1f} min in all:"
    )
    for title, t in tables.items():
        print(f"\n{title}:\n{_table(t)}")
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump({"detector": weights, "stage2_config": args.stage2_config, **tables}, f, indent=1)


if __name__ == "__main__":
    main()
