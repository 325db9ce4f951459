#!/usr/bin/env python
"""
BoxCaseg benchmark: proxy masks of a stage-1 BoxCaseg network against the pseudo-mask engine's
methods (``consensus``, GrabCut, ellipse, box) on the same GT boxes in one run, on the training
data and on datasets the network never saw (Sec. 4, Tab. 3 / 7-8 in miniature); optionally the
ablations of Tab. 4 (heads at inference), Tab. 5 (fixed ratio vs random sampling) and Tab. 6
(alpha); and the throughput of each method.

1. Trains the stage-1 network of ``--config`` (default: the pretrained CPU demo's, Lite0-FPN on
   PennFudan train boxes + ECSSD salient images) into ``--output`` (a cached, resumable stage:
   a rerun with the same config reuses it), unless ``--weights`` names a trained one.
   ``KEY VALUE`` overrides follow the options, e.g. ``DATASETS.SALIENT_TRAIN "('ecssd_train',)"``
   to hold ECSSD's ``ecssd_heldout`` images out of training.
2. For every GT box of each ``--datasets`` entry, one mask per method: BoxCaseg (crop at the box
   with ``INPUT.BOXCASEG.TEST_CONTEXT``, salient + transferred heads, paste back; with a context,
   also the same network cropping at the box) and the engine's methods; each with Sec. 3.4's
   post-processing (merge "smaller object better", then drop by proxy box agreement). Table per
   dataset: mIoU*, IoU@50, IoU@75 of all masks; for each ``--drop`` threshold (0.95 of Tab. 8,
   0.6 of the CPU demo) the share kept and the mIoU* of the kept and of the dropped masks; and
   instances per CPU-second (``time.process_time``: every thread's CPU time, network inference or
   engine method plus merge), with the hours one core needs for COCO train2017's 860k instances.
   Each dataset's header says how many of its photos stage 1 trained on (by real path). A last
   table gives every dataset's mIoU* by box size (COCO's small < 32^2 <= medium < 96^2 <= large);
   the default datasets include small-object views (``*_half``, ``*_eighth``: images shrunk on a
   canvas of their size, ``weaksup/data/small_view.py``).
   ``SEED S`` seeds every stage 1 (default 0); run-to-run spread: rerun with other seeds.
3. ``--tab4``: BoxCaseg's mIoU* with the heads of Tab. 4 at inference (same weights).
   ``--tab5``: a second stage 1 with ``DATALOADER.BOX_SALIENT_SAMPLING random``; ``--tab6 A ...``:
   one stage 1 per alpha (``MODEL.BOXCASEG.ALPHA``); each trained as step 1, mIoU* per dataset.
4. Network throughput: ``predict_patches`` on batches of random patches at the test size.

    DETECTRON2_DATASETS=../shared/data python benchmarks/boxcaseg.py [--weights W] [--tab4]
        [--tab5] [--tab6 0.5 1.0] [KEY VALUE ...]
"""

import argparse
import os
import sys
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.utils.env import seed_all_rng  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from weaksup import load_config  # noqa: E402
from weaksup.data.datasets.image_sets import photo_keys  # noqa: E402
from weaksup.engine import resolve_device  # noqa: E402
from weaksup.engine.pipeline import run_training_stage, stage_config, training_stage  # noqa: E402
from weaksup.evaluation import box_mask_quality  # noqa: E402
from weaksup.evaluation.box_mask_quality import COCO_SIZE_RANGES  # noqa: E402
from weaksup.evaluation.ground_truth import segmentation_to_bitmask  # noqa: E402
from weaksup.methods.boxcaseg.data import BoxCasegTestMapper  # noqa: E402
from weaksup.methods.boxcaseg.pipeline import BoxCasegTrainer  # noqa: E402
from weaksup.methods.boxcaseg.proxy_masks import merge_and_drop  # noqa: E402
from weaksup.pseudo import PseudoMaskConfig, pseudo_masks_for_image  # noqa: E402
from weaksup.utils.checkpoint import SafeDetectionCheckpointer  # noqa: E402

