#!/usr/bin/env python
"""
Pseudo-mask benchmark: every method of :data:`weaksup.pseudo.METHODS` on the same instances of the
real data in ``../shared/data`` (PennFudan, nuts_coco, grabcut13, ECSSD), one box per instance.

Per method x dataset: mIoU (mean instance IoU), mIoU* / IoU@50 / IoU@75 (BoxCaseg Sec. 4), the
same metric code as ``tools/eval_pseudo_masks.py`` (:mod:`weaksup.evaluation.box_mask_quality`:
``paired_mask_iou`` + ``summarize_mask_quality``); instances per CPU-second of one core (OpenCV
limited to one thread; only :func:`pseudo_masks_for_image` is timed, image decoding is not; CPU
time of the worker process, so other load on a shared machine inflates it far less than wall
time would); peak MB: the growth of the resident set (``VmHWM`` - ``VmRSS`` at start) of the forked
worker that runs the method over the dataset; and the share of instances whose mask is a fallback.
Also mIoU by COCO size bucket of the GT mask area (small < 32^2 <= medium < 96^2 <= large), and
hours per core to pseudo-label COCO train2017 (860k instances) at the method's instances/s pooled
over all datasets of the run. ``--jobs N`` runs N (method, dataset) workers at a time.

``--workers 1,2`` measures worker scaling instead: each method over each dataset, its images dealt
round-robin to N forked single-threaded processes, wall time from the first start to the last
finish; speed-up = time(1 worker) / time(N workers), target >= 0.8 N up to the core count (run it on
a quiet machine: other load eats the cores the workers need).

Boxes and seeds are those of ``tools/make_pseudo_masks.py`` for the same data: PennFudan and
nuts_coco as their loaders give them, seeded by annotation id and job seed 0 (so the tool's json,
evaluated by ``tools/eval_pseudo_masks.py``, reproduces these numbers). ECSSD has no boxes: the
tight box of its GT mask is its one box. grabcut13's ``x1 y1 x2 y2`` boxes are inclusive pixel
indices (``XYXY_ABS`` box ``x1, y1, x2 + 1, y2 + 1``). Those two are seeded by the running index.

    python benchmarks/pseudo_masks.py [--max-instances 100] [--methods box grabcut ...] [--jobs 2]
    python benchmarks/pseudo_masks.py --workers 1,2 --methods grabcut --max-instances 100
    # an ablation: any PseudoMaskConfig field, as in tools/make_pseudo_masks.py
    python benchmarks/pseudo_masks.py --methods consensus --tightness-repair false
"""

import argparse
import multiprocessing as mp
import os
import queue as queue_module
import sys
import time
from collections import OrderedDict

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from weaksup.evaluation.box_mask_quality import (  # noqa
    COCO_SIZE_RANGES,
    paired_mask_iou,
    summarize_mask_quality,
)
from weaksup.pseudo import METHODS, pseudo_masks_for_image, tight_box  # noqa
from weaksup.pseudo.config_args import (  # noqa
    add_config_arguments,
    config_from_args,
    config_overrides,
)
from weaksup.pseudo.job import instance_seed  # noqa

DATA = os.environ.get(
    "WEAKSUP_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)
COCO_TRAIN2017_INSTANCES = 860_000


def _decode(segm, h, w):
    import pycocotools.mask as mask_util

    if isinstance(segm, list):
        segm = mask_util.merge(mask_util.frPyObjects(segm, h, w))
    elif isinstance(segm["counts"], list):
        segm = mask_util.frPyObjects(segm, h, w)
    return mask_util.decode(segm).astype(bool)


def _from_dicts(records):
    """Detectron2 dicts -> [(file, boxes (N, 4), GT masks (N, H, W), classes (N,), seeds (N,))],
    seeded by annotation id as ``tools/make_pseudo_masks.py`` does (job seed 0)."""
    out = []
    for r in records:
        anns = [a for a in r["annotations"] if not a.get("iscrowd", 0)]
        if not anns:
            continue
        h, w = r["height"], r["width"]
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float64)  # XYXY_ABS from the loaders
        gts = np.stack([_decode(a["segmentation"], h, w) for a in anns])
        classes = np.array([a["category_id"] for a in anns])
        seeds = [instance_seed(a["id"], 0) for a in anns]
        out.append((r["file_name"], boxes, gts, classes, seeds))
    return out


