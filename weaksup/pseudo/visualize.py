"""Overlays of pseudo masks for a visual check (OpenCV drawing, numpy masks)."""

from typing import Optional, Sequence

import cv2
import numpy as np

__all__ = ["draw_pseudo_masks"]

_VALID, _INVALID = (60, 200, 60), (60, 60, 230)  # BGR fill of usable / flagged-unusable masks
_BOX, _GT = (0, 220, 255), (255, 255, 255)


def draw_pseudo_masks(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]],
    valid: Sequence[bool],
    gt_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """The BGR ``image`` with each pseudo mask filled (green: valid, red: flagged invalid), its
    box (yellow) and, where given, the ground-truth mask's outline (white)."""
    out = image.astype(np.float32)
    for mask, ok in zip(masks, valid):
        out[mask] = (1 - alpha) * out[mask] + alpha * np.array(_VALID if ok else _INVALID)
    out = out.round().astype(np.uint8)
    for box in boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), _BOX, 1)
    for gt in gt_masks or []:
        if gt is not None:
            contours, _ = cv2.findContours(
                gt.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(out, contours, -1, _GT, 1)
    return out