COCO_TRAIN_INSTANCES = 860_000
# Box-size buckets by box area, COCO's: small < 32^2 <= medium < 96^2 <= large.
SIZES = tuple(COCO_SIZE_RANGES)
# Tab. 4's rows: the heads that predict (MODEL.BOXCASEG.HEADS; salient + transferred mix by Eq. 3).
TAB4_HEADS = (("weak",), ("salient",), ("transferred",), ("salient", "transferred"))


def train_stage1(cfg, output: str, name: str) -> str:
    """Stage 1 of ``cfg`` in ``output`` (cached and resumable); returns its final weights. Each
    stage 1 starts from ``SEED`` (0 when -1), so the rows of Tab. 5 / 6 differ only in their key
    (unseeded, the step-1 network scored 36.2 to 64.9 mIoU* on pennfudan_val in five runs)."""
    seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATASETS.TEST = ()
    cfg = stage_config(cfg, output)
    start = time.perf_counter()
    run_training_stage(BoxCasegTrainer, cfg, training_stage(cfg, name), "BoxCaseg network")
    print(f"{name}: {time.perf_counter() - start:.0f} s (0 when reused) in {output}")
    return os.path.join(output, "model_final.pth")


def load_model(cfg, weights: str, heads: Sequence[str] = ()):
    cfg = cfg.clone()
    cfg.defrost()
    if heads:
        cfg.MODEL.BOXCASEG.HEADS = list(heads)
    resolve_device(cfg)
    model = BoxCasegTrainer.build_model(cfg)
    SafeDetectionCheckpointer(model).load(weights)
    return model.eval()


def gt_instances(records) -> Tuple[List[np.ndarray], List[int], List[np.ndarray]]:
    """GT masks and classes of every non-crowd instance, and each image's boxes (XYXY_ABS)."""
    gts, classes, boxes = [], [], []
    for r in records:
        anns = [a for a in r["annotations"] if not a.get("iscrowd", 0)]
        gts += [segmentation_to_bitmask(a["segmentation"], r["height"], r["width"]) for a in anns]
        classes += [a["category_id"] for a in anns]
        boxes.append(np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4))
    return gts, classes, boxes


def boxcaseg_masks(cfg, model, records) -> Tuple[List[np.ndarray], float]:
    """Per image, the ``(N, H, W)`` BoxCaseg masks of its GT boxes; CPU seconds."""
    mapper, masks, secs = BoxCasegTestMapper(cfg, False), [], 0.0
    for r in records:
        x = mapper(r)
        start = time.process_time()
        with torch.no_grad():
            masks.append(model([x])[0]["instances"].pred_masks.cpu().numpy().astype(bool))
        secs += time.process_time() - start
    return masks, secs


def engine_masks(cfg, records, boxes, method: str) -> Tuple[List[np.ndarray], float]:
    """Per image, the pseudo-mask engine's ``method`` masks of its GT boxes; CPU seconds."""
    mapper, masks, secs = BoxCasegTestMapper(cfg, False), [], 0.0
    engine_cfg = PseudoMaskConfig(merge_smaller=False)
    for r, b in zip(records, boxes):
        image = mapper(r)["image"].numpy().transpose(1, 2, 0)
        if cfg.INPUT.FORMAT == "RGB":
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
        start = time.process_time()
        pms = pseudo_masks_for_image(image, b, method, list(range(len(b))), engine_cfg)
        secs += time.process_time() - start
        masks.append(np.stack([p.mask for p in pms]))
    return masks, secs


def merged_masks(masks, boxes) -> Tuple[List[np.ndarray], np.ndarray, float]:
    """Every image's masks merged (Sec. 3.4, smaller object wins), in instance order; their
    proxy box agreements; the CPU seconds of the merge."""
    merged, agreements = [], []
    start = time.process_time()
    for m, b in zip(masks, boxes):
        mm, agreement, _ = merge_and_drop(m, b, merge=True, drop_threshold=1.0)
        merged += list(mm)
        agreements += list(agreement)
    return merged, np.array(agreements), time.process_time() - start


def subset_miou(merged, gts, classes, select: np.ndarray) -> float:
    """mIoU* of the instances where ``select`` is True (nan when none)."""
    if not select.any():
        return float("nan")
    pick = np.flatnonzero(select)
    return box_mask_quality(
        [merged[i] for i in pick], [gts[i] for i in pick], [classes[i] for i in pick]
    )["mIoU*"]


