#!/usr/bin/env python
"""
BoxCaseg benchmark: proxy-mask quality of a stage-1 BoxCaseg model trained here, against the
pseudo-mask engine's GrabCut (and the box / ellipse baselines), on the same PennFudan instances in
the same run; and the BoxCaseg network's throughput (patches/s).

1. Trains the stage-1 network of ``--config`` (default: the CPU demo's, PennFudan train boxes +
   ECSSD salient images, from scratch) for its ``SOLVER.MAX_ITER`` (or ``--iters``) iterations into
   ``--output``, unless ``--weights`` names a trained one.
2. For every GT box of ``--dataset`` (default ``pennfudan_val``: images the network never saw),
   one mask per method: BoxCaseg (crop at the box, salient + transferred heads, paste back) and the
   engine's methods; each with the paper's post-processing (merge "smaller object better", then
   drop by proxy box agreement). Table: mIoU*, IoU@50, IoU@75 of all masks (merged), and for each
   ``--drop`` threshold (0.95 of Tab. 8, 0.6 of the CPU demo) the share of masks kept and their
   mIoU*.
3. Throughput: ``predict_patches`` on batches of random patches at the test size (forward only),
   after a warm-up, on the CPU (and on CUDA when available).

    DETECTRON2_DATASETS=../shared/data python benchmarks/boxcaseg.py [--iters N] [--weights W]
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from weaksup import add_weaksup_config  # noqa: E402
from weaksup.engine import resolve_device  # noqa: E402
from weaksup.methods.boxcaseg.data import BoxCasegTestMapper  # noqa: E402
from weaksup.methods.boxcaseg.pipeline import BoxCasegTrainer  # noqa: E402
from weaksup.methods.boxcaseg.proxy_masks import merge_and_drop  # noqa: E402
from weaksup.evaluation import box_mask_quality  # noqa: E402
from weaksup.evaluation.ground_truth import segmentation_to_bitmask  # noqa: E402
from weaksup.pseudo import PseudoMaskConfig, pseudo_masks_for_image  # noqa: E402


def train_stage1(cfg, iters: int) -> str:
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.MAX_ITER = iters
    cfg.SOLVER.CHECKPOINT_PERIOD = iters
    cfg.DATASETS.TEST = ()
    cfg.freeze()
    start = time.perf_counter()
    trainer = BoxCasegTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    print(f"stage 1: {iters} iterations in {time.perf_counter() - start:.0f} s")
    return os.path.join(cfg.OUTPUT_DIR, "model_final.pth")


def method_masks(cfg, model, records, methods):
    """{method: (list of per-image (N, H, W) masks, seconds)} for the GT boxes of ``records``."""
    mapper = BoxCasegTestMapper(cfg, False)
    out = {m: ([], 0.0) for m in ["boxcaseg", *methods]}
    engine_cfg = PseudoMaskConfig(merge_smaller=False)
    for r in records:
        x = mapper(r)
        boxes = x["instances"].gt_boxes.tensor.numpy().astype(np.float64)
        start = time.perf_counter()
        with torch.no_grad():
            pred = model([x])[0]["instances"].pred_masks.cpu().numpy().astype(bool)
        masks, secs = out["boxcaseg"]
        out["boxcaseg"] = (masks + [pred], secs + time.perf_counter() - start)
        image = x["image"].numpy().transpose(1, 2, 0)
        if cfg.INPUT.FORMAT == "RGB":
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
        seeds = list(range(len(boxes)))
        for m in methods:
            start = time.perf_counter()
            pms = pseudo_masks_for_image(image, boxes, m, seeds, engine_cfg)
            masks, secs = out[m]
            out[m] = (masks + [np.stack([p.mask for p in pms])], secs + time.perf_counter() - start)
    return out


def quality_table(records, per_method, thresholds):
    gts, classes = [], []
    for r in records:
        for a in r["annotations"]:
            if not a.get("iscrowd", 0):
                gts.append(segmentation_to_bitmask(a["segmentation"], r["height"], r["width"]))
                classes.append(a["category_id"])
    rows = []
    for name, (masks, secs) in per_method.items():
        merged, agreements = [], []
        for r, m in zip(records, masks):
            boxes = np.array(
                [a["bbox"] for a in r["annotations"] if not a.get("iscrowd", 0)], dtype=np.float64
            )
            mm, agreement, _ = merge_and_drop(m, boxes, merge=True, drop_threshold=1.0)
            merged += list(mm)
            agreements += list(agreement)
        agreements = np.array(agreements)
        q = box_mask_quality(merged, gts, classes)
        row = [name, q["mIoU*"], q["IoU@50"], q["IoU@75"]]
        for t in thresholds:
            valid = agreements >= t
            kept = (
                box_mask_quality(
                    [m for m, v in zip(merged, valid) if v],
                    [g for g, v in zip(gts, valid) if v],
                    [c for c, v in zip(classes, valid) if v],
                )["mIoU*"]
                if valid.any()
                else float("nan")
            )
            row += [100 * valid.mean(), kept]
        rows.append(row + [len(gts) / secs])
    header = ["method", "mIoU*", "IoU@50", "IoU@75"]
    for t in thresholds:
        header += [f"kept % (agreement >= {t})", f"kept mIoU* (>= {t})"]
    print("| " + " | ".join(header + ["inst/s"]) + " |")
    print("|" + "---|" * (len(header) + 1))
    for row in rows:
        print("| " + row[0] + " | " + " | ".join(f"{v:.1f}" for v in row[1:]) + " |")


@torch.no_grad()
def throughput(model, size: int, device: str, batch: int = 16, iters: int = 5) -> float:
    model = model.to(device).eval()
    patches = torch.randn(batch, 3, size, size, device=device)
    model.predict_patches(patches)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        model.predict_patches(patches)
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument(
        "--config", default="configs/BoxCaseg/demo_pennfudan_ecssd_HRNetV2_W18_small.yaml"
    )
    parser.add_argument("--iters", type=int, help="stage-1 iterations (default: the config's)")
    parser.add_argument("--weights", help="a trained stage-1 model (skips training)")
    parser.add_argument("--output", default="output/benchmark_boxcaseg")
    parser.add_argument("--dataset", default="pennfudan_val")
    parser.add_argument("--methods", nargs="*", default=["grabcut", "ellipse", "box"])
    parser.add_argument(
        "--drop", type=float, nargs="+", default=[0.95, 0.6], help="proxy box agreement thresholds"
    )
    parser.add_argument("--paper-size", action="store_true", help="also time W48 at 320x320")
    args = parser.parse_args()
    setup_logger(name="weaksup")
    cfg = add_weaksup_config(get_cfg())
    cfg.merge_from_file(args.config)
    cfg.OUTPUT_DIR = args.output
    resolve_device(cfg)
    cfg.freeze()
    weights = args.weights or train_stage1(cfg, args.iters or cfg.SOLVER.MAX_ITER)
    model = BoxCasegTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    model.eval()
    records = DatasetCatalog.get(args.dataset)
    n = sum(len(r["annotations"]) for r in records)
    print(f"\n{args.dataset}: {len(records)} images, {n} instances; weights {weights}")
    quality_table(records, method_masks(cfg, model, records, args.methods), args.drop)

    print("\n| network | patch | device | patches/s (forward, batch 16) |\n|---|---|---|---|")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        fps = throughput(model, cfg.INPUT.BOXCASEG.TEST_SIZE, device)
        print(f"| {args.config} | {cfg.INPUT.BOXCASEG.TEST_SIZE} | {device} | {fps:.1f} |")
    if args.paper_size:
        big = add_weaksup_config(get_cfg())
        big.merge_from_file("configs/BoxCaseg/Base-BoxCaseg.yaml")
        big.MODEL.HRNET.NORM = "BN"
        big.MODEL.DEVICE = "cpu"
        w48 = BoxCasegTrainer.build_model(big)
        for device in devices:
            fps = throughput(w48, 320, device, iters=2 if device == "cpu" else 10)
            print(f"| HRNetV2-W48 (paper) | 320 | {device} | {fps:.1f} |")


if __name__ == "__main__":
    main()
