"""Polygon masks with crop augmentation (Detectron2's RandomCrop clips polygons with shapely)."""

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import PolygonMasks

from conftest import shared_path


def _nuts_record():
    from weaksup.data.datasets import load_coco_json

    root = shared_path("nuts_coco", "data")
    records = load_coco_json(str(root / "trainval.json"), str(root / "images"))
    return records[0]


def _raster(polygons, h, w):
    if not polygons:
        return np.zeros((h, w), bool)
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, h, w))).astype(bool)


def test_cropped_polygons_match_cropped_masks():
    record = _nuts_record()
    h, w = record["height"], record["width"]
    crop = T.CropTransform(x0=150, y0=100, w=400, h=300)
    for ann in record["annotations"]:
        full = _raster(ann["segmentation"], h, w)[100:400, 150:550]
        out = utils.transform_instance_annotations(dict(ann), T.TransformList([crop]), (300, 400))
        cropped = _raster(out["segmentation"], 300, 400)
        if full.sum() < 50:  # objects the crop cuts down to a sliver
            continue
        iou = (full & cropped).sum() / (full | cropped).sum()
        assert iou > 0.95, (ann["id"], iou)


def test_mapper_with_crop_enabled_gives_polygon_masks():
    """The data-loader path that crashed without shapely: INPUT.CROP with polygon masks."""
    from detectron2.config import get_cfg

    from weaksup import add_weaksup_config
    from weaksup.data import build_mapper

    cfg = add_weaksup_config(get_cfg())
    cfg.merge_from_list(
        ["INPUT.CROP.ENABLED", True, "INPUT.CROP.TYPE", "absolute", "INPUT.CROP.SIZE", [300, 400]]
    )
    cfg.merge_from_list(["INPUT.MASK_FORMAT", "polygon", "WEAKSUP.MASK_SOURCE", "annotation"])
    cfg.merge_from_list(["INPUT.MIN_SIZE_TRAIN", (300,), "INPUT.RANDOM_FLIP", "none"])
    mapper = build_mapper(cfg, is_train=True)
    np.random.seed(0)
    out = mapper(_nuts_record())
    instances = out["instances"]
    assert tuple(out["image"].shape[1:]) == (300, 400)
    assert isinstance(instances.gt_masks, PolygonMasks) and len(instances) > 0
    for polygons in instances.gt_masks.polygons:
        for p in polygons:
            xy = p.reshape(-1, 2)
            assert (
                (xy >= -1e-6).all()
                and (xy[:, 0] <= 400 + 1e-6).all()
                and (xy[:, 1] <= 300 + 1e-6).all()
            )
