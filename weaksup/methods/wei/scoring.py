"""Scores of Wei et al.'s intermediate results against ground truth that the method never sees
(plain numpy): HCP's image-level multi-label AP (Sec. 3.1) and the localization maps (Eq. 2)
and rough masks (Sec. 3.3.2) of the training images as label maps (mIoU).

The ground truth is read only here, to report how good each stage is; no training stage reads it.
"""

from typing import Callable, Dict, Mapping, Sequence

import numpy as np

from weaksup.pseudo.label_metrics import (
    background_only_confusion,
    iou_from_confusion,
    label_confusion,
    miou_from_confusion,
)

__all__ = [
    "average_precision",
    "format_hcp_table",
    "format_label_quality_table",
    "localization_label_map",
    "multilabel_average_precision",
    "score_label_maps",
]


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated AP in percent of ranking ``scores`` (``(N,)``) against the boolean
    ``positives``: the mean over positives of the precision at their rank (ties keep the input
    order); NaN without a positive."""
    positives = np.asarray(positives, dtype=bool)
    if not positives.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = positives[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(100.0 * precision[hits].mean())


def multilabel_average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class AP (``(C,)``, percent, NaN for a class with no positive image) of image-level
    ``scores`` ``(N, C)`` against the ``(N, C)`` boolean label matrix: HCP's evaluation (VOC
    classification mAP is their mean)."""
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    return np.asarray([average_precision(s, y) for s, y in zip(scores.T, labels.T)])


def localization_label_map(maps: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """The argmax of Eq. 2's maps (``(L + 1, H, W)``, background first) as a label map (uint8, 0
    background, class ``k`` as ``k + 1``; ties: background, then the first label)."""
    if len(maps) != len(labels) + 1:
        raise ValueError(f"{len(maps)} maps for {len(labels)} labels (background first expected)")
    lut = np.asarray([0] + [k + 1 for k in labels], dtype=np.uint8)
    return lut[np.asarray(maps).argmax(axis=0)]


def score_label_maps(
    records: Sequence[Mapping],
    ground_truth: Callable[[Mapping], np.ndarray],
    sources: Mapping[str, Callable[[Mapping], np.ndarray]],
    num_classes: int,
    ignore_label: int = 255,
) -> Dict[str, Dict]:
    """Each source's label maps of ``records`` against ``ground_truth(record)``: per source
    ``{"mIoU", "IoU": [per class, NaN if absent], "images"}``, and ``"background-only"``, the
    same ground truth predicted all background (the floor; the only entry without sources)."""
    confs = {name: np.zeros((num_classes, num_classes), np.int64) for name in sources}
    truth = np.zeros((num_classes, num_classes), np.int64)
    for r in records:
        gt = ground_truth(r)
        truth += label_confusion(gt, gt, num_classes, ignore_label)
        for name, label_map in sources.items():
            confs[name] += label_confusion(label_map(r), gt, num_classes, ignore_label)
    confs["background-only"] = background_only_confusion(truth)
    return {
        name: {
            "mIoU": miou_from_confusion(c),
            "IoU": iou_from_confusion(c).tolist(),
            "images": len(records),
        }
        for name, c in confs.items()
    }


def _cell(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.1f}"


def format_hcp_table(ap: Sequence[float], classes: Sequence[str], num_images: int) -> str:
    """Markdown table of HCP's per-class AP and the mAP over the classes with a positive image."""
    ap = np.asarray(ap, dtype=np.float64)
    rows = [
        f"HCP image-level classification on {num_images} validation images (AP %)",
        "| class | AP |",
        "|---|---|",
    ]
    rows += [f"| {c} | {_cell(a)} |" for c, a in zip(classes, ap) if np.isfinite(a)]
    mean = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    rows.append(f"| mAP | {_cell(mean)} |")
    return "\n".join(rows)


def format_label_quality_table(quality: Mapping[str, Mapping], stuff: Sequence[str]) -> str:
    """Markdown table of :func:`score_label_maps` (IoU per class present, mIoU; one column per
    source), the classes absent from the ground truth and every source left out."""
    names = list(quality)
    present = [
        i for i in range(len(stuff)) if any(np.isfinite(quality[n]["IoU"][i]) for n in names)
    ]
    images = next(iter(quality.values()))["images"] if quality else 0
    rows = [
        f"Training labels against ground truth ({images} training images, IoU %)",
        "| class | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for i in present:
        cells = " | ".join(_cell(quality[n]["IoU"][i]) for n in names)
        rows.append(f"| {stuff[i]} | {cells} |")
    rows.append("| mIoU | " + " | ".join(_cell(quality[n]["mIoU"]) for n in names) + " |")
    return "\n".join(rows)
