"""
The 13 images of the classic GrabCut benchmark (Rother et al. 2004) in ``grabcut13/``:
``imgs/<name>.jpg``, ``bboxes/<name>.txt`` (``x1 y1 x2 y2``, inclusive pixel indices) and
``seg_GT/<name>.bmp`` (0 / 255), as instance dicts (one object per image, category 0 ``"object"``,
``bbox`` in ``XYXY_ABS`` pixel edges, i.e. ``x2 + 1, y2 + 1``, mask as RLE): box-conditioned mask
quality on objects of no PennFudan / ECSSD class (``benchmarks/boxcaseg.py``).
"""

import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from ...utils.rle import encode_mask
from .salient import read_salient_mask

__all__ = ["load_grabcut13", "register_grabcut13"]


def _read_box(path: str) -> List[float]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"grabcut13 box file not found: {path}")
    with open(path) as f:
        values = f.read().split()
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except ValueError:
        raise ValueError(f"{path}: expected 'x1 y1 x2 y2', got {' '.join(values)!r}") from None
    if x2 < x1 or y2 < y1:
        raise ValueError(f"{path}: empty box {values}")
    return [x1, y1, x2 + 1, y2 + 1]


def load_grabcut13(root: str) -> List[Dict]:
    """Instance dicts of ``root`` (module docstring), in name order."""
    image_dir = os.path.join(root, "imgs")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"grabcut13 image folder not found: {image_dir}")
    dicts = []
    for image_id, name in enumerate(sorted(f for f in os.listdir(image_dir) if f.endswith(".jpg"))):
        stem = os.path.splitext(name)[0]
        file_name = os.path.join(image_dir, name)
        mask = read_salient_mask(os.path.join(root, "seg_GT", stem + ".bmp"))
        with Image.open(file_name) as im:
            width, height = im.size
        if mask.shape != (height, width):
            raise ValueError(
                f"{root}/seg_GT/{stem}.bmp: size {mask.shape} != image {height, width}"
            )
        ann = {
            "id": image_id + 1,
            "bbox": _read_box(os.path.join(root, "bboxes", stem + ".txt")),
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 0,
            "iscrowd": 0,
            "segmentation": encode_mask(mask),
        }
        dicts.append(
            {
                "file_name": file_name,
                "height": height,
                "width": width,
                "image_id": image_id,
                "annotations": [ann],
            }
        )
    return dicts


def register_grabcut13(name: str, root: str) -> None:
    """Register :func:`load_grabcut13` of ``root`` as ``name``."""
    DatasetCatalog.register(name, lambda: load_grabcut13(root))
    MetadataCatalog.get(name).set(thing_classes=["object"], image_root=os.path.join(root, "imgs"))
