"""weaksup's dense CRF against fully connected mean-field references on a real crop (issue 16,
item 6): a direct O(N^2) numpy implementation of Krähenbühl & Koltun's update, and the
permutohedral-lattice code of ``pydensecrf`` (``benchmarks/dense_crf.py`` compares whole images)."""

import numpy as np
import pytest
import torch

from weaksup.modeling.dense_crf import dense_crf

BILATERAL = (0.05, 5.0, 20.0)  # w, s_xy, s_rgb: weights small enough not to saturate Q
POSITIONAL = (0.05, 3.0)


def _crop_and_scores(shared_data, classes=3):
    import cv2

    path = sorted((shared_data("grabcut13") / "imgs").iterdir())[0]
    image = cv2.imread(str(path))[100:124, 150:182, ::-1].astype(np.float32)  # RGB, 24 x 32
    rng = np.random.RandomState(0)
    logits = rng.normal(0, 1, (classes,) + image.shape[:2]).astype(np.float32)
    logits = np.stack([cv2.GaussianBlur(c, (0, 0), 2) for c in logits]) * 3
    log_probs = logits - np.log(np.exp(logits).sum(0))
    return np.ascontiguousarray(image), log_probs.astype(np.float32)


def exact_mean_field(log_probs, image, iterations, bilateral, positional):
    """Q <- softmax(log p + sum_{j != i} k(i, j) Q_j), k over all pixel pairs (Potts model)."""
    c, h, w = log_probs.shape
    (w_bi, s_xy, s_rgb), (w_pos, s_pos) = bilateral, positional
    ys, xs = np.mgrid[:h, :w]
    pos = np.stack([ys.ravel(), xs.ravel()], 1).astype(np.float64)
    rgb = image.reshape(-1, 3).astype(np.float64)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    c2 = ((rgb[:, None] - rgb[None]) ** 2).sum(-1)
    k = w_bi * np.exp(-d2 / (2 * s_xy**2) - c2 / (2 * s_rgb**2)) + w_pos * np.exp(
        -d2 / (2 * s_pos**2)
    )
    np.fill_diagonal(k, 0)
    unary = log_probs.reshape(c, -1).astype(np.float64)
    q = np.exp(unary) / np.exp(unary).sum(0)
    for _ in range(iterations):
        m = unary + q @ k.T
        q = np.exp(m - m.max(0))
        q /= q.sum(0)
    return q.reshape(c, h, w)


def _weaksup(log_probs, image, iterations, radius, dilation=1):
    return (
        dense_crf(
            torch.from_numpy(log_probs),
            torch.from_numpy(image.transpose(2, 0, 1).copy()),
            iterations=iterations,
            bilateral=BILATERAL,
            positional=POSITIONAL,
            radius=radius,
            dilation=dilation,
        )
        .double()
        .numpy()
    )


def test_full_window_equals_exact_mean_field(shared_data):
    image, log_probs = _crop_and_scores(shared_data)
    exact = exact_mean_field(log_probs, image, 2, BILATERAL, POSITIONAL)
    ours = _weaksup(log_probs, image, 2, radius=32)  # the window covers the whole crop
    assert np.abs(ours - exact).max() < 1e-4  # float32 sums of 768 terms
    # the pairwise term matters here: the marginals moved, some are still uncertain
    assert np.abs(exact - np.exp(log_probs)).max() > 0.3
    assert ((exact > 0.1) & (exact < 0.9)).mean() > 0.05
    truncated = _weaksup(log_probs, image, 2, radius=2, dilation=2)  # reach 4 px < s_xy * 2
    assert np.abs(truncated - exact).max() > 1e-3


def test_agrees_with_pydensecrf(shared_data):
    dcrf = pytest.importorskip("pydensecrf.densecrf", reason="pydensecrf2 not installed")
    image, log_probs = _crop_and_scores(shared_data)
    c, h, w = log_probs.shape
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(-log_probs.reshape(c, -1)))
    norm = dcrf.NO_NORMALIZATION  # the textbook kernel sum, as weaksup's
    crf.addPairwiseGaussian(
        sxy=POSITIONAL[1], compat=POSITIONAL[0], kernel=dcrf.DIAG_KERNEL, normalization=norm
    )
    crf.addPairwiseBilateral(
        sxy=BILATERAL[1],
        srgb=BILATERAL[2],
        rgbim=image.astype(np.uint8),
        compat=BILATERAL[0],
        kernel=dcrf.DIAG_KERNEL,
        normalization=norm,
    )
    reference = np.array(crf.inference(10)).reshape(c, h, w).argmax(0)
    ours = _weaksup(log_probs, image, 10, radius=32).argmax(0)
    exact = exact_mean_field(log_probs, image, 10, BILATERAL, POSITIONAL).argmax(0)
    # The lattice only approximates the Gaussian sums (marginals differ by up to 0.25 here), so
    # the labels agree as well as the exact computation's do, not everywhere.
    assert (ours == exact).all()
    assert (ours == reference).mean() >= 0.95
    unary = log_probs.argmax(0)
    assert (unary == reference).mean() < 0.9  # the CRF changed labels that both agree on