def quality_row(masks, secs, gts, classes, boxes, thresholds) -> List[float]:
    """mIoU*, IoU@50, IoU@75 after merge; per threshold kept %, kept and dropped mIoU*;
    instances per CPU-second with the merge timed in; mIoU* per box-size bucket (``SIZES``)."""
    merged, agreements, merge_secs = merged_masks(masks, boxes)
    secs += merge_secs
    q = box_mask_quality(merged, gts, classes)
    row = [q["mIoU*"], q["IoU@50"], q["IoU@75"]]
    for t in thresholds:
        row += [
            100 * (agreements >= t).mean(),
            subset_miou(merged, gts, classes, agreements >= t),
            subset_miou(merged, gts, classes, agreements < t),
        ]
    rate = len(gts) / max(secs, 1e-9)
    bucket = size_buckets(np.concatenate(boxes))
    by_size = [subset_miou(merged, gts, classes, bucket == k) for k in range(len(SIZES))]
    return row + [rate, COCO_TRAIN_INSTANCES / rate / 3600] + by_size


def size_buckets(boxes: np.ndarray) -> np.ndarray:
    """Index into ``SIZES`` of each ``XYXY_ABS`` box by its area (``COCO_SIZE_RANGES``)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.searchsorted([lo for lo, _ in COCO_SIZE_RANGES.values()][1:], area, side="right")


def print_table(header: List[str], rows: List[List]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [c if isinstance(c, str) else f"{c:.1f}" for c in row]
        print("| " + " | ".join(cells) + " |")


def trained_photos(cfg) -> set:
    keys = set()
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.SALIENT_TRAIN):
        keys |= photo_keys(DatasetCatalog.get(name))
    return keys


def mask_quality_tables(cfg, model, datasets, methods, thresholds) -> Dict[str, Dict]:
    """Step 2 (module docstring); returns per dataset its records, GT and BoxCaseg's masks."""
    seen = trained_photos(cfg)
    data = {}
    for name in datasets:
        records = [r for r in DatasetCatalog.get(name) if r.get("annotations")]
        gts, classes, boxes = gt_instances(records)
        shared = len(photo_keys(records) & seen)
        print(
            f"\n{name}: {len(records)} images, {len(gts)} instances; "
            f"{shared} of its photos in stage 1's training data"
        )
        per_method = {"boxcaseg": boxcaseg_masks(cfg, model, records)}
        if tuple(model.test_context) != (1.0, 0.0):  # the same network, crops at the boxes
            context, model.test_context = model.test_context, (1.0, 0.0)
            per_method["boxcaseg, crop = box"] = boxcaseg_masks(cfg, model, records)
            model.test_context = context
        for m in methods:
            per_method[m] = engine_masks(cfg, records, boxes, m)
        header = ["method", "mIoU*", "IoU@50", "IoU@75"]
        for t in thresholds:
            header += [f"kept % (>= {t})", "kept mIoU*", "dropped mIoU*"]
        header += ["inst / CPU-s", "COCO h / core", *(f"{k} mIoU*" for k in SIZES)]
        rows = [
            [m, *quality_row(*per_method[m], gts, classes, boxes, thresholds)] for m in per_method
        ]
        print_table(header, rows)
        counts = np.bincount(size_buckets(np.concatenate(boxes)), minlength=len(SIZES))
        data[name] = {
            "records": records,
            "gt": (gts, classes, boxes),
            "boxcaseg": rows[0][1],
            "by_size": {r[0]: [r[1], *r[-len(SIZES) :], r[2]] for r in rows},
            "counts": counts.tolist(),
        }
    return data


def print_size_table(data: Dict[str, Dict]) -> None:
    """One table of every dataset and method: mIoU* of all instances and per box-size bucket,
    IoU@50; instance counts per bucket in the dataset column."""
    rows = []
    for name, d in data.items():
        label = f"{name} ({' / '.join(str(c) for c in d['counts'])})"
        rows += [[label, method, *values] for method, values in d["by_size"].items()]
    print("\nmIoU* by box size (instances small / medium / large after the dataset's name)")
    print_table(["dataset", "method", "all", *SIZES, "IoU@50"], rows)


