"""
Small-object views of instance datasets: every image shrunk by ``scale`` and pasted at the centre of
a canvas of its original size (filled with the image's mean colour), boxes and masks moved with it.

The objects get ``scale**2`` of their area while the images keep their size, so a test resize
does not undo the shrinking (a plainly downscaled image would be upscaled back by
``INPUT.MIN_SIZE_TEST``). Hybrid networks' small-object branch (Sec. 2.2) is about instances under
64 x 64 px, which PennFudan hardly has: ``pennfudan_val_small`` (scale 1/4) puts its median
pedestrian at about 26 x 72 px (mask ~900 px^2, most under COCO's 32^2 "small");
``pennfudan_val_half`` (scale 1/2) keeps them in reach of the detectors' 32 px anchors, with 82 of
its 111 masks under 64 x 64 px (median ~3,750 px^2) and the rest above it. The ``*_eighth`` views
(scale 1/8) of pennfudan_val, nuts_coco and held-out ECSSD put most boxes under COCO's 32^2
"small": BoxCaseg's small-box benchmark (benchmarks/boxcaseg.py).
The images are written once as PNG under ``<cache>/small_view/<name>_s<scale>/`` (atomically, so
parallel processes may race), named by image id and stem.
"""

import os
from typing import Any, Dict, List

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ...paths import cache_dir
from ...utils.rle import encode_mask
from .image_sets import declare_image_sources
from ..derived_images import write_derived_image
from ...evaluation.ground_truth import segmentation_to_bitmask

__all__ = ["register_small_object_view", "small_object_record"]


def _placement(height: int, width: int, scale: float):
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    return h, w, (height - h) // 2, (width - w) // 2


def small_object_record(record: Dict[str, Any], scale: float, image_dir: str) -> Dict[str, Any]:
    """``record`` (instance dict, ``XYXY_ABS`` boxes, masks any Detectron2 segmentation) as its
    small-object view (module docstring); writes the image to ``image_dir`` unless it is there."""
    if not 0 < scale <= 1:
        raise ValueError(f"small-object view scale must be in (0, 1], got {scale}")
    H, W = record["height"], record["width"]
    h, w, top, left = _placement(H, W, scale)
    stem = os.path.splitext(os.path.basename(record["file_name"]))[0]

    def shrink(image: np.ndarray) -> np.ndarray:
        canvas = np.empty_like(image)
        canvas[:] = image.reshape(-1, 3).mean(0).round().astype(np.uint8)
        canvas[top : top + h, left : left + w] = cv2.resize(
            image, (w, h), interpolation=cv2.INTER_AREA
        )
        return canvas

    path = os.path.join(image_dir, f"{record['image_id']}_{stem}.png")
    write_derived_image(record, path, shrink)
    anns = []
    for ann in record.get("annotations", []):
        if ann.get("bbox_mode", BoxMode.XYXY_ABS) != BoxMode.XYXY_ABS:
            raise ValueError(f"{record['file_name']}: small-object views take XYXY_ABS boxes")
        x0, y0, x1, y1 = ann["bbox"]
        box = [left + x0 * w / W, top + y0 * h / H, left + x1 * w / W, top + y1 * h / H]
        new = {**ann, "bbox": box, "bbox_mode": BoxMode.XYXY_ABS}
        if "segmentation" in ann:
            mask = segmentation_to_bitmask(ann["segmentation"], H, W).astype(np.float32)
            small = np.zeros((H, W), dtype=bool)
            small[top : top + h, left : left + w] = (
                cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) >= 0.5
            )
            new["segmentation"] = encode_mask(small)
        anns.append(new)
    out = {k: v for k, v in record.items() if k not in ("sem_seg_file_name",)}
    return {**out, "file_name": path, "annotations": anns}


def _load(base_name: str, scale: float, image_dir: str) -> List[Dict[str, Any]]:
    return [small_object_record(r, scale, image_dir) for r in DatasetCatalog.get(base_name)]


def register_small_object_view(name: str, base_name: str, scale: float) -> None:
    """Register the small-object view ``name`` of instance dataset ``base_name`` (its metadata,
    its images for the leak check), images under ``<cache>/small_view/<name>_s<scale>``."""
    image_dir = os.path.join(cache_dir(), "small_view", f"{name}_s{scale:g}")
    DatasetCatalog.register(name, lambda: _load(base_name, scale, image_dir))
    meta = MetadataCatalog.get(base_name).as_dict()
    meta = {k: v for k, v in meta.items() if k not in ("name", "image_sources")}
    meta.update(image_root=image_dir, small_view_scale=scale)
    MetadataCatalog.get(name).set(**meta)
    declare_image_sources(name, [base_name])


register_small_object_view("pennfudan_val_small", "pennfudan_val", 0.25)
register_small_object_view("pennfudan_val_half", "pennfudan_val", 0.5)
register_small_object_view("pennfudan_val_eighth", "pennfudan_val", 0.125)
register_small_object_view("nuts_coco_train_eighth", "nuts_coco_train", 0.125)
register_small_object_view("nuts_coco_val_eighth", "nuts_coco_val", 0.125)
register_small_object_view("ecssd_heldout_eighth", "ecssd_heldout_instances", 0.125)
