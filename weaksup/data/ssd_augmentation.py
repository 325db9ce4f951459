"""SSD-style training augmentation (photometric noise, zoom-out expansion, min-IoU crop).

DASNet (Sec. 4.1) augments "expanding, cropping, adding noise, and horizontal flipping as in
[21]" (SSD, Liu et al. 2016, Sec. 2.2 "Data augmentation"). These are Detectron2
:class:`~detectron2.data.transforms.Augmentation` s, placed before the usual resize and flip by
:func:`build_ssd_augmentation`, and they transform images, boxes, instance masks and label maps
alike. Choices where SSD leaves room:

* **Noise** is SSD's photometric distortion: brightness (+-32), contrast and saturation
  (x U(0.5, 1.5)) and hue (+-18 degrees), each applied with probability 0.5, in random order.
* **Expansion** places the image at a random position of a canvas ``U(1, max_ratio)`` times its
  size, filled with the mean pixel value (one scalar, the mean of ``MODEL.PIXEL_MEAN``); label maps
  and masks are padded with background (0): the canvas holds no object.
* **Crop**: SSD's sampler. It draws a minimum IoU among ``min_ious`` or "keep the whole image";
  up to 50 random crops (sides U(0.3, 1) of the image's, aspect ratio in [0.5, 2]) are drawn and
  the first whose IoU with some box reaches the minimum and which contains the centre of at
  least one box is used; when all 50 fail, a new minimum is drawn (as SSD's reference code). Boxes cut by the crop are clipped by Detectron2 and empty ones
  dropped (SSD drops boxes whose centre leaves the crop; clipping keeps the visible part, which is
  what a box-conditioned segmenter should attend to).
"""

from typing import List, Optional, Sequence

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from fvcore.transforms.transform import CropTransform, NoOpTransform, PadTransform

__all__ = [
    "add_ssd_augmentation_config",
    "PhotometricDistortion",
    "RandomExpand",
    "MinIoURandomCrop",
    "build_ssd_augmentation",
]


def add_ssd_augmentation_config(cfg: CfgNode) -> CfgNode:
    """Add ``cfg.INPUT.SSD`` (SSD-style training augmentation placed before resize and flip by
    the box-supervised mapper; DASNet Sec. 4.1, "as in [21]") in place and return the config."""
    _C = cfg
    _C.INPUT.SSD = CfgNode()
    # Photometric noise, zoom-out expansion and min-IoU crop on training images.
    _C.INPUT.SSD.ENABLED = False
    # Expansion: canvas side up to this multiple of the image's ...
    _C.INPUT.SSD.EXPAND_MAX_RATIO = 4.0
    # ... applied with this probability.
    _C.INPUT.SSD.EXPAND_PROB = 0.5
    # Crop: minimum IoU with some box, one drawn per image (or "keep the whole image").
    _C.INPUT.SSD.CROP_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9)
    return cfg