def miou_star(cfg, model, data) -> List[float]:
    """BoxCaseg's mIoU* (after merge) on each dataset of ``data``."""
    out = []
    for d in data.values():
        gts, classes, boxes = d["gt"]
        masks, secs = boxcaseg_masks(cfg, model, d["records"])
        out.append(quality_row(masks, secs, gts, classes, boxes, [])[0])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--config", default="configs/BoxCaseg/demo_pennfudan_ecssd_Lite0_FPN.yaml")
    parser.add_argument("--weights", help="a trained stage-1 model of --config (skips training)")
    parser.add_argument("--output", default="output/benchmark_boxcaseg")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=[
            "pennfudan_train",
            "pennfudan_val",
            "nuts_coco_train",
            "nuts_coco_val",
            "grabcut13",
            "ecssd_heldout_instances",
            "pennfudan_val_half",
            "pennfudan_val_eighth",
            "nuts_coco_train_eighth",
            "nuts_coco_val_eighth",
            "ecssd_heldout_eighth",
        ],
    )
    parser.add_argument("--methods", nargs="*", default=["consensus", "grabcut", "ellipse", "box"])
    parser.add_argument(
        "--drop", type=float, nargs="+", default=[0.95, 0.6], help="proxy box agreement thresholds"
    )
    parser.add_argument("--tab4", action="store_true", help="Tab. 4: heads used at inference")
    parser.add_argument("--tab5", action="store_true", help="Tab. 5: also train random sampling")
    parser.add_argument("--tab6", type=float, nargs="*", default=[], help="Tab. 6: alphas to train")
    parser.add_argument("--paper-size", action="store_true", help="also time W48 at 320x320")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    setup_logger(name="weaksup")
    cfg = load_config(args.config, args.opts)
    weights = args.weights or train_stage1(cfg, os.path.join(args.output, "stage1"), "stage 1")
    model = load_model(cfg, weights)
    print(f"\nstage 1: {args.config} {' '.join(args.opts)}; weights {weights}")
    data = mask_quality_tables(cfg, model, args.datasets, args.methods, args.drop)
    print_size_table(data)

    if args.tab4:
        print("\nTab. 4: BoxCaseg mIoU* by the heads used at inference (same weights)")
        rows = [
            ["+".join(h), *miou_star(cfg, load_model(cfg, weights, h), data)] for h in TAB4_HEADS
        ]
        print_table(["heads", *data], rows)
    for title, key, values in (
        (
            "Tab. 5: box : salient sampling",
            "DATALOADER.BOX_SALIENT_SAMPLING",
            ["random"] * args.tab5,
        ),
        ("Tab. 6: alpha of Eq. 3", "MODEL.BOXCASEG.ALPHA", args.tab6),
    ):
        if not values:
            continue
        print(f"\n{title}: BoxCaseg mIoU*, one stage 1 per row")
        *parents, leaf = key.split(".")
        base = cfg
        for p in parents:
            base = base[p]
        rows = [[f"{base[leaf]} (step 1)", *(d["boxcaseg"] for d in data.values())]]
        for v in values:
            variant = load_config(args.config, args.opts + [key, str(v)])
            w = train_stage1(
                variant, os.path.join(args.output, f"{leaf.lower()}_{v}"), f"{key} {v}"
            )
            rows.append([str(v), *miou_star(variant, load_model(variant, w), data)])
        print_table([key, *data], rows)

    print("\n| network | patch | device | patches/s (forward, batch 16) |\n|---|---|---|---|")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        fps = throughput(model, cfg.INPUT.BOXCASEG.TEST_SIZE, device)
        print(f"| {args.config} | {cfg.INPUT.BOXCASEG.TEST_SIZE} | {device} | {fps:.1f} |")
    if args.paper_size:
        big = load_config("configs/BoxCaseg/Base-BoxCaseg.yaml", ["MODEL.HRNET.NORM", "BN"])
        big.defrost()
        big.MODEL.DEVICE = "cpu"
        w48 = BoxCasegTrainer.build_model(big)
        for device in devices:
            fps = throughput(w48, 320, device, iters=2 if device == "cpu" else 10)
            print(f"| HRNetV2-W48 (paper) | 320 | {device} | {fps:.1f} |")


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


if __name__ == "__main__":
    main()
