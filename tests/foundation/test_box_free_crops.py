"""Box-free crops (negative images of a box-annotated dataset) on real PennFudan photos."""

import itertools
import os

import cv2
import numpy as np
import pytest

from conftest import register_dataset, shared_path

from weaksup.data.datasets.box_free_crops import (
    largest_free_rectangle,
    load_box_free_crops,
)


def _brute_force(width, height, boxes, min_side):
    """The largest free rectangle by testing every integer rectangle (small images only)."""
    occupied = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        occupied[int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
    best = 0
    for x0, x1 in itertools.combinations(range(width + 1), 2):
        for y0, y1 in itertools.combinations(range(height + 1), 2):
            if min(x1 - x0, y1 - y0) >= min_side and not occupied[y0:y1, x0:x1].any():
                best = max(best, (x1 - x0) * (y1 - y0))
    return best


def test_largest_free_rectangle_exact_values():
    # no box: the whole image; the short side below min_side: none
    assert largest_free_rectangle(50, 40, [], 10) == (0, 0, 50, 40)
    assert largest_free_rectangle(50, 40, [], 41) is None
    # one box: the 20 x 40 strips at its sides (800 px, the first one on a tie) beat the
    # 50 x 15 strip below it; a shorter box leaves a 50 x 20 strip (1,000 px)
    assert largest_free_rectangle(50, 40, [[20, 10, 30, 25]], 5) == (0, 0, 20, 40)
    assert largest_free_rectangle(50, 40, [[20, 10, 30, 20]], 5) == (0, 20, 50, 40)
    # fractional corners cover the pixels they touch: x 19.5 and 30.2 leave 19-px side strips
    assert largest_free_rectangle(50, 40, [[19.5, 10, 30.2, 25]], 5) == (0, 0, 19, 40)
    assert largest_free_rectangle(50, 40, [[0, 0, 50, 40]], 1) is None


@pytest.mark.parametrize("seed", range(4))
def test_largest_free_rectangle_is_the_largest(seed):
    rng = np.random.default_rng(seed)
    w, h = 14, 11
    xy = rng.uniform(0, [w, h, w, h], size=(3, 4))
    boxes = np.c_[np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])]
    rect = largest_free_rectangle(w, h, boxes, 2)
    best = _brute_force(w, h, boxes, 2)
    assert (rect is None and best == 0) or (rect[2] - rect[0]) * (rect[3] - rect[1]) == best


def test_box_free_crops_of_real_photos(tmp_path):
    from weaksup.data.datasets.pennfudan import load_pennfudan

    records = load_pennfudan(str(shared_path("PennFudanPed")), "train")[:3]
    register_dataset("bfc_t_base", records, ["person"])
    out = load_box_free_crops("bfc_t_base", str(tmp_path), 96)
    # FudanPed00001's two pedestrians stand below y = 170: the strip above them, full width
    assert [(r["image_id"], r["width"], r["height"]) for r in out][0] == ("0_free", 559, 170)
    for crop, r in zip(out, records):
        assert crop["annotations"] == [] and min(crop["width"], crop["height"]) >= 96
        x0, y0, x1, y1 = map(int, crop["file_name"][:-4].rsplit("_", 4)[1:])
        assert all(
            a["bbox"][2] <= x0 or a["bbox"][0] >= x1 or a["bbox"][3] <= y0 or a["bbox"][1] >= y1
            for a in r["annotations"]
        )
        image = cv2.imread(r["file_name"])
        np.testing.assert_array_equal(cv2.imread(crop["file_name"]), image[y0:y1, x0:x1])
    # a rerun reuses the files; an unreadable source image is an error naming it
    mtime = [os.path.getmtime(c["file_name"]) for c in out]
    again = load_box_free_crops("bfc_t_base", str(tmp_path), 96)
    assert [c["file_name"] for c in again] == [c["file_name"] for c in out]
    assert mtime == [os.path.getmtime(c["file_name"]) for c in out]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    register_dataset("bfc_t_bad", [{**records[0], "file_name": str(bad)}], ["person"])
    with pytest.raises(ValueError, match=r"bad\.png' \(image_id=0\): not a readable image file"):
        load_box_free_crops("bfc_t_bad", str(tmp_path / "o"), 96)
