"""Label maps scored against ground truth: confusion matrix and IoU, as Detectron2's
``SemSegEvaluator`` computes them (plain numpy; pseudo labels of any method, training or not)."""

import numpy as np

__all__ = [
    "background_only_confusion",
    "iou_from_confusion",
    "label_confusion",
    "miou_from_confusion",
]


def label_confusion(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_label: int = 255
) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 confusion matrix, rows ground truth, columns
    prediction; ground-truth pixels equal to ``ignore_label`` are left out."""
    if pred.shape != gt.shape:
        raise ValueError(f"label maps differ in size: {pred.shape} vs {gt.shape}")
    keep = gt != ignore_label
    g, p = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    if (g >= num_classes).any() or (p >= num_classes).any():
        raise ValueError(f"label values >= {num_classes} (other than {ignore_label})")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU in percent; NaN for a class in neither the ground truth nor the
    prediction (Detectron2's convention: such a class is left out of the mean)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    out = np.full(len(tp), np.nan)
    np.divide(100.0 * tp, union, out=out, where=union > 0)
    return out


def miou_from_confusion(conf: np.ndarray) -> float:
    """Mean IoU in percent over the classes present in the ground truth or the prediction, as
    Detectron2's ``SemSegEvaluator`` computes it."""
    iou = iou_from_confusion(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def background_only_confusion(conf: np.ndarray) -> np.ndarray:
    """The confusion matrix of predicting class 0 (background) at every pixel of the same
    ground truth as ``conf``: its mIoU is the floor a segmentation must clear."""
    out = np.zeros_like(conf)
    out[:, 0] = conf.sum(axis=1)
    return out
