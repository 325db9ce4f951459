"""Pseudo-mask geometry, fallbacks, merge ("smaller object better") and the engine's input rules."""

import numpy as np
import pytest

from weaksup.pseudo import (
    METHODS,
    PseudoMaskConfig,
    box_agreement,
    box_mask,
    ellipse_mask,
    merge_smaller_wins,
    per_box_method,
    pseudo_masks_for_image,
    tight_box,
    with_fallback,
)


def test_box_and_ellipse_exact_area_and_tight_box():
    box = [2, 3, 12, 9]  # 10 x 6 pixels
    m = box_mask(box, 20, 20)
    assert m.sum() == 60 and tight_box(m).tolist() == [2, 3, 12, 9]
    e = ellipse_mask(box, 20, 20)
    assert e.sum() < 60 and (e <= m).all() and tight_box(e).tolist() == [2, 3, 12, 9]
    assert abs(e.sum() - np.pi * 5 * 3) < 6  # pi a b, up to rasterisation


def test_merge_smaller_wins_exact():
    masks = np.zeros((3, 6, 6), bool)
    masks[0, :, :] = True  # area 36
    masks[1, 1:4, 1:4] = True  # area 9
    masks[2, 2:4, 2:5] = True  # area 6, overlaps mask 1 on 2x2
    out = merge_smaller_wins(masks)
    assert (out.sum(axis=0) <= 1).all() and (out <= masks).all()
    assert out[2].sum() == 6 and out[1].sum() == 9 - 4 and out[0].sum() == 36 - 5 - 6
    # tie: equal areas -> the lower index keeps the overlap
    tie = np.zeros((2, 4, 4), bool)
    tie[0, :2] = True
    tie[1, 1:3] = True
    out = merge_smaller_wins(tie)
    assert out[0, 1].all() and not out[1, 1].any()


def test_engine_merge_then_agreement():
    image = np.zeros((40, 40, 3), np.uint8)
    boxes = [[0, 0, 40, 40], [10, 10, 20, 20]]
    res = pseudo_masks_for_image(image, boxes, "box", [0, 1], PseudoMaskConfig(merge_smaller=True))
    assert res[1].mask.sum() == 100 and res[0].mask.sum() == 1600 - 100
    assert not (res[0].mask & res[1].mask).any()
    # the big box keeps its tight box despite the hole: agreement 1 (computed after merging)
    assert res[0].box_agreement == 1.0 and res[1].box_agreement == 1.0


def test_drop_threshold_is_a_config_value():
    """Hybrid's 0.5 and BoxCaseg's 0.95 are the same rule with different thresholds."""
    image = np.zeros((50, 50, 3), np.uint8)
    box = [0, 0, 50, 50]
    half = np.zeros((50, 50), bool)
    half[:, :45] = True  # tight box IoU 0.9
    assert box_agreement(half, box) == pytest.approx(0.9)
    METHODS["_test_fixed"] = lambda im, b, s, c: [(half.copy(), None)]
    try:
        (hy,) = pseudo_masks_for_image(image, [box], "_test_fixed", [0], PseudoMaskConfig())
        (bc,) = pseudo_masks_for_image(
            image, [box], "_test_fixed", [0], PseudoMaskConfig(valid_threshold=0.95)
        )
    finally:
        del METHODS["_test_fixed"]
    assert hy.mask_valid and not bc.mask_valid and bc.mask.sum() == half.sum()  # kept, flagged


def test_fallback_recorded():
    box = [5, 5, 25, 15]
    m, fb = with_fallback(None, box, "ellipse", (30, 30))
    assert fb == "ellipse:failed" and (m == ellipse_mask(box, 30, 30)).all()
    m, fb = with_fallback(np.zeros((30, 30), bool), box, "box", (30, 30))
    assert fb == "box:empty" and (m == box_mask(box, 30, 30)).all()
    tiny = np.zeros((30, 30), bool)
    tiny[10, 10] = True
    assert with_fallback(tiny, box, "ellipse", (30, 30))[1] is None
    assert (
        with_fallback(tiny, box, "ellipse", (30, 30), valid_threshold=0.5)[1] == "ellipse:invalid"
    )


def test_per_box_method_fallbacks_and_seeds():
    """One wrapper turns a per-box function into a method: seeds pass through, None / empty /
    invalid masks are replaced as configured."""
    h, w = 30, 30
    tiny = np.zeros((h, w), bool)
    tiny[10, 10] = True
    outputs = {1: None, 2: np.zeros((h, w), bool), 3: tiny, 4: box_mask([5, 5, 25, 15], h, w)}
    method = per_box_method(lambda image, box, seed, cfg: outputs[seed])
    strict = per_box_method(lambda image, box, seed, cfg: outputs[seed], "box", True)
    image, boxes, seeds = np.zeros((h, w, 3), np.uint8), [[5, 5, 25, 15]] * 4, [1, 2, 3, 4]
    cfg = PseudoMaskConfig(fallback="ellipse")
    assert [fb for _, fb in method(image, boxes, seeds, cfg)] == [
        "ellipse:failed",
        "ellipse:empty",
        None,
        None,
    ]
    res = strict(image, boxes, seeds, cfg)
    assert [fb for _, fb in res] == ["box:failed", "box:empty", "box:invalid", None]
    assert (res[2][0] == box_mask(boxes[2], h, w)).all() and res[3][0] is outputs[4]


def test_engine_input_rules():
    image = np.full((30, 40, 3), 100, np.uint8)
    gray = image[:, :, 0]
    bgra = np.concatenate([image, np.zeros((30, 40, 1), np.uint8)], axis=2)
    ref = pseudo_masks_for_image(image, [[5, 5, 20, 20]], "ellipse", [0])[0].mask
    for converted in (gray, gray[:, :, None], bgra):
        assert (
            pseudo_masks_for_image(converted, [[5, 5, 20, 20]], "ellipse", [0])[0].mask == ref
        ).all()
    with pytest.raises(ValueError, match="uint8"):
        pseudo_masks_for_image(image.astype(np.float32), [[5, 5, 20, 20]], "box", [0])
    with pytest.raises(ValueError, match=r"\(30, 40, 2\)"):
        pseudo_masks_for_image(image[:, :, :2], [[5, 5, 20, 20]], "box", [0])
    with pytest.raises(ValueError, match="box 1"):
        pseudo_masks_for_image(image, [[0, 0, 5, 5], [9, 0, 3, 5]], "box", [0, 1])
    with pytest.raises(KeyError, match="unknown pseudo-mask method"):
        pseudo_masks_for_image(image, [[0, 0, 5, 5]], "nope", [0])
    # zero area, outside, and partly outside boxes
    boxes = [[5, 5, 5, 20], [50, 50, 60, 60], [30, 20, 60, 45]]
    res = pseudo_masks_for_image(image, boxes, "grabcut", [0, 1, 2])
    for r in res[:2]:
        assert not r.mask.any() and r.fallback == "empty_box" and not r.mask_valid
        assert r.box_agreement == 0.0
    assert res[2].mask.any() and (res[2].mask <= box_mask([30, 20, 40, 30], 30, 40)).all()