def load_pennfudan_images():
    from weaksup.data.datasets.pennfudan import load_pennfudan

    return _from_dicts(load_pennfudan(os.path.join(DATA, "PennFudanPed"), "all"))


def load_nuts_images():
    from weaksup.data.datasets.coco import load_coco_json

    root = os.path.join(DATA, "nuts_coco", "data")
    return _from_dicts(
        load_coco_json(os.path.join(root, "trainval.json"), os.path.join(root, "images"))
    )


def load_grabcut13_images():
    root = os.path.join(DATA, "grabcut13")
    out = []
    for name in sorted(os.listdir(os.path.join(root, "imgs"))):
        stem = os.path.splitext(name)[0]
        with open(os.path.join(root, "bboxes", stem + ".txt")) as f:
            x1, y1, x2, y2 = (float(v) for v in f.read().split())
        gt = cv2.imread(os.path.join(root, "seg_GT", stem + ".bmp"), cv2.IMREAD_GRAYSCALE) > 127
        boxes = np.array([[x1, y1, x2 + 1, y2 + 1]])
        out.append(
            (os.path.join(root, "imgs", name), boxes, gt[None], np.zeros(1, int), [len(out)])
        )
    return out


def load_ecssd_images():
    from weaksup.data.datasets.salient import load_salient_images

    root = os.path.join(DATA, "ECSSD")
    out = []
    for r in load_salient_images(
        os.path.join(root, "images"), os.path.join(root, "ground_truth_mask")
    ):
        gt = cv2.imread(r["salient_mask_file"], cv2.IMREAD_GRAYSCALE) > 127
        if gt.any():
            out.append(
                (r["file_name"], tight_box(gt)[None], gt[None], np.zeros(1, int), [len(out)])
            )
    return out


DATASETS = OrderedDict(
    [
        ("PennFudan", load_pennfudan_images),
        ("nuts_coco", load_nuts_images),
        ("grabcut13", load_grabcut13_images),
        ("ECSSD", load_ecssd_images),
    ]
)


def subsample(images, max_instances):
    """Whole images, evenly spread over the dataset, until ``max_instances`` instances."""
    if max_instances is None or sum(len(x[1]) for x in images) <= max_instances:
        return images
    n_img = len(images)
    order = np.argsort((np.arange(n_img) * 0.6180339887) % 1.0, kind="stable")  # spread evenly
    out, n = [], 0
    for i in sorted(order[: max(1, int(n_img * max_instances / sum(len(x[1]) for x in images)))]):
        out.append(images[i])
        n += len(images[i][1])
    return out


def _vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _run_worker(method, images, cfg, queue):
    cv2.setNumThreads(1)
    base = _vm("VmRSS:")
    ious, seconds, n_fallback = [], 0.0, 0
    for file_name, boxes, gts, _, seeds in images:
        image = cv2.imread(file_name, cv2.IMREAD_COLOR)
        t = time.process_time()
        results = pseudo_masks_for_image(image, boxes, method, seeds, cfg)
        seconds += time.process_time() - t
        ious.append(paired_mask_iou([r.mask for r in results], list(gts)))
        n_fallback += sum(r.fallback is not None for r in results)
    queue.put((np.concatenate(ious), seconds, _vm("VmHWM:") - base, n_fallback))


def start_method(method, images, cfg):
    """Start a forked worker running ``method`` over ``images``; :func:`finish_method` collects
    (IoUs, CPU seconds, peak MB, number of fallbacks)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_worker, args=(method, images, cfg, queue))
    proc.start()
    return proc, queue


def finish_method(handle):
    proc, queue = handle
    result = queue.get()
    proc.join()
    return result


def run_method(method, images, cfg):
    """(IoUs, CPU seconds, peak MB, number of fallbacks) of ``method`` on ``images``."""
    return finish_method(start_method(method, images, cfg))


def quality(ious, classes):
    """mIoU, mIoU*, IoU@50, IoU@75 in percent, as ``tools/eval_pseudo_masks.py`` reports them."""
    q = summarize_mask_quality(ious, classes)
    return 100 * ious.mean(), q["mIoU*"], q["IoU@50"], q["IoU@75"]


def _scaling_worker(method, images, cfg):
    cv2.setNumThreads(1)
    for file_name, boxes, _, _, seeds in images:
        pseudo_masks_for_image(cv2.imread(file_name, cv2.IMREAD_COLOR), boxes, method, seeds, cfg)


def scaling_seconds(method, images, cfg, workers):
    """Wall seconds for ``workers`` forked processes to run ``method`` over ``images`` (dealt
    round-robin, as the tool's workers share images), decoding included."""
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_scaling_worker, args=(method, images[k::workers], cfg))
        for k in range(workers)
    ]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"scaling worker for {method!r} exited with {p.exitcode}")
    return time.perf_counter() - t


