"""Box geometry for pseudo masks: rasterised boxes and ellipses, tight boxes, box agreement.

Boxes are ``(x0, y0, x1, y1)`` in absolute pixel-edge coordinates (Detectron2's ``XYXY_ABS``): pixel
``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``. A mask is a bool ``(H, W)`` array. Plain numpy.
"""

from typing import Sequence, Tuple

import numpy as np

__all__ = ["box_mask", "ellipse_mask", "tight_box", "box_iou", "box_agreement"]


def _pixel_range(lo: float, hi: float, size: int) -> Tuple[int, int]:
    """Pixels whose centres lie inside ``[lo, hi]``, clipped to ``[0, size)``."""
    return max(int(np.ceil(lo - 0.5)), 0), min(int(np.floor(hi - 0.5)) + 1, size)


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The filled box: pixels whose centres lie inside it ("rectangles", BoxSup Tab. 2)."""
    x0, x1 = _pixel_range(box[0], box[2], width)
    y0, y1 = _pixel_range(box[1], box[3], height)
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def ellipse_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The ellipse inscribed in the box: pixels whose centres lie inside it (Hybrid Sec. 2.2)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = max((box[2] - box[0]) / 2, 1e-6), max((box[3] - box[1]) / 2, 1e-6)
    x0, x1 = _pixel_range(box[0], box[2], width)
    y0, y1 = _pixel_range(box[1], box[3], height)
    ys, xs = np.ogrid[y0:y1, x0:x1]
    inside = ((xs + 0.5 - cx) / ax) ** 2 + ((ys + 0.5 - cy) / ay) ** 2 <= 1.0
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = inside
    return mask


def tight_box(mask: np.ndarray) -> np.ndarray:
    """The tight box ``(x0, y0, x1, y1)`` of a mask (pixel edges); all zeros for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros(4, dtype=np.float64)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes; 0 when the union is empty."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box_agreement(mask: np.ndarray, box: Sequence[float]) -> float:
    """IoU of the mask's tight box with the box it was made for; 0 for an empty mask.

    Hybrid Sec. 1 calls a mask valid when this is >= 0.5; BoxCaseg Sec. 3.4 drops proxy masks
    whose "proxy box agreement" (the same quantity) is below a threshold (0.95, Tab. 8).
    """
    if not mask.any():
        return 0.0
    return box_iou(tight_box(mask), box)
