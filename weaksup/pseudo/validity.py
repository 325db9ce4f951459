"""Hybrid networks Sec. 1: valid and invalid pseudo masks, and the statistics the paper reports.

A pseudo mask is *valid* when the IoU of its tight box with the box it was made for is at least
0.5 (:func:`weaksup.pseudo.box_agreement`; the engine stores the flag as ``mask_valid``). The paper
reports the share of invalid masks overall (30 % on VOC), among objects smaller than 64 x 64 px
(76.5 %) and larger (23.2 %), and the share of the invalid ones that are small (55.5 %). Sizes are
box areas: 64 x 64 px = 4096 px^2. Plain numpy.
"""

from collections import OrderedDict
from typing import Optional

import numpy as np

__all__ = ["HYBRID_SMALL_AREA", "validity_statistics"]

HYBRID_SMALL_AREA = 64 * 64  # Hybrid Sec. 1: "less than 64 x 64 pixels"


def _share(a: np.ndarray, within: np.ndarray) -> float:
    return float(a[within].mean() * 100) if within.any() else float("nan")


def validity_statistics(
    valid: np.ndarray, box_area: np.ndarray, flagged: Optional[np.ndarray] = None
) -> "OrderedDict[str, float]":
    """Sec. 1's statistics, in percent (NaN where a group is empty).

    Args:
        valid: bool per instance, the validity of its mask.
        box_area: area of each instance's box in px^2 (small: < :data:`HYBRID_SMALL_AREA`).
        flagged: optional bool per instance, flagged unusable in a pseudo-mask file (reported as
            its own share: a file may flag by another rule, e.g. BoxCaseg's 0.95 drop).
    """
    valid, box_area = np.asarray(valid, dtype=bool), np.asarray(box_area, dtype=np.float64)
    if valid.shape != box_area.shape:
        raise ValueError(f"{valid.shape[0]} validity flags but {box_area.shape[0]} box areas")
    invalid, small = ~valid, box_area < HYBRID_SMALL_AREA
    stats = OrderedDict()
    stats["invalid %"] = _share(invalid, np.ones_like(invalid))
    stats["invalid among small boxes (< 64x64) %"] = _share(invalid, small)
    stats["invalid among large boxes (>= 64x64) %"] = _share(invalid, ~small)
    stats["small among invalid %"] = _share(small, invalid)
    if flagged is not None:
        flagged = np.asarray(flagged, dtype=bool)
        stats["flagged unusable in the file %"] = _share(flagged, np.ones_like(flagged))
    return stats
