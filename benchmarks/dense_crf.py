#!/usr/bin/env python
"""
Dense-CRF benchmark: weaksup's windowed mean-field CRF (:func:`weaksup.modeling.dense_crf.dense_crf`)
against the fully connected CRF of Krähenbühl & Koltun's own code (``pydensecrf``, permutohedral
lattice: what DeepLab-CRF and BoxSup's FCN + CRF baseline ran), on real PennFudan val images.

Scores: a stand-in for an output-stride-8 network, made from the GT label map (person /
background): the one-hot map area-averaged to 1/8 resolution, Gaussian noise (std 0.15, seed 0)
added, bilinearly upsampled, times 4 as logits. Rows:

* ``unary``: the scores' argmax, no CRF;
* ``DeepLab-CRF (pydensecrf)``: DeepLab-CRF's VOC values (w 5, s_xy 50, s_rgb 10, w_pos 3, s_pos 3,
  10 iterations, symmetric kernel normalisation as in Krähenbühl's code): the reference;
* ``full kernel, weaksup values (pydensecrf)``: the model weaksup's BoxSup configs set
  (``MODEL.BOXSUP.CRF``: w 4, s_xy 10, s_rgb 5, 3 / 3, 5 iterations), unnormalised as weaksup's, on
  every pixel pair;
* ``weaksup, config``: weaksup's CRF with those values and its 11 x 11 window, 2 px apart;
* ``weaksup, DeepLab values``: the reference's values in weaksup's window (the kernel cut at
  10 px where the reference reaches ~150 px).

Columns: mIoU (%) of the labels against GT, label agreement (%) with the reference and with the
full-kernel model of the same values, on all pixels and on the pixels the reference changed, and
CPU seconds per image (one thread). A panel of the first image is written to ``--output-dir``.

    python benchmarks/dense_crf.py [--num-images 10] [--max-side 320] [--output-dir output/bench_crf]
"""

import argparse
import os
import sys
import time

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from weaksup.data.datasets.pennfudan import load_pennfudan  # noqa: E402
from weaksup.modeling.dense_crf import dense_crf  # noqa: E402

DEEPLAB = dict(bilateral=(5.0, 50.0, 10.0), positional=(3.0, 3.0), iterations=10)
WEAKSUP_CFG = dict(bilateral=(4.0, 10.0, 5.0), positional=(3.0, 3.0), iterations=5)


def network_scores(gt: np.ndarray, rng: np.random.RandomState, stride: int = 8) -> np.ndarray:
    """(2, H, W) log-probabilities of a stand-in stride-``stride`` network (module docstring)."""
    h, w = gt.shape
    onehot = np.stack([gt == c for c in range(2)]).astype(np.float32)
    size = (max(w // stride, 1), max(h // stride, 1))
    small = np.stack([cv2.resize(o, size, interpolation=cv2.INTER_AREA) for o in onehot])
    small += rng.normal(0, 0.15, small.shape).astype(np.float32)
    logits = 4 * np.stack([cv2.resize(o, (w, h), interpolation=cv2.INTER_LINEAR) for o in small])
    return (logits - np.log(np.exp(logits).sum(0))).astype(np.float32)


def pydensecrf_labels(log_probs, image, bilateral, positional, iterations, normalize):
    import pydensecrf.densecrf as dcrf

    c, h, w = log_probs.shape
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(-log_probs.reshape(c, -1)))
    norm = dcrf.NORMALIZE_SYMMETRIC if normalize else dcrf.NO_NORMALIZATION
    crf.addPairwiseGaussian(
        sxy=positional[1], compat=positional[0], kernel=dcrf.DIAG_KERNEL, normalization=norm
    )
    crf.addPairwiseBilateral(
        sxy=bilateral[1],
        srgb=bilateral[2],
        rgbim=np.ascontiguousarray(image),
        compat=bilateral[0],
        kernel=dcrf.DIAG_KERNEL,
        normalization=norm,
    )
    return np.array(crf.inference(iterations)).reshape(c, h, w).argmax(0)


def weaksup_labels(log_probs, image, bilateral, positional, iterations):
    q = dense_crf(
        torch.from_numpy(log_probs),
        torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32)),
        iterations=iterations,
        bilateral=bilateral,
        positional=positional,
        radius=5,
        dilation=2,
    )
    return q.argmax(0).numpy()


def miou(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(
        np.mean([((pred == c) & (gt == c)).sum() / ((pred == c) | (gt == c)).sum() for c in (0, 1)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "PennFudanPed"))
    parser.add_argument("--num-images", type=int, default=10)
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--output-dir", default=os.path.join("output", "bench_dense_crf"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.RandomState(0)
    variants = {
        "unary": None,
        "DeepLab-CRF (pydensecrf)": lambda lp, im: pydensecrf_labels(
            lp, im, normalize=True, **DEEPLAB
        ),
        "full kernel, weaksup values (pydensecrf)": lambda lp, im: pydensecrf_labels(
            lp, im, normalize=False, **WEAKSUP_CFG
        ),
        "weaksup, config": lambda lp, im: weaksup_labels(lp, im, **WEAKSUP_CFG),
        "weaksup, DeepLab values": lambda lp, im: weaksup_labels(lp, im, **DEEPLAB),
    }
    stats = {
        k: dict(miou=[], agree_ref=[], agree_full=[], changed=[], seconds=[]) for k in variants
    }
    panel = None
    for record in load_pennfudan(args.data, "val")[: args.num_images]:
        image = cv2.imread(record["file_name"])[:, :, ::-1]
        scale = args.max_side / max(image.shape[:2])
        image = np.ascontiguousarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        gt = np.zeros((record["height"], record["width"]), np.uint8)
        for ann in record["annotations"]:
            gt[mask_util.decode(ann["segmentation"]).astype(bool)] = 1
        gt = cv2.resize(gt, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        log_probs = network_scores(gt, rng)
        labels = {}
        for name, run in variants.items():
            start = time.process_time()
            labels[name] = log_probs.argmax(0) if run is None else run(log_probs, image)
            stats[name]["seconds"].append(time.process_time() - start)
        ref = labels["DeepLab-CRF (pydensecrf)"]
        changed = ref != labels["unary"]
        for name, pred in labels.items():
            s = stats[name]
            s["miou"].append(miou(pred, gt))
            s["agree_ref"].append((pred == ref).mean())
            s["agree_full"].append(
                (pred == labels["full kernel, weaksup values (pydensecrf)"]).mean()
            )
            s["changed"].append((pred[changed] == ref[changed]).mean() if changed.any() else np.nan)
        if panel is None:
            colour = lambda m: cv2.cvtColor(
                (m * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB
            )  # noqa: E731
            panel = np.concatenate(
                [image, colour(gt)] + [colour(labels[n]) for n in variants], axis=1
            )
    rows = [
        [
            name,
            100 * np.mean(s["miou"]),
            100 * np.mean(s["agree_ref"]),
            100 * np.nanmean(s["changed"]),
            100 * np.mean(s["agree_full"]),
            np.mean(s["seconds"]),
        ]
        for name, s in stats.items()
    ]
    headers = [
        "labels",
        "mIoU",
        "agree ref",
        "agree ref (changed px)",
        "agree full kernel",
        "CPU s / image",
    ]
    print(f"{args.num_images} PennFudan val images, longer side {args.max_side} px")
    print(tabulate(rows, headers=headers, floatfmt=".1f", tablefmt="pipe"))
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "dense_crf_panel.jpg")
    cv2.imwrite(path, panel[:, :, ::-1])
    print(f"panel (image, GT, {', '.join(variants)}): {path}")


if __name__ == "__main__":
    main()