def _box_iou(crop: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one XYXY box with each row of ``boxes`` (N, 4)."""
    x0 = np.maximum(crop[0], boxes[:, 0])
    y0 = np.maximum(crop[1], boxes[:, 1])
    x1 = np.minimum(crop[2], boxes[:, 2])
    y1 = np.minimum(crop[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (crop[2] - crop[0]) * (crop[3] - crop[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


class PhotometricDistortion(T.Augmentation):
    """SSD's photometric distortion on RGB or BGR uint8 images (geometry untouched)."""

    def __init__(
        self,
        brightness_delta: float = 32.0,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: float = 18.0,
    ):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        ops = []
        if self._rand_range() < 0.5:
            delta = self._rand_range(-self.brightness_delta, self.brightness_delta)
            ops.append(lambda img, d=delta: img + d)
        if self._rand_range() < 0.5:
            alpha = self._rand_range(*self.contrast_range)
            ops.append(lambda img, a=alpha: img * a)
        if self._rand_range() < 0.5:
            alpha = self._rand_range(*self.saturation_range)
            ops.append(lambda img, a=alpha: _scale_saturation(img, a))
        if self._rand_range() < 0.5:
            delta = self._rand_range(-self.hue_delta, self.hue_delta)
            ops.append(lambda img, d=delta: _shift_hue(img, d))
        if not ops:
            return NoOpTransform()
        order = np.random.permutation(len(ops))

        def distort(img: np.ndarray) -> np.ndarray:
            out = img.astype(np.float32)
            for k in order:
                out = ops[k](out)
            return np.clip(out, 0, 255).astype(img.dtype)

        return T.ColorTransform(distort)


def _scale_saturation(img: np.ndarray, alpha: float) -> np.ndarray:
    gray = img.mean(axis=2, keepdims=True)
    return gray + alpha * (img - gray)


def _shift_hue(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the chroma of each pixel by ``degrees`` around the gray axis (channel-order free)."""
    theta = np.deg2rad(degrees)
    c, s = np.cos(theta), np.sin(theta)
    # Rodrigues rotation about the unit gray axis (1, 1, 1) / sqrt(3).
    k = 1.0 / 3.0
    rot = np.array(
        [
            [c + k * (1 - c), k * (1 - c) - np.sqrt(k) * s, k * (1 - c) + np.sqrt(k) * s],
            [k * (1 - c) + np.sqrt(k) * s, c + k * (1 - c), k * (1 - c) - np.sqrt(k) * s],
            [k * (1 - c) - np.sqrt(k) * s, k * (1 - c) + np.sqrt(k) * s, c + k * (1 - c)],
        ],
        dtype=np.float32,
    )
    return img @ rot.T


class RandomExpand(T.Augmentation):
    """SSD's "zoom out": the image pasted at a random place of a larger mean-filled canvas."""

    def __init__(self, max_ratio: float = 4.0, prob: float = 0.5, fill: float = 0.0):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        if self.max_ratio <= 1.0 or self._rand_range() >= self.prob:
            return NoOpTransform()
        h, w = image.shape[:2]
        ratio = self._rand_range(1.0, self.max_ratio)
        new_h, new_w = int(round(h * ratio)), int(round(w * ratio))
        y0 = int(self._rand_range(0, new_h - h + 1))
        x0 = int(self._rand_range(0, new_w - w + 1))
        return PadTransform(
            x0, y0, new_w - w - x0, new_h - h - y0, w, h, pad_value=self.fill, seg_pad_value=0
        )


class MinIoURandomCrop(T.Augmentation):
    """SSD's patch sampler: a crop overlapping some box by at least a random minimum IoU."""

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_scale: float = 0.3,
        aspect_range: Sequence[float] = (0.5, 2.0),
        max_trials: int = 50,
    ):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray, boxes: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return NoOpTransform()
        modes = list(self.min_ious) + [None]  # None: keep the whole image
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        while True:  # as SSD: a mode whose trials all fail is replaced by a new draw
            mode = modes[np.random.randint(len(modes))]
            if mode is None:
                return NoOpTransform()
            crop = self._sample(w, h, boxes, centers, mode)
            if crop is not None:
                return crop

    def _sample(
        self, w: int, h: int, boxes: np.ndarray, centers: np.ndarray, min_iou: float
    ) -> Optional[T.Transform]:
        for _ in range(self.max_trials):
            cw = self._rand_range(self.min_scale, 1.0) * w
            ch = self._rand_range(self.min_scale, 1.0) * h
            if not self.aspect_range[0] <= ch / cw <= self.aspect_range[1]:
                continue
            x0 = self._rand_range(0, w - cw)
            y0 = self._rand_range(0, h - ch)
            crop = np.array([x0, y0, x0 + cw, y0 + ch], dtype=np.float32)
            if _box_iou(crop, boxes).max() < min_iou:
                continue
            inside = (
                (centers[:, 0] > crop[0])
                & (centers[:, 0] < crop[2])
                & (centers[:, 1] > crop[1])
                & (centers[:, 1] < crop[3])
            )
            if not inside.any():
                continue
            x0, y0 = int(crop[0]), int(crop[1])
            return CropTransform(x0, y0, min(int(cw), w - x0), min(int(ch), h - y0), w, h)
        return None


def build_ssd_augmentation(cfg: CfgNode, is_train: bool) -> List[T.Augmentation]:
    """The augmentations placed before Detectron2's resize and flip (``cfg.INPUT.SSD``)."""
    if not (is_train and cfg.INPUT.SSD.ENABLED):
        return []
    return [
        PhotometricDistortion(),
        RandomExpand(
            cfg.INPUT.SSD.EXPAND_MAX_RATIO,
            cfg.INPUT.SSD.EXPAND_PROB,
            float(np.mean(cfg.MODEL.PIXEL_MEAN)),
        ),
        MinIoURandomCrop(cfg.INPUT.SSD.CROP_MIN_IOUS),
    ]
