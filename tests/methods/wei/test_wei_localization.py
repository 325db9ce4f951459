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


def test_rough_mask_assembly_follows_eq5_on_real_candidates(tmp_path):
    """Step 3 of stage 2 on a real PennFudan image: maps from the refined candidates (Eq. 2),
    v_r = s_r^k + mean of p^k over r (Eq. 5), the top 10 regions per label, overlaps to the
    label with the larger map value, the rest background: checked against a brute force on the
    decoded candidate masks."""
    from weaksup.methods.wei.stage2 import _image_maps_and_masks
    from weaksup.pseudo.candidate_cache import save_candidates

    image = cv2.imread(str(sorted(shared_path("PennFudanPed", "PNGImages").iterdir())[0]))
    image = cv2.resize(image, (80, 64), interpolation=cv2.INTER_AREA)
    cands = candidate_segments(image, num_candidates=40, max_side=64)
    save_candidates(cands, str(tmp_path / "props.npz"))
    rng = np.random.RandomState(0)
    labels = [3, 7]
    scores = rng.dirichlet(np.ones(10), size=len(cands)).astype(np.float32)
    np.savez(tmp_path / "scores.npz", scores=scores)
    refined = {3: [0, 4, 9, 12], 7: [2, 4, 20]}
    item = {
        "proposal_file": str(tmp_path / "props.npz"),
        "score_file": str(tmp_path / "scores.npz"),
        "labels": labels,
        "refined": refined,
        "all": refined,
        "maps": str(tmp_path / "maps.npz"),
        "rough_mask": str(tmp_path / "mask.png"),
    }
    _image_maps_and_masks(item, top_k=10)
    got = cv2.imread(item["rough_mask"], cv2.IMREAD_UNCHANGED)

    masks = cands.masks()  # (K, H, W) bool, decoded
    h, w = masks.shape[1:]
    maps = np.zeros((3, h, w))
    for l, k in enumerate(labels):
        maps[l + 1] = masks[refined[k]].mean(axis=0)
    with np.load(item["maps"]) as z:
        np.testing.assert_allclose(z["maps"][1:].astype(np.float64), maps[1:], atol=1e-3)
    regions = []
    for l, k in enumerate(labels):
        v = [scores[r, k] + maps[l + 1][masks[r]].mean() for r in range(len(cands))]
        top = np.argsort(-np.array(v), kind="stable")[:10]
        regions.append(masks[top].any(axis=0))
    expected = np.zeros((h, w), np.uint8)
    both = regions[0] & regions[1]
    expected[regions[0]] = labels[0] + 1
    expected[regions[1] & ~regions[0]] = labels[1] + 1
    expected[both & (maps[2] > maps[1])] = labels[1] + 1
    assert both.any() and (regions[0] ^ regions[1]).any()  # the overlap rule is exercised
    np.testing.assert_array_equal(got, expected)
    assert (got == 0).any() and set(np.unique(got)) <= {0, 4, 8}


def test_refine_keeps_the_candidates_closest_to_the_other_images(tmp_path):
    """Stage 2 step 2 on score files: candidates per label (confidence > 0.5, else the most
    confident 2), then Eq. 1 across the images with that label: each image keeps the ceil(half) of
    its candidates with the smallest mean squared distance to the other images' candidates
    (checked by brute force on the raw features: PCA at 100 % energy preserves distances)."""
    from weaksup.methods.wei.stage2 import refine

    rng = np.random.RandomState(0)
    centre = rng.normal(size=16) * 3
    records, feats = [], {}
    for i in range(3):
        scores = rng.uniform(0, 0.4, size=(12, 4))
        scores[[1, 4, 6, 9], 2] = [0.9, 0.8, 0.7, 0.6]  # 4 candidates of class 2
        index = np.array([1, 4, 6, 9])
        # two tight object-like candidates near the shared centre, two far parts
        f = np.stack([centre + rng.normal(size=16) * s for s in (0.1, 4.0, 0.2, 5.0)])
        feats[f"im_{i}"] = f
        np.savez(tmp_path / f"im_{i}.npz", scores=scores, feature_index=index, features=f)
        records.append({"image_id": f"im:{i}", "image_labels": [2]})
    out = refine(records, str(tmp_path), 0.5, 2, 1.0, 0.5, "ascending")
    for i in range(3):
        key = f"im_{i}"
        assert out["all"][key] == {"2": [1, 4, 6, 9]}  # by confidence
        others = [feats[f"im_{j}"] for j in range(3) if j != i]
        dis = [np.mean([((x - o) ** 2).sum(axis=1).mean() for o in others]) for x in feats[key]]
        expected = [[1, 4, 6, 9][j] for j in np.argsort(dis)[:2]]
        assert out["refined"][key]["2"] == expected
        assert sorted(expected) == [1, 6]  # the two near the centre
    assert out["pca"]["dims_in"] == 16 and out["pca"]["energy"] == pytest.approx(1.0)
