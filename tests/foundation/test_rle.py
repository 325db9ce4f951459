"""RLE checks: compressed counts decoded exactly as pycocotools, sizes and totals checked."""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from weaksup.utils.rle import compressed_rle_counts, encode_mask, rle_problem

from conftest import pennfudan_records, shared_path


def _runs(mask):
    """Run lengths of the column-major mask, starting with zeros (the COCO convention)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0] + runs if flat[0] else runs


def test_compressed_counts_match_pycocotools():
    """On real instance masks (PennFudan PedMasks) and their complements."""
    from PIL import Image

    masks = np.asarray(
        Image.open(shared_path("PennFudanPed", "PedMasks", "FudanPed00001_mask.png"))
    )
    for k in range(0, masks.max() + 1):
        for mask in (masks == k, masks != k):
            rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
            assert compressed_rle_counts(rle["counts"]).tolist() == _runs(mask)
            assert rle_problem(rle, *mask.shape) == ""


def test_problems_named():
    h, w = 10, 20
    mask = np.zeros((h, w), np.uint8)
    mask[2:5, 3:9] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    assert "size [10, 20] in an image of size [10, 21]" in rle_problem(rle, 10, 21)
    short = {"size": [h, w], "counts": _runs(mask.astype(bool))[:-1]}
    assert rle_problem(short, h, w).startswith("RLE counts add up to")
    assert rle_problem({"size": [h, w], "counts": b"W14"}, h, w).startswith("RLE counts add up")
    assert "middle of a number" in rle_problem({"size": [h, w], "counts": "W1g"}, h, w)
    assert "non-negative" in rle_problem({"size": [h, w], "counts": [100, -1, 101]}, h, w)
    assert "valid 'size'" in rle_problem({"counts": [200]}, h, w)


@pytest.mark.parametrize("counts", [[23, 6, 4, 6, 1], [23, 6, 4, 6, 1000]])
def test_pycocotools_alone_does_not_refuse_short_counts(counts):
    """Why the check exists: pycocotools decodes short counts into a mask of the declared size
    (pixels past the runs uninitialised) or fails without naming anything."""
    try:
        mask = mask_util.decode(mask_util.frPyObjects({"size": [10, 20], "counts": counts}, 10, 20))
        assert mask.shape == (10, 20)
    except ValueError as e:
        assert "Invalid RLE" in str(e)
    assert rle_problem({"size": [10, 20], "counts": counts}, 10, 20)


def test_encode_mask_is_coco_json_rle():
    _, masks = pennfudan_records(1)
    mask = masks[0][0]
    rle = encode_mask(mask)
    assert set(rle) == {"size", "counts"} and rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], str) and json.loads(json.dumps(rle)) == rle
    assert (mask_util.decode(rle).astype(bool) == mask).all()
    assert rle_problem(rle, *mask.shape) == ""