def main_scaling(args, cfg):
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs", file=sys.stderr)
    print("| method | dataset | workers | inst/s (wall) | speed-up | speed-up / workers |")
    print("|---|---|---|---|---|---|")
    for ds in args.datasets:
        images = subsample(DATASETS[ds](), args.max_instances)
        n = sum(len(x[1]) for x in images)
        for method in args.methods:
            base = None
            for workers in args.workers:
                sec = scaling_seconds(method, images, cfg, workers)
                base = sec if base is None else base
                print(
                    f"| {method} | {ds} | {workers} | {n / sec:.2f} | {base / sec:.2f} "
                    f"| {base / sec / workers:.2f} |",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-instances", type=int, default=None, help="per dataset")
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--jobs", type=int, default=1, help="(method, dataset) workers at a time")
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="worker-scaling mode: comma-separated worker counts, e.g. 1,2",
    )
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    overrides = config_overrides(cfg)
    if overrides:
        print(f"PseudoMaskConfig overrides: {overrides}")
    if args.workers:
        return main_scaling(args, cfg)

    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    data = OrderedDict()
    for ds in args.datasets:
        images = subsample(DATASETS[ds](), args.max_instances)
        classes = np.concatenate([x[3] for x in images])
        areas = np.concatenate([x[2].reshape(len(x[2]), -1).sum(1) for x in images])
        data[ds] = (images, classes, areas)
        print(f"{ds}: {len(images)} images, {len(classes)} instances", file=sys.stderr)
    cells = [(ds, m) for ds in args.datasets for m in args.methods]
    results, pending, running = {}, list(cells), {}
    while pending or running:  # keep up to --jobs workers busy
        while pending and len(running) < args.jobs:
            cell = pending.pop(0)
            running[cell] = start_method(cell[1], data[cell[0]][0], cfg)
        for cell, handle in list(running.items()):
            try:
                results[cell] = handle[1].get(timeout=0.2)
            except queue_module.Empty:
                continue
            handle[0].join()
            del running[cell]
            miou, rate = 100 * results[cell][0].mean(), len(results[cell][0]) / results[cell][1]
            print(f"  {cell[0]} {cell[1]}: mIoU {miou:.1f}, {rate:.2f} inst/s", file=sys.stderr)

    rows, buckets, pooled = [], [], {m: [0, 0.0] for m in args.methods}
    for ds, method in cells:
        _, classes, areas = data[ds]
        ious, seconds, peak, n_fallback = results[(ds, method)]
        rate = len(ious) / seconds
        pooled[method][0] += len(ious)
        pooled[method][1] += seconds
        rows.append(
            (method, ds) + quality(ious, classes) + (rate, peak, 100 * n_fallback / len(ious))
        )
        per_bucket = []
        for lo, hi in COCO_SIZE_RANGES.values():
            sel = (areas >= lo) & (areas < hi)
            per_bucket.append((100 * ious[sel].mean(), int(sel.sum())) if sel.any() else None)
        buckets.append((method, ds, per_bucket))

    print(
        "| method | dataset | mIoU | mIoU* | IoU@50 | IoU@75 | inst/s (CPU) | peak MB | fallback % |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m, ds, miou, mstar, i50, i75, rate, peak, fb in rows:
        print(
            f"| {m} | {ds} | {miou:.1f} | {mstar:.1f} | {i50:.1f} | {i75:.1f} | {rate:.2f} "
            f"| {peak:.0f} | {fb:.1f} |"
        )
    print()
    print("| method | dataset | mIoU small (n) | mIoU medium (n) | mIoU large (n) |")
    print("|---|---|---|---|---|")
    for m, ds, per_bucket in buckets:
        cells = ["-" if b is None else f"{b[0]:.1f} ({b[1]})" for b in per_bucket]
        print(f"| {m} | {ds} | " + " | ".join(cells) + " |")
    print()
    print("| method | pooled inst/s (1 core) | COCO train2017 hours per core |")
    print("|---|---|---|")
    for m, (n, s) in pooled.items():
        print(f"| {m} | {n / s:.2f} | {COCO_TRAIN2017_INSTANCES * s / n / 3600:.1f} |")
    print(f"load average at end: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
