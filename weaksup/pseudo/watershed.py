"""Marker watershed from a box: a cheap, edge-driven counterpart of GrabCut's colour models."""

from typing import Sequence

import cv2
import numpy as np
from skimage.segmentation import watershed

from .methods import PseudoMaskConfig, per_box_method, register_method
from .geometry import box_mask, ellipse_mask
from .grabcut import _scaled_box, box_crop

__all__ = ["lab_gradient", "watershed_box"]


def lab_gradient(bgr: np.ndarray) -> np.ndarray:
    """Watershed relief of a BGR image: the Sobel gradient magnitude of the Gaussian-smoothed (5x5)
    Lab image, summed in quadrature over the channels; float32 ``(H, W)``."""
    lab = cv2.cvtColor(cv2.GaussianBlur(bgr, (5, 5), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
    return np.sqrt(
        sum(
            cv2.Sobel(lab[:, :, c], cv2.CV_32F, 1, 0) ** 2
            + cv2.Sobel(lab[:, :, c], cv2.CV_32F, 0, 1) ** 2
            for c in range(3)
        )
    )


def watershed_box(
    image: np.ndarray, box: Sequence[float], seed: int, cfg: PseudoMaskConfig
) -> np.ndarray:
    """Marker-controlled watershed (Meyer 1994) of one box on its GrabCut crop
    (:func:`.grabcut.box_crop`).

    Markers: foreground = the inscribed ellipse shrunk by ``prior_core`` (as
    :func:`.grabcut.grabcut_prior`), background = the crop outside the box. Relief:
    :func:`lab_gradient` of the crop. Deterministic (``seed`` unused). Pasted back and clipped
    to the box.
    """
    crop = box_crop(image, box, cfg)
    h, w = crop.image.shape[:2]
    markers = np.ones((h, w), np.int32)
    markers[box_mask(crop.box, h, w)] = 0
    markers[ellipse_mask(_scaled_box(crop.box, cfg.prior_core), h, w)] = 2
    return crop.paste(watershed(lab_gradient(crop.image), markers) == 2)


register_method("watershed")(per_box_method(watershed_box))
