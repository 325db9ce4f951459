"""Images without any object of a box-annotated dataset: per image, its largest axis-aligned
rectangle that overlaps none of the image's boxes, cropped and written once to a cache folder.

Image-level methods learn *where* a class is from images of the same scenes with and without it
(PASCAL VOC's 20 classes come and go across street, room and field photos). A dataset whose
class is in every image (PennFudan: a pedestrian in every street photo) teaches a classifier the
scene instead; these crops are the scenes without the class, built by code from the dataset's
boxes. Unlabelled objects in the crops (PennFudan leaves some pedestrians unlabelled) stay there.

* :func:`largest_free_rectangle`: the rectangle (pure function, exact on integer corners);
* :func:`register_box_free_crops`: the dataset ``name`` of crops of ``base_name``'s images, each a
  record with no annotations (``file_name`` the crop's PNG under ``out_dir``, named by the source
  image and the rectangle, so changed settings write new files and a rerun reuses them).
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..derived_images import write_derived_image
from .image_sets import declare_image_sources

__all__ = ["largest_free_rectangle", "load_box_free_crops", "register_box_free_crops"]

logger = logging.getLogger(__name__)


def largest_free_rectangle(
    width: int, height: int, boxes: Sequence[Sequence[float]], min_side: int
) -> Optional[Tuple[int, int, int, int]]:
    """The largest-area ``(x0, y0, x1, y1)`` (integer pixel corners, exclusive end) inside the
    ``width x height`` image that overlaps no box of ``boxes`` (XYXY_ABS; a box covers the
    pixels it touches: corners floored / ceiled) and whose shorter side is at least
    ``min_side``; None when there is none. Ties: the first in (x0, x1, y0, y1) order.

    An optimal rectangle has each side on the image border or on a box edge, so only those
    coordinates are searched (O(n^4) rectangles for n boxes: a few per image here)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lo, hi = np.floor(b[:, :2]).astype(int), np.ceil(b[:, 2:]).astype(int)
    xs = sorted({0, width} | {int(v) for v in np.clip(np.r_[lo[:, 0], hi[:, 0]], 0, width)})
    ys = sorted({0, height} | {int(v) for v in np.clip(np.r_[lo[:, 1], hi[:, 1]], 0, height)})
    best, best_area = None, 0
    for i, x0 in enumerate(xs):
        for x1 in xs[i + 1 :]:
            if x1 - x0 < min_side:
                continue
            # boxes whose x range meets [x0, x1): the free y intervals lie between them
            hit = (lo[:, 0] < x1) & (hi[:, 0] > x0)
            for j, y0 in enumerate(ys):
                for y1 in ys[j + 1 :]:
                    area = (x1 - x0) * (y1 - y0)
                    if y1 - y0 < min_side or area <= best_area:
                        continue
                    if np.any(hit & (lo[:, 1] < y1) & (hi[:, 1] > y0)):
                        continue
                    best, best_area = (x0, y0, x1, y1), area
    return best


def load_box_free_crops(base_name: str, out_dir: str, min_side: int) -> List[Dict]:
    """The records of :func:`register_box_free_crops`; crops are written on first use
    (:func:`~weaksup.data.derived_images.write_derived_image`)."""
    out = []
    for r in DatasetCatalog.get(base_name):
        boxes = [a["bbox"] for a in r["annotations"]]
        rect = largest_free_rectangle(r["width"], r["height"], boxes, min_side)
        if rect is None:
            continue
        x0, y0, x1, y1 = rect
        stem = os.path.splitext(os.path.basename(r["file_name"]))[0]
        path = os.path.join(out_dir, f"{r['image_id']}_{stem}_{x0}_{y0}_{x1}_{y1}.png")
        write_derived_image(r, path, lambda image: image[y0:y1, x0:x1])
        out.append(
            {
                "file_name": path,
                "height": y1 - y0,
                "width": x1 - x0,
                "image_id": f"{r['image_id']}_free",
                "annotations": [],
            }
        )
    logger.info(
        f"Box-free crops of {base_name}: {len(out)} of its images have a free rectangle with "
        f"sides >= {min_side} px"
    )
    if not out:
        raise ValueError(f"{base_name}: no image has a box-free rectangle with sides >= {min_side}")
    return out


def register_box_free_crops(name: str, base_name: str, out_dir: str, min_side: int = 96) -> None:
    """Register ``name``: the box-free crops (module docstring) of ``base_name``'s images, with
    its classes (none occurring) and its image sources (so split checks see the source photos)."""
    DatasetCatalog.register(name, lambda: load_box_free_crops(base_name, out_dir, min_side))
    MetadataCatalog.get(name).set(
        thing_classes=list(MetadataCatalog.get(base_name).thing_classes),
        box_free_crops=dict(base=base_name, min_side=min_side),
    )
    declare_image_sources(name, [base_name])
