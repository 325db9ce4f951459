"""MCG-style candidate segments, the MCG .mat reader and BoxSup's E_o choice (ECSSD photos)."""

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from weaksup.pseudo import (
    CandidateSet,
    best_candidate_for_box,
    candidate_segments,
    load_mcg_mat,
    pseudo_masks_for_image,
    tight_box,
)

from conftest import shared_path


def _ecssd(stem):
    root = shared_path("ECSSD")
    image = cv2.imread(str(root / "images" / f"{stem}.jpg"))
    gt = cv2.imread(str(root / "ground_truth_mask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
    return image, gt


def _ious(masks, gt):
    inter = (masks & gt).reshape(len(masks), -1).sum(1)
    return inter / (masks | gt).reshape(len(masks), -1).sum(1)


@pytest.mark.parametrize("stem", ["0003", "0006", "0008"])
def test_candidates_cover_the_salient_object(stem):
    image, gt = _ecssd(stem)
    cands = candidate_segments(image, num_candidates=1000)
    masks = cands.masks()
    assert len(cands) == 1000 and masks.shape == (1000,) + gt.shape and masks.dtype == bool
    assert masks.reshape(1000, -1).any(axis=1).all()
    assert (np.diff(cands.scores) <= 0).all()  # ranked
    assert len({m.tobytes() for m in np.packbits(masks, axis=-1)}) == 1000  # deduplicated
    assert _ious(masks, gt).max() > 0.7
    # tight boxes from superpixel boxes equal the decoded masks' tight boxes
    for k in (0, 500, 999):
        assert cands.boxes()[k].tolist() == tight_box(masks[k]).tolist()


def test_eo_picks_the_best_tight_box_and_method_runs():
    image, gt = _ecssd("0003")
    cands = candidate_segments(image, num_candidates=300)
    box = tight_box(gt)
    k = best_candidate_for_box(cands, box)
    cb = cands.boxes()
    ious = [
        max(0, min(b[2], box[2]) - max(b[0], box[0]))
        * max(0, min(b[3], box[3]) - max(b[1], box[1]))
        for b in cb
    ]
    areas = (cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1])
    box_iou = np.array(ious) / (areas + (box[2] - box[0]) * (box[3] - box[1]) - np.array(ious))
    assert box_iou[k] == pytest.approx(box_iou.max())
    (r,) = pseudo_masks_for_image(image, [box], "candidates", [0])
    # clipping the chosen candidate to the box can only raise its tight-box IoU
    assert r.fallback is None and r.box_agreement >= box_iou.max() - 1e-9


def test_load_mcg_mat_roundtrip(tmp_path):
    sp = np.array([[1, 1, 2], [3, 3, 2]], dtype=np.uint32)
    labels = np.empty((3, 1), dtype=object)
    labels[0, 0], labels[1, 0], labels[2, 0] = np.array([[2]]), np.array([[1, 3]]), np.array([[1]])
    path = tmp_path / "im.mat"
    savemat(path, {"superpixels": sp, "labels": labels, "scores": np.array([[0.2], [0.9], [0.5]])})
    cands = load_mcg_mat(str(path))
    assert isinstance(cands, CandidateSet) and len(cands) == 3
    assert cands.scores.tolist() == [0.9, 0.5, 0.2]  # sorted by score
    masks = cands.masks()
    assert masks[0].tolist() == [[True, True, False], [True, True, False]]  # ids 1 and 3
    assert masks[1].tolist() == [[True, True, False], [False, False, False]]
    assert masks[2].tolist() == [[False, False, True], [False, False, True]]
    assert cands.boxes().tolist() == [[0, 0, 2, 2], [0, 0, 2, 1], [2, 0, 3, 2]]


def test_load_mcg_mat_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.mat"
    savemat(bad, {"superpixels": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"bad\.mat.*lacks"):
        load_mcg_mat(str(bad))
    junk = tmp_path / "junk.mat"
    junk.write_text("not a mat file")
    with pytest.raises(ValueError, match=r"junk\.mat"):
        load_mcg_mat(str(junk))
