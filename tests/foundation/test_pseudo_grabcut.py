"""GrabCut-family pseudo masks on real photographs (grabcut13, PennFudan)."""

import cv2
import numpy as np
import pytest

from weaksup.pseudo import (
    METHODS,
    PseudoMaskConfig,
    box_mask,
    grabcut_crop,
    pseudo_masks_for_image,
)
from weaksup.pseudo.grabcut import crop_geometry

from conftest import pennfudan_records, shared_path


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _grabcut13(name):
    root = shared_path("grabcut13")
    image = cv2.imread(str(root / "imgs" / f"{name}.jpg"))
    x1, y1, x2, y2 = (float(v) for v in (root / "bboxes" / f"{name}.txt").read_text().split())
    gt = cv2.imread(str(root / "seg_GT" / f"{name}.bmp"), cv2.IMREAD_GRAYSCALE) > 127
    return image, np.array([x1, y1, x2 + 1, y2 + 1]), gt


def test_crop_geometry_bounds():
    cfg = PseudoMaskConfig()
    for side in (4, 20, 100, 230, 600, 3000):
        margin, scale = crop_geometry(side, cfg)
        crop_side = (side + 2 * margin) * scale
        assert cfg.grabcut_min_side - 1e-6 <= crop_side <= cfg.grabcut_max_side + 1e-6
        assert margin * scale >= cfg.grabcut_min_background - 1e-6
        assert margin >= cfg.grabcut_margin * side - 1e-6


@pytest.mark.parametrize("name", ["llama", "teddy"])
def test_grabcut_beats_the_box_on_grabcut13(name):
    image, box, gt = _grabcut13(name)
    h, w = gt.shape
    mask = grabcut_crop(image, box, 0, PseudoMaskConfig())
    assert mask is not None and (mask <= box_mask(box, h, w)).all()
    assert _iou(mask, gt) > _iou(box_mask(box, h, w), gt) + 0.1


def test_seeds_make_results_order_independent():
    (record,), _ = pennfudan_records(1)
    image = cv2.imread(record["file_name"])
    boxes = np.array([a["bbox"] for a in record["annotations"]])
    seeds = [11, 22][: len(boxes)]
    first = pseudo_masks_for_image(image, boxes, "grabcut", seeds)
    # other calls in between, then the boxes in reverse order
    pseudo_masks_for_image(image, boxes, "grabcut", [5] * len(boxes))
    rev = pseudo_masks_for_image(image, boxes[::-1], "grabcut", seeds[::-1])[::-1]
    for a, b in zip(first, rev):
        assert np.array_equal(a.mask, b.mask)


def test_failed_grabcut_falls_back_and_is_recorded():
    """A box covering the whole image leaves full-image GrabCut no background: OpenCV fails."""
    image, _, _ = _grabcut13("teddy")
    h, w = image.shape[:2]
    (r,) = pseudo_masks_for_image(image, [[0, 0, w, h]], "grabcut_full", [0])
    assert r.fallback == "ellipse:failed" and r.mask.sum() > 0.7 * h * w
    assert r.box_agreement > 0.99 and not r.mask_valid  # a fallback is no segmentation


@pytest.mark.slow
@pytest.mark.parametrize("method", ["grabcut_ellipse", "grabcut_prior", "watershed", "consensus"])
def test_methods_beat_ellipse_and_box_on_pennfudan(method):
    records, gts = pennfudan_records(6)
    ious = {m: [] for m in (method, "ellipse", "box")}
    for i, (record, gt_masks) in enumerate(zip(records, gts)):
        image = cv2.imread(record["file_name"])
        boxes = np.array([a["bbox"] for a in record["annotations"]])
        for m in ious:
            res = pseudo_masks_for_image(image, boxes, m, [i * 100 + j for j in range(len(boxes))])
            ious[m] += [_iou(r.mask, g) for r, g in zip(res, gt_masks)]
    mean = {m: np.mean(v) for m, v in ious.items()}
    assert mean[method] > mean["ellipse"] > mean["box"], mean


def test_all_methods_registered():
    assert {"box", "ellipse", "grabcut", "grabcut_full", "grabcut_ellipse", "grabcut_prior"} <= set(
        METHODS
    )
    assert {"watershed", "candidates", "consensus"} <= set(METHODS)
