"""Wei et al. stage-2 algorithms (weaksup.methods.wei.localization / proposals) on hand-built inputs
with exact expected results, and on real image crops."""

import numpy as np
import pytest
import cv2

from conftest import shared_path

from weaksup.pseudo import candidate_segments
from weaksup.methods.wei.localization import (
    cross_image_refinement,
    fit_pca,
    localization_maps,
    pca_project,
    region_means,
    rough_mask,
    select_candidates,
    soft_target,
    top_regions,
)
from weaksup.pseudo.candidate_cache import load_candidates
from weaksup.pseudo.proposals import (
    PerImageFileJob,
    file_key,
    make_proposal_file,
    select_hypotheses,
)


def test_select_candidates_threshold_and_order():
    scores = np.array([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    c = select_candidates(scores, [0, 1])
    assert c[0].tolist() == [2, 0]  # > 0.5 only (0.5 excluded), most confident first
    assert c[1].tolist() == [1]


def _refinement_features():
    """Three images; in each, candidates 0 and 2 sit near a shared point (tight object boxes),
    candidates 1 and 3 are far away in image-specific directions (parts / background)."""
    rng = np.random.RandomState(0)
    common = np.array([5.0, 5.0, 0.0, 0.0])
    feats = {}
    for i in range(3):
        outlier_dir = np.eye(4)[[2, 3, 2][i]] * (20 + 10 * i) - np.eye(4)[i % 2] * 15
        f = np.stack(
            [
                common + 0.1 * rng.randn(4),
                common + outlier_dir,
                common + 0.1 * rng.randn(4),
                common - outlier_dir,
            ]
        )
        feats[f"img{i}"] = f
    return feats


def test_refinement_keeps_the_consistent_half():
    feats = _refinement_features()
    kept = cross_image_refinement(feats, keep_fraction=0.5, order="ascending")
    assert {k: sorted(v.tolist()) for k, v in kept.items()} == {f"img{i}": [0, 2] for i in range(3)}
    literal = cross_image_refinement(feats, keep_fraction=0.5, order="descending")
    assert {k: sorted(v.tolist()) for k, v in literal.items()} == {
        f"img{i}": [1, 3] for i in range(3)
    }


def test_refinement_distance_is_eq1():
    """The closed form equals Eq. 1 computed literally (pairwise, per other image)."""
    rng = np.random.RandomState(1)
    feats = {i: rng.randn(n, 3) for i, n in enumerate([2, 5, 3])}
    kept = cross_image_refinement(feats, keep_fraction=1.0)
    for i, x in feats.items():
        others = [feats[j] for j in feats if j != i]
        dis = [np.mean([((xj - o) ** 2).sum(1).mean() for o in others]) for xj in x]
        assert kept[i].tolist() == np.argsort(dis, kind="stable").tolist()


def test_refinement_edge_cases():
    feats = {"a": np.zeros((3, 2)), "b": np.zeros((0, 2))}
    kept = cross_image_refinement(feats, confidences={"a": np.array([0.6, 0.9, 0.7])})
    # one image only: no cross-image evidence, the most confident half (ceil) is kept
    assert kept["a"].tolist() == [1, 2] and kept["b"].tolist() == []
    with pytest.raises(ValueError, match="refinement order"):
        cross_image_refinement(feats, order="random")


def test_pca_keeps_98_percent_energy_on_real_patches(shared_data):
    image = cv2.imread(str(shared_data("PennFudanPed", "PNGImages", "FudanPed00001.png")))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[100:228, 100:228].astype(np.float64)
    patches = np.stack(
        [gray[y : y + 8, x : x + 8].ravel() for y in range(0, 120, 4) for x in range(0, 120, 4)]
    )
    mean, comps = fit_pca(patches, 0.98)
    centred = patches - patches.mean(0)
    total = (centred**2).sum()
    kept = (pca_project(patches, mean, comps) ** 2).sum() / total
    assert kept >= 0.98
    assert comps.shape[1] < patches.shape[1]  # it does reduce the 64 dims
    fewer = ((centred @ comps[:, :-1]) ** 2).sum() / total
    assert fewer < 0.98  # and keeps the fewest components that reach 98 %
    np.testing.assert_allclose(comps.T @ comps, np.eye(comps.shape[1]), atol=1e-9)


def test_localization_maps_and_background():
    a1 = np.zeros((4, 4), bool)
    a1[:2, :2] = True
    a2 = np.zeros((4, 4), bool)
    a2[:2, :] = True
    b = np.zeros((4, 4), bool)
    b[1:, :2] = True
    maps = localization_maps([np.stack([a1, a2]), b[None], np.zeros((0, 4, 4), bool)], 4, 4)
    assert maps.shape == (4, 4, 4)
    expected_a = np.array([[1, 1, 0.5, 0.5], [1, 1, 0.5, 0.5], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(maps[1], expected_a)
    np.testing.assert_allclose(maps[2], b.astype(float))
    np.testing.assert_allclose(maps[3], 0)  # a label without candidates: black map
    # Eq. 2: max(0, 1 - sum); at (1, 0) A and B both 1 -> background 0, not -1
    expected_bg = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0, 0, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_allclose(maps[0], expected_bg)
    target = soft_target(maps)
    np.testing.assert_allclose(target.sum(0), 1, atol=1e-6)
    np.testing.assert_allclose(target[:, 1, 0], [0, 0.5, 0.5, 0])  # A and B share (1, 0)
    np.testing.assert_allclose(target[:, 0, 2], [0.5, 0.5, 0, 0])


def test_rough_mask_overlap_rule():
    maps = np.zeros((3, 3, 4), np.float32)
    maps[1] = [[0.9, 0.9, 0.2, 0.0], [0.9, 0.4, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0]]
    maps[2] = [[0.1, 0.5, 0.8, 0.0], [0.1, 0.4, 0.8, 0.0], [0.0, 0.0, 0.0, 0.0]]
    maps[0] = np.maximum(0, 1 - maps[1:].sum(0))
    mask_a = np.zeros((3, 4), bool)
    mask_a[:2, :3] = True
    mask_b = np.zeros((3, 4), bool)
    mask_b[:3, 1:3] = True
    out = rough_mask(maps, [mask_a, mask_b], [4, 7])  # classes 4 and 7 -> values 5 and 8
    expected = np.array([[5, 5, 8, 0], [5, 5, 8, 0], [0, 8, 8, 0]], np.uint8)
    # overlap (0,1): A 0.9 > B 0.5; (0,2), (1,2): B wins; (1,1): tie 0.4 -> first label (A);
    # (2,1), (2,2): B only, although both maps are 0 there; (*, 3): nobody -> background
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


@pytest.fixture(scope="module")
def real_candidates():
    image = cv2.imread(str(shared_path("PennFudanPed", "PNGImages", "FudanPed00001.png")))
    return image, candidate_segments(image, num_candidates=30, max_side=64)


def test_region_means_equal_dense_means(real_candidates):
    image, cs = real_candidates
    rng = np.random.RandomState(0)
    value = cv2.resize(rng.rand(8, 8), image.shape[1::-1]).astype(np.float32)
    dense = np.array([value[m].mean() for m in cs.masks()])
    np.testing.assert_allclose(region_means(cs, value), dense, rtol=1e-5)
    v = np.array([0.2, 0.9, 0.5, 0.9])
    assert top_regions(v, 3).tolist() == [1, 3, 2]


def test_proposal_file_is_made_once(tmp_path, real_candidates):
    image, cs = real_candidates
    path = str(tmp_path / "p.npz")
    calls = []

    def loader():
        calls.append(1)
        return image

    h, w = image.shape[:2]
    make_proposal_file(loader, "x.png", h, w, path, num_candidates=30, max_side=64)
    make_proposal_file(loader, "x.png", h, w, path, num_candidates=30, max_side=64)
    assert len(calls) == 1  # the second call reads the file
    again = load_candidates(path)
    np.testing.assert_array_equal(again.masks(), cs.masks())
    np.testing.assert_allclose(again.boxes(), cs.boxes())
    with pytest.raises(ValueError, match="candidates are for"):
        make_proposal_file(loader, "x.png", h + 1, w, path, num_candidates=30, max_side=64)


def test_select_hypotheses_nms_and_filter():
    boxes = np.array(
        [
            [0, 0, 100, 100],  # kept
            [0, 0, 100, 95],  # IoU 0.95 with the first: skipped
            [0, 0, 10, 10],  # area 100 < 900: only used when too few remain
            [200, 0, 300, 100],  # kept
            [0, 200, 500, 220],  # aspect ratio 25 > 4: filtered
        ],
        float,
    )
    assert select_hypotheses(boxes, 2).tolist() == [0, 3]
    assert select_hypotheses(boxes, 4).tolist() == [0, 3, 2, 4]


def _touch(item):
    with open(item, "w") as f:
        f.write("x")


def test_per_image_file_job_resumes(tmp_path):
    items = [str(tmp_path / f"{i}.txt") for i in range(5)]
    _touch(items[1])
    job = PerImageFileJob(_touch, lambda p: p, "test")
    assert job.run(items, num_workers=2, progress=False) == 4
    assert all((tmp_path / f"{i}.txt").is_file() for i in range(5))
    assert job.run(items, num_workers=2, progress=False) == 0
    assert file_key("pennfudan_train:12") == "pennfudan_train_12"
