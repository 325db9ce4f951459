"""Box tightness repair (weaksup/pseudo/tightness.py) on synthetic masks and PennFudan crops."""

import dataclasses

import cv2
import numpy as np

from weaksup.pseudo import PseudoMaskConfig, box_mask, pseudo_masks_for_image
from weaksup.pseudo.grabcut import box_crop
from weaksup.pseudo.tightness import repair_tightness, side_seeds

from conftest import pennfudan_records


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _gaps(mask, box):
    """Gaps (pixels) between the mask's extent and the box sides: top, bottom, left, right."""
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])) - 1, int(np.ceil(box[3])) - 1
    ys, xs = np.nonzero(mask)
    return ys.min() - y0, y1 - ys.max(), xs.min() - x0, x1 - xs.max()


def test_side_seeds_reach_exactly_the_sides_not_reached():
    mask = np.zeros((60, 50), bool)
    box = (5, 10, 44, 49)  # inclusive: 40 x 40
    mask[20:50, 5:30] = True  # reaches bottom and left; 10 px short of the top, 15 of the right
    mask[20, 10:13] = True
    lines = side_seeds(mask, box, tolerance=0.02)
    expected = np.zeros_like(mask)
    expected[10:21, 17] = True  # top: from the median pixel of the mask's top row (cols 5..29)
    expected[34, 29:45] = True  # right: from the median pixel of its rightmost column (rows 20..49)
    assert np.array_equal(lines, expected)
    # within the tolerance (10 / 40 = 0.25 at the top, 15 / 40 = 0.375 at the right): no seeds
    assert side_seeds(mask, box, tolerance=0.25).sum() == expected[34].sum()
    assert not side_seeds(mask, box, tolerance=0.4).any()


def test_box_crop_take_inverts_paste():
    (record,), _ = pennfudan_records(1)
    image = cv2.imread(record["file_name"])
    h, w = image.shape[:2]
    box = record["annotations"][0]["bbox"]
    crop = box_crop(image, box, PseudoMaskConfig())
    ch, cw = crop.image.shape[:2]
    inside = box_mask(crop.box, ch, cw)
    assert crop.take(box_mask(box, h, w)).shape == (ch, cw)
    # image -> crop -> image of the box is the box again, up to a one-pixel rim of resampling
    back = crop.paste(crop.take(box_mask(box, h, w)))
    assert _iou(back, box_mask(box, h, w)) > 0.97
    assert _iou(crop.take(box_mask(box, h, w)), inside) > 0.97


def test_repair_keeps_masks_that_reach_every_side_and_empty_masks():
    (record,), _ = pennfudan_records(1)
    image = cv2.imread(record["file_name"])
    h, w = image.shape[:2]
    box = record["annotations"][0]["bbox"]
    cfg = PseudoMaskConfig()
    full = box_mask(box, h, w)
    assert repair_tightness(image, box, full, cfg) is full
    empty = np.zeros((h, w), bool)
    assert repair_tightness(image, box, empty, cfg) is empty


def test_repair_grows_consensus_to_the_box_sides_on_pennfudan():
    """On real pedestrians the medoid often loses the head or the feet; the repair only adds
    pixels, inside the box, closes the gaps, and raises the mean IoU with the ground truth."""
    records, gts = pennfudan_records(8)
    plain_cfg = dataclasses.replace(PseudoMaskConfig(), tightness_repair=False)
    plain, repaired, gaps_before, gaps_after, n_grown = [], [], [], [], 0
    for i, (record, gt_masks) in enumerate(zip(records, gts)):
        image = cv2.imread(record["file_name"])
        h, w = image.shape[:2]
        boxes = np.array([a["bbox"] for a in record["annotations"]])
        seeds = [i * 100 + j for j in range(len(boxes))]
        before = pseudo_masks_for_image(image, boxes, "consensus", seeds, plain_cfg)
        after = pseudo_masks_for_image(image, boxes, "consensus", seeds)
        for b, a, box, gt in zip(before, after, boxes, gt_masks):
            assert (a.mask <= box_mask(box, h, w)).all()
            assert a.box_agreement >= b.box_agreement - 1e-9
            if b.fallback is None:  # the medoid itself (not the ellipse for an invalid one)
                assert (a.mask >= b.mask).all()
                n_grown += int(a.mask.sum() > b.mask.sum())
                gaps_before.append(max(_gaps(b.mask, box)))
                gaps_after.append(max(_gaps(a.mask, box)))
            plain.append(_iou(b.mask, gt))
            repaired.append(_iou(a.mask, gt))
    assert n_grown >= 3, n_grown
    assert np.mean(gaps_after) < np.mean(gaps_before)
    assert np.mean(repaired) > np.mean(plain) + 0.005, (np.mean(repaired), np.mean(plain))
