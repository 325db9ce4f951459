"""
Salient-object images (image + binary 0/255 mask, one object each) for BoxCaseg joint training
(BoxCaseg Sec. 3.2.1 and Sec. 4 "DUTS-Single").

Dicts: ``{file_name, height, width, image_id, salient_mask_file}``; metadata
``thing_classes=["object"]``. Image sizes come from the image headers (PIL opens lazily).

``part`` splits a folder without a list file into ``"train"`` and ``"heldout"``: every
:data:`HELDOUT_EVERY`-th image in name order is held out (ECSSD's 1,000 -> 900 + 100), so a
network trained on the first can be scored on images it never saw (BoxCaseg's class-agnostic
claim, ``benchmarks/boxcaseg.py``). :func:`salient_instances` turns salient dicts into instance
dicts (one object, its tight box, its mask as RLE) for box-conditioned mask evaluation.
"""

import os
from typing import Dict, List, Optional

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from ...pseudo.geometry import tight_box
from ...utils.rle import encode_mask
from .sanitize import check_annotation_file, sanitize_dataset_dicts

__all__ = [
    "HELDOUT_EVERY",
    "load_salient_images",
    "read_salient_mask",
    "register_salient",
    "salient_instances",
]

# Every HELDOUT_EVERY-th image (name order, 0-based index % HELDOUT_EVERY == HELDOUT_EVERY - 1)
# belongs to part "heldout", the others to part "train".
HELDOUT_EVERY = 10
PARTS = ("all", "train", "heldout")


def _read_list(list_file: str) -> List[str]:
    check_annotation_file(list_file)
    with open(list_file) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def load_salient_images(
    image_dir: str,
    mask_dir: str,
    list_file: Optional[str] = None,
    image_ext: str = ".jpg",
    mask_ext: str = ".png",
    part: str = "all",
) -> List[Dict]:
    """
    Pair ``image_dir/<stem><image_ext>`` with ``mask_dir/<stem><mask_ext>``.

    Args:
        list_file: optional text file with one image stem per line (e.g. the DUTS-Single list
            written by ``datasets/prepare_duts_single.py``); without it every image is used.
        part: ``"all"``, or ``"train"`` / ``"heldout"`` of the module docstring's split (of the
            list or folder order); ``image_id`` is the index in the whole list either way.
    """
    if part not in PARTS:
        raise ValueError(f"salient dataset part must be one of {PARTS}, got {part!r}")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Image folder not found: {image_dir}")
    if list_file is not None:
        stems = _read_list(list_file)
        source = list_file
    else:
        stems = sorted(f[: -len(image_ext)] for f in os.listdir(image_dir) if f.endswith(image_ext))
        source = image_dir
    dicts = []
    for image_id, stem in enumerate(stems):
        heldout = image_id % HELDOUT_EVERY == HELDOUT_EVERY - 1
        if (part == "train" and heldout) or (part == "heldout" and not heldout):
            continue
        file_name = os.path.join(image_dir, stem + image_ext)
        mask_file = os.path.join(mask_dir, stem + mask_ext)
        for path in (file_name, mask_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{source}: record {stem!r}: file not found: {path}")
        with Image.open(file_name) as im:
            width, height = im.size
        dicts.append(
            {
                "file_name": file_name,
                "height": height,
                "width": width,
                "image_id": image_id,
                "salient_mask_file": mask_file,
            }
        )
    return sanitize_dataset_dicts(dicts, source, num_classes=1)


def read_salient_mask(path: str) -> np.ndarray:
    """The bool object mask of a 0/255 salient mask file (> 127); the error names the file."""
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read salient mask {path}")
    return mask > 127


def salient_instances(dicts: List[Dict]) -> List[Dict]:
    """Salient dicts as instance dicts: one annotation (category 0) per image whose mask is not
    empty, ``bbox`` the mask's tight box (``XYXY_ABS``, pixel edges), ``segmentation`` its RLE."""
    out = []
    for r in dicts:
        mask = read_salient_mask(r["salient_mask_file"])
        if not mask.any():
            continue
        ann = {
            "id": r["image_id"] + 1,
            "bbox": tight_box(mask).tolist(),
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 0,
            "iscrowd": 0,
            "segmentation": encode_mask(mask),
        }
        out.append(
            {k: v for k, v in r.items() if k != "salient_mask_file"} | {"annotations": [ann]}
        )
    return out


def register_salient(
    name: str, image_dir: str, mask_dir: str, list_file: Optional[str] = None, **kwargs
) -> None:
    """Register a salient-image dataset; ``kwargs`` go to :func:`load_salient_images`."""
    DatasetCatalog.register(
        name, lambda: load_salient_images(image_dir, mask_dir, list_file, **kwargs)
    )
    MetadataCatalog.get(name).set(
        thing_classes=["object"], image_root=image_dir, mask_root=mask_dir
    )
