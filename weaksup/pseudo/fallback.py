"""Fallback masks for failed, empty or invalid pseudo masks (Hybrid Sec. 2.2: "for these
segmentation results with poor quality, we replace them with ellipses")."""

from typing import Optional, Sequence, Tuple

import numpy as np

from .geometry import box_agreement, box_mask, ellipse_mask

__all__ = ["FALLBACKS", "fallback_mask", "with_fallback"]

FALLBACKS = {"ellipse": ellipse_mask, "box": box_mask}


def fallback_mask(box: Sequence[float], height: int, width: int, kind: str) -> np.ndarray:
    """The fallback mask ``kind`` ("ellipse": inscribed ellipse, "box": filled box) for ``box``."""
    if kind not in FALLBACKS:
        raise ValueError(f"unknown fallback {kind!r}; known: {sorted(FALLBACKS)}")
    return FALLBACKS[kind](box, height, width)


def with_fallback(
    mask: Optional[np.ndarray],
    box: Sequence[float],
    kind: str,
    shape: Tuple[int, int],
    valid_threshold: Optional[float] = None,
) -> Tuple[np.ndarray, Optional[str]]:
    """``(mask, None)`` when ``mask`` is usable, else ``(fallback mask, "<kind>:<reason>")``.

    Reasons: ``failed`` (``mask`` is None: the method raised or could not run), ``empty`` (no
    pixel), ``invalid`` (only when ``valid_threshold`` is given: box agreement below it, the
    Hybrid Sec. 1 validity rule). The reason string is what the engine records as ``fallback``.
    """
    if mask is None:
        reason = "failed"
    elif not mask.any():
        reason = "empty"
    elif valid_threshold is not None and box_agreement(mask, box) < valid_threshold:
        reason = "invalid"
    else:
        return mask, None
    return fallback_mask(box, shape[0], shape[1], kind), f"{kind}:{reason}"
