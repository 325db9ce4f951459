"""BoxSupervisedDatasetMapper on real nuts_coco images and annotations."""

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data.datasets import load_coco_json
from detectron2.structures import BoxMode
from detectron2.structures.masks import polygons_to_bitmask

from weaksup.utils.config_file import merge_config_file
from weaksup import add_weaksup_config
from weaksup.data import BoxSupervisedDatasetMapper

from conftest import shared_path


@pytest.fixture(scope="module")
def nuts_dicts():
    root = shared_path("nuts_coco", "data")
    return load_coco_json(str(root / "trainval.json"), str(root / "images"), "nuts_mapper_test")


def _cfg(mask_source="box", mask_on=True):
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.MASK_ON = mask_on
    cfg.WEAKSUP.MASK_SOURCE = mask_source
    cfg.INPUT.MIN_SIZE_TRAIN = (256,)
    cfg.INPUT.MAX_SIZE_TRAIN = 512
    cfg.INPUT.RANDOM_FLIP = "none"
    return cfg


def _box_only(d):
    return {
        **d,
        "annotations": [
            {k: v for k, v in a.items() if k != "segmentation"} for a in d["annotations"]
        ],
    }


def test_filled_box_masks_follow_the_resized_boxes(nuts_dicts):
    d = nuts_dicts[0]
    out = BoxSupervisedDatasetMapper(_cfg("box"), is_train=True)(_box_only(d))
    inst = out["instances"]
    assert len(inst) == len(d["annotations"])
    assert inst.gt_mask_valid.dtype == torch.bool and bool(inst.gt_mask_valid.all())
    h, w = out["image"].shape[1:]
    bitmasks = [polygons_to_bitmask(m, h, w) for m in inst.gt_masks.polygons]
    boxes = inst.gt_boxes.tensor.numpy()
    for mask, box in zip(bitmasks, boxes):
        ys, xs = np.nonzero(mask)
        # the rasterised filled box covers exactly the box's pixels (within rounding)
        assert abs(xs.min() - box[0]) <= 1 and abs(xs.max() + 1 - box[2]) <= 1
        assert abs(ys.min() - box[1]) <= 1 and abs(ys.max() + 1 - box[3]) <= 1
        assert mask.sum() == pytest.approx((box[2] - box[0]) * (box[3] - box[1]), rel=0.1)


def test_box_source_never_uses_ground_truth_masks(nuts_dicts):
    d = nuts_dicts[0]
    with_gt = BoxSupervisedDatasetMapper(_cfg("box"), is_train=True)(d)["instances"]
    box_only = BoxSupervisedDatasetMapper(_cfg("box"), is_train=True)(_box_only(d))["instances"]
    for a, b in zip(with_gt.gt_masks.polygons, box_only.gt_masks.polygons):
        assert all(np.array_equal(pa, pb) for pa, pb in zip(a, b))


def test_annotation_source_flags_instances_without_masks(nuts_dicts):
    d = nuts_dicts[1]
    annos = [dict(a) for a in d["annotations"]]
    for i, a in enumerate(annos):
        if i % 2:
            a.pop("segmentation")
    annos[0]["mask_valid"] = False
    out = BoxSupervisedDatasetMapper(_cfg("annotation"), is_train=True)({**d, "annotations": annos})
    expected = [i % 2 == 0 and i != 0 for i in range(len(annos))]
    assert out["instances"].gt_mask_valid.tolist() == expected


def test_annotation_source_with_rle_masks():
    """RLE masks (PennFudan ground truth, pseudo-mask jsons) need INPUT.MASK_FORMAT bitmask, as the
    base config sets; the masks reach the instances unchanged (no augmentation but the resize)."""
    from conftest import pennfudan_records

    (record,), (gt_masks,) = pennfudan_records(1)
    cfg = _cfg()
    merge_config_file(cfg, "configs/Base-Weaksup-RCNN-FPN.yaml")
    cfg.WEAKSUP.MASK_SOURCE = "annotation"
    cfg.INPUT.MIN_SIZE_TRAIN = (record["height"],)
    cfg.INPUT.MAX_SIZE_TRAIN = 10000
    out = BoxSupervisedDatasetMapper(cfg, is_train=True)(record)
    masks = out["instances"].gt_masks.tensor.numpy()
    assert out["image"].shape[1:] == (record["height"], record["width"])
    assert len(masks) == len(gt_masks) and all(
        np.array_equal(m, g) for m, g in zip(masks, gt_masks)
    )
    assert out["instances"].gt_mask_valid.all()


def test_boxes_only_without_masks(nuts_dicts):
    out = BoxSupervisedDatasetMapper(_cfg("none", mask_on=False), is_train=True)(nuts_dicts[2])
    inst = out["instances"]
    assert len(inst) == len(nuts_dicts[2]["annotations"])
    assert not inst.has("gt_masks") and not inst.has("gt_mask_valid")
    # boxes come from the annotations, not from masks
    expected = BoxMode.convert(
        np.array([a["bbox"] for a in nuts_dicts[2]["annotations"]]),
        BoxMode.XYWH_ABS,
        BoxMode.XYXY_ABS,
    )
    scale = out["image"].shape[1] / nuts_dicts[2]["height"]
    np.testing.assert_allclose(inst.gt_boxes.tensor.numpy(), expected * scale, rtol=1e-2, atol=1.0)


def test_missing_image_names_the_file(nuts_dicts, tmp_path):
    d = {**nuts_dicts[0], "file_name": str(tmp_path / "gone.jpg")}
    with pytest.raises(RuntimeError, match="gone.jpg"):
        BoxSupervisedDatasetMapper(_cfg("box"), is_train=True)(d)


def test_corrupt_image_names_the_file(nuts_dicts, tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(open(nuts_dicts[0]["file_name"], "rb").read()[:200])
    with pytest.raises(RuntimeError, match="corrupt.jpg"):
        BoxSupervisedDatasetMapper(_cfg("box"), is_train=True)(
            {**nuts_dicts[0], "file_name": str(bad)}
        )
