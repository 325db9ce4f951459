"""Images derived once from a dataset's images (shrunk views, crops) and cached as PNG files."""

import os
from typing import Any, Callable, Dict

import cv2
import numpy as np

from ..utils.file_io import write_atomic
from ..utils.image_io import read_image_bgr

__all__ = ["write_derived_image"]


def write_derived_image(
    record: Dict[str, Any], path: str, derive: Callable[[np.ndarray], np.ndarray]
) -> None:
    """Unless ``path`` exists: ``derive`` of the record's BGR image, written there as PNG
    atomically (parallel processes may race). The image is checked as the pseudo-mask jobs check
    theirs (:func:`~weaksup.utils.image_io.read_image_bgr`: missing, truncated, unreadable, or not the
    record's size is an error naming the file)."""
    if os.path.isfile(path):
        return
    image = read_image_bgr(
        record["file_name"], record["height"], record["width"], record["image_id"]
    )
    ok, png = cv2.imencode(".png", derive(image))
    if not ok:
        raise RuntimeError(f"cannot encode {path} (derived from {record['file_name']})")
    write_atomic(png.tobytes(), path)
