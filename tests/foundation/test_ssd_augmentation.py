"""SSD-style augmentation (DASNet Sec. 4.1) on real PennFudan images: what each piece guarantees,
and that the box-supervised mapper keeps boxes, masks and image aligned through them."""

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from conftest import pennfudan_records
from weaksup import add_weaksup_config
from weaksup.data import build_mapper
from weaksup.data.ssd_augmentation import (
    MinIoURandomCrop,
    PhotometricDistortion,
    RandomExpand,
    _box_iou,
)


@pytest.fixture(scope="module")
def record():
    records, _ = pennfudan_records(1)
    return records[0]


def _image_and_boxes(record):
    import cv2

    image = cv2.imread(record["file_name"])
    boxes = np.array(
        [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
            for a in record["annotations"]
        ],
        dtype=np.float64,
    )
    return image, boxes


def test_min_iou_crop_overlaps_a_box_by_the_minimum_and_keeps_a_centre(record):
    image, boxes = _image_and_boxes(record)
    h, w = image.shape[:2]
    np.random.seed(0)
    crop_aug = MinIoURandomCrop(min_ious=(0.5,))
    cropped = 0
    for _ in range(40):
        tfm = crop_aug.get_transform(image, boxes)
        if isinstance(tfm, T.NoOpTransform):
            continue
        cropped += 1
        crop = np.array([tfm.x0, tfm.y0, tfm.x0 + tfm.w, tfm.y0 + tfm.h], dtype=np.float64)
        assert 0 <= crop[0] < crop[2] <= w and 0 <= crop[1] < crop[3] <= h
        # int() truncation of the sampled crop moves each side by < 1 px
        assert _box_iou(crop, boxes).max() >= 0.5 - 0.02
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (centres >= crop[:2] - 1) & (centres <= crop[2:] + 1)
        assert inside.all(axis=1).any()
    assert cropped > 10  # "keep the whole image" is one mode in two here
    assert isinstance(crop_aug.get_transform(image, np.zeros((0, 4))), T.NoOpTransform)


def test_expand_pastes_the_image_unchanged_on_a_filled_canvas(record):
    image, boxes = _image_and_boxes(record)
    h, w = image.shape[:2]
    np.random.seed(1)
    tfm = RandomExpand(max_ratio=3.0, prob=1.0, fill=104.0).get_transform(image)
    out = tfm.apply_image(image)
    x0, y0 = tfm.x0, tfm.y0
    assert out.shape[0] == h + tfm.y0 + tfm.y1 and out.shape[1] == w + tfm.x0 + tfm.x1
    assert out.shape[0] > h or out.shape[1] > w
    np.testing.assert_array_equal(out[y0 : y0 + h, x0 : x0 + w], image)
    canvas = np.ones(out.shape[:2], dtype=bool)
    canvas[y0 : y0 + h, x0 : x0 + w] = False
    assert (out[canvas] == 104).all()
    np.testing.assert_allclose(tfm.apply_box(boxes), boxes + [x0, y0, x0, y0])
    label = tfm.apply_segmentation(np.full((h, w), 7, dtype=np.uint8))
    assert (label[canvas] == 0).all() and (label[~canvas] == 7).all()


def test_photometric_distortion_changes_colours_only(record):
    image, boxes = _image_and_boxes(record)
    np.random.seed(2)
    aug = PhotometricDistortion()
    changed = 0
    for _ in range(10):
        tfm = aug.get_transform(image)
        out = tfm.apply_image(image)
        assert out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(tfm.apply_box(boxes), boxes)
        changed += int(not np.array_equal(out, image))
    assert changed >= 5
    # hue and saturation leave gray pixels gray
    gray = np.full((4, 4, 3), 90, dtype=np.uint8)
    aug = PhotometricDistortion(brightness_delta=0, contrast_range=(1, 1))
    for _ in range(10):
        out = aug.get_transform(gray).apply_image(gray)
        assert np.abs(out.astype(int) - 90).max() <= 1


def test_mapper_keeps_boxes_masks_and_image_aligned(record):
    cfg = get_cfg()
    add_weaksup_config(cfg)
    cfg.merge_from_list(
        ["INPUT.SSD.ENABLED", "True", "INPUT.MASK_FORMAT", "bitmask"]
        + ["WEAKSUP.MASK_SOURCE", "annotation", "INPUT.MIN_SIZE_TRAIN", "(200,)"]
        + ["INPUT.MAX_SIZE_TRAIN", "400"]
    )
    mapper = build_mapper(cfg, is_train=True)
    assert [type(a).__name__ for a in mapper.augmentations.augs[:3]] == [
        "PhotometricDistortion",
        "RandomExpand",
        "MinIoURandomCrop",
    ]
    np.random.seed(3)
    shapes = set()
    for _ in range(8):
        out = mapper(record)
        inst = out["instances"]
        h, w = out["image"].shape[1:]
        shapes.add((h, w))
        assert inst.gt_masks.tensor.shape[1:] == (h, w)
        assert len(inst) >= 1
        for box, mask in zip(inst.gt_boxes.tensor.numpy(), inst.gt_masks.tensor.numpy()):
            ys, xs = np.nonzero(mask)
            assert len(ys) > 0
            # the GT mask lies in its (transformed, clipped) GT box, up to resampling
            assert xs.min() >= box[0] - 2 and xs.max() <= box[2] + 2
            assert ys.min() >= box[1] - 2 and ys.max() <= box[3] + 2
    assert len(shapes) > 1  # expansion and crops change the aspect ratio
