"""Mask sources: the filled box, the annotation's own (pseudo) mask, or none."""

import copy

import pytest
from detectron2.config import get_cfg
from detectron2.structures import BoxMode

from weaksup import add_weaksup_config
from weaksup.data import MASK_SOURCE_REGISTRY, build_mask_source


def _anno(**kw):
    base = {"bbox": [10.0, 20.0, 30.0, 40.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}
    return {**base, **kw}


def test_filled_box_ignores_ground_truth_segmentation():
    gt = [[0.0, 0.0, 5.0, 0.0, 5.0, 5.0]]
    anno = _anno(segmentation=gt, mask_valid=False)
    before = copy.deepcopy(anno)
    out = MASK_SOURCE_REGISTRY.get("box")()(anno)
    assert out["segmentation"] == [[10.0, 20.0, 40.0, 20.0, 40.0, 60.0, 10.0, 60.0]]
    assert out["mask_valid"] is True
    assert anno == before  # the dataset's dict is never modified


def test_annotation_source_keeps_mask_and_flag_and_flags_placeholders():
    source = MASK_SOURCE_REGISTRY.get("annotation")()
    poly = [[10.0, 20.0, 40.0, 20.0, 25.0, 60.0]]
    assert source(_anno(segmentation=poly)) == {**_anno(segmentation=poly), "mask_valid": True}
    assert source(_anno(segmentation=poly, mask_valid=False))["mask_valid"] is False
    placeholder = source(_anno())
    assert placeholder["mask_valid"] is False
    assert placeholder["segmentation"] == [[10.0, 20.0, 40.0, 20.0, 40.0, 60.0, 10.0, 60.0]]


def test_build_mask_source_none_needs_mask_off():
    cfg = add_weaksup_config(get_cfg())
    cfg.WEAKSUP.MASK_SOURCE = "none"
    cfg.MODEL.MASK_ON = True
    with pytest.raises(ValueError, match="MASK_SOURCE='none'"):
        build_mask_source(cfg)
    cfg.MODEL.MASK_ON = False
    assert build_mask_source(cfg) is None
    cfg.WEAKSUP.MASK_SOURCE = "no_such_source"
    with pytest.raises(KeyError, match="no_such_source"):
        build_mask_source(cfg)
