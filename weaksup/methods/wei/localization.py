"""Localization maps and rough masks from image-level labels (Wei et al. Sec. 3.1-3.3).

Plain numpy: the HCP network's per-proposal scores and penultimate features come in as arrays.

* :func:`select_candidates`: per ground-truth label, the proposals whose softmax confidence of
  that label exceeds 0.5 (Sec. 3.1), most confident first;
* :class:`PCAMoments` / :class:`CrossImageRefinement`: PCA keeping 98 % of the energy, then the
  average squared distance of each candidate to the candidates of the other images with the same
  label (Eq. 1); half of each image's candidates are kept (Sec. 3.2). Both stream: their memory
  does not grow with the number of candidates (:func:`fit_pca` / :func:`cross_image_refinement`
  are the in-memory forms);
* :func:`localization_maps`: per label the mean of the kept candidates' masks, background
  ``max(0, 1 - sum)`` (Eq. 2); :func:`soft_target` normalises them across channels (Eq. 4);
* :func:`region_means` and :func:`rough_mask`: Eq. 5's confidence ``v_r = s_r^k + mean_r p^k``
  and the overlap rule of Sec. 3.3.2.
"""

import math
from typing import Dict, Hashable, Mapping, Sequence, Tuple

import numpy as np

from weaksup.pseudo.candidates import CandidateSet

__all__ = [
    "REFINE_ORDERS",
    "CrossImageRefinement",
    "PCAMoments",
    "cross_image_refinement",
    "fit_pca",
    "localization_maps",
    "pca_project",
    "region_means",
    "rough_mask",
    "select_candidates",
    "soft_target",
    "top_regions",
]

# "ascending": keep the candidates closest on average to the other images' (default, see
# cross_image_refinement); "descending": the paper's literal wording.
REFINE_ORDERS = ("ascending", "descending")


def select_candidates(
    scores: np.ndarray, labels: Sequence[int], threshold: float = 0.5
) -> Dict[int, np.ndarray]:
    """Sec. 3.1: for each ground-truth label ``k`` the indices of the proposals with softmax
    confidence ``scores[:, k] > threshold``, sorted by that confidence, highest first.

    Args:
        scores: ``(K, C)`` per-proposal softmax scores of the C object classes.
        labels: the image's ground-truth class indices.
    """
    out = {}
    for k in labels:
        idx = np.flatnonzero(scores[:, k] > threshold)
        out[int(k)] = idx[np.argsort(-scores[idx, k], kind="stable")]
    return out


class PCAMoments:
    """Streaming PCA (Sec. 3.2): the mean and scatter matrix of rows added chunk by chunk, so the
    refinement's PCA needs ``O(D^2)`` memory whatever the number of candidates (10^6 x 4,096
    float16 features: 8 GB as one array, two 134 MB float64 matrices here).

    Rows are shifted by the first chunk's mean before they are accumulated (the shifted-data
    algorithm), which keeps the float64 scatter accurate when the features' mean is large
    against their spread. :meth:`fit` eigendecomposes the ``D x D`` covariance: the same
    principal axes and variances as an SVD of the centred data.
    """

    def __init__(self, chunk_rows: int = 4096):
        self.n = 0
        self._chunk = chunk_rows
        self._shift = self._sum = self._scatter = None

    def add(self, rows: np.ndarray) -> None:
        """Accumulate ``rows`` (``(n, D)``, any float dtype), ``chunk_rows`` at a time in float64."""
        x = np.asarray(rows)
        if x.ndim != 2:
            raise ValueError(f"PCA rows must be (n, D), got shape {x.shape}")
        if not len(x):
            return
        if self._shift is None:
            self._shift = x[: self._chunk].astype(np.float64).mean(axis=0)
            self._sum = np.zeros(x.shape[1])
            self._scatter = np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != len(self._shift):
            raise ValueError(f"PCA rows of {x.shape[1]} dims after rows of {len(self._shift)}")
        for s in range(0, len(x), self._chunk):
            c = x[s : s + self._chunk].astype(np.float64) - self._shift
            self.n += len(c)
            self._sum += c.sum(axis=0)
            self._scatter += c.T @ c

    def fit(self, energy: float = 0.98) -> Tuple[np.ndarray, np.ndarray, float]:
        """``(mean (D,), components (D, d), kept energy)``: the fewest leading components whose
        variance is at least ``energy`` of the total; zero-variance data keeps one component."""
        if not 0 < energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {energy}")
        if not self.n:
            raise ValueError("PCA of no rows")
        m = self._sum / self.n
        cov = self._scatter - self.n * np.outer(m, m)
        var, vecs = np.linalg.eigh((cov + cov.T) / 2)
        var, vecs = np.clip(var[::-1], 0, None), vecs[:, ::-1]
        total = var.sum()
        if total <= 0:
            return self._shift + m, np.ascontiguousarray(vecs[:, :1]), 1.0
        d = min(int(np.searchsorted(np.cumsum(var) / total, energy - 1e-12) + 1), len(var))
        return self._shift + m, np.ascontiguousarray(vecs[:, :d]), float(var[:d].sum() / total)


def fit_pca(features: np.ndarray, energy: float = 0.98) -> Tuple[np.ndarray, np.ndarray]:
    """PCA keeping the fewest leading components whose variance is at least ``energy`` of the
    total (Sec. 3.2: 98 %, 4,096 -> ~512 dims in the paper), through :class:`PCAMoments`.

    Returns:
        ``(mean (D,), components (D, d))``; project with :func:`pca_project`. Zero-variance data
        keeps one component.
    """
    moments = PCAMoments()
    moments.add(features)
    mean, components, _ = moments.fit(energy)
    return mean, components


def pca_project(features: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return (np.asarray(features, dtype=np.float64) - mean) @ components


class CrossImageRefinement:
    """Eq. 1 for one class, in two passes so the images' features need not be in memory at once:
    :meth:`add` each image's candidate features (keeps their mean and mean squared norm), then
    :meth:`keep` ranks an image's candidates by their average squared distance to the candidates
    of every other image with this label and keeps ``ceil(keep_fraction * n_i)``.

    ``dis(x_ij) = 1/(N-1) sum_{i' != i} 1/n_i' sum_j' |x_ij - x_i'j'|^2``, computed exactly as
    ``|x|^2 - 2 x . mean_i'(mu_i') + mean_i'(m_i')`` with each other image's feature mean ``mu``
    and mean squared norm ``m`` (linear in the number of candidates).

    Order: the text says "descending order", but Fig. 3 and the stated assumption (tightly
    enclosing proposals of different images look alike; parts and background-heavy ones differ)
    keep the *most consistent* candidates, i.e. the smallest distances: ``"ascending"`` (default).
    ``"descending"`` follows the text literally.
    """

    def __init__(self, keep_fraction: float = 0.5, order: str = "ascending"):
        if order not in REFINE_ORDERS:
            raise ValueError(f"refinement order must be one of {REFINE_ORDERS}, got {order!r}")
        self.keep_fraction = keep_fraction
        self.order = order
        self._stats: Dict[Hashable, Tuple[np.ndarray, float]] = {}
        self._sums = None

    def add(self, key: Hashable, features: np.ndarray) -> None:
        """First pass: image ``key``'s ``(n_i, d)`` (PCA-projected) candidate features."""
        x = np.asarray(features, dtype=np.float64)
        if len(x):
            self._stats[key] = (x.mean(axis=0), float((x**2).sum(axis=1).mean()))
            self._sums = None

    def keep(self, key: Hashable, features: np.ndarray, confidences=None) -> np.ndarray:
        """Second pass: indices (into ``features``, the same rows as added) of the kept
        candidates of image ``key``, best first. With a single image there is no other image to
        compare with: its candidates are ranked by ``confidences`` (highest first), in the input
        order when None."""
        x = np.asarray(features, dtype=np.float64)
        if not len(x):
            return np.zeros(0, dtype=np.int64)
        n_keep = max(1, int(math.ceil(self.keep_fraction * len(x))))
        n = len(self._stats)
        if n == 1:
            conf = confidences if confidences is not None else -np.arange(len(x))
            return np.argsort(-np.asarray(conf), kind="stable")[:n_keep]
        if self._sums is None:
            self._sums = (
                np.sum([m for m, _ in self._stats.values()], axis=0),
                float(sum(q for _, q in self._stats.values())),
            )
        mean_i, sq_i = self._stats[key]
        other_mean = (self._sums[0] - mean_i) / (n - 1)
        other_sq = (self._sums[1] - sq_i) / (n - 1)
        dis = (x**2).sum(axis=1) - 2 * x @ other_mean + other_sq
        rank = np.argsort(dis if self.order == "ascending" else -dis, kind="stable")
        return rank[:n_keep]


def cross_image_refinement(
    features: Mapping[Hashable, np.ndarray],
    keep_fraction: float = 0.5,
    order: str = "ascending",
    confidences: Mapping[Hashable, np.ndarray] = None,
) -> Dict[Hashable, np.ndarray]:
    """Eq. 1 for one class with every image's features in memory (:class:`CrossImageRefinement`).

    Args:
        features: image key -> ``(n_i, d)`` features (PCA-projected) of its candidates for this
            class, in the image's candidate order; images with no candidate may be left out.
        confidences: image key -> ``(n_i,)`` HCP confidences (used with a single image).

    Returns:
        image key -> indices (into that image's candidates) of the kept ones, best first.
    """
    refinement = CrossImageRefinement(keep_fraction, order)
    for k, f in features.items():
        refinement.add(k, f)
    return {
        k: refinement.keep(k, f, None if confidences is None else confidences.get(k))
        for k, f in features.items()
    }


def localization_maps(masks_per_label: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Eq. 2: ``(L + 1, H, W)`` float32 maps, channel 0 the background, channel ``1 + l`` the mean
    of label ``l``'s kept candidate masks (``(n_l, H, W)`` bool; none: a black map), background
    ``max(0, 1 - sum_l p^l)``."""
    maps = np.zeros((len(masks_per_label) + 1, height, width), dtype=np.float32)
    for l, masks in enumerate(masks_per_label):
        masks = np.asarray(masks)
        if masks.size:
            if masks.shape[1:] != (height, width):
                raise ValueError(f"label {l}: masks {masks.shape[1:]} != image {(height, width)}")
            maps[l + 1] = masks.mean(axis=0, dtype=np.float32)
    maps[0] = np.maximum(0.0, 1.0 - maps[1:].sum(axis=0))
    return maps


def soft_target(maps: np.ndarray) -> np.ndarray:
    """Eq. 4's ground-truth probabilities: ``maps`` (:func:`localization_maps`) divided by their
    sum across channels at each pixel (the sum is >= 1 by Eq. 2, so never 0)."""
    maps = np.asarray(maps, dtype=np.float32)
    return maps / np.maximum(maps.sum(axis=0, keepdims=True), 1e-12)


def region_means(candidates: CandidateSet, value_map: np.ndarray) -> np.ndarray:
    """``(K,)`` mean of ``value_map`` (``(H, W)`` at image resolution) over each candidate region,
    computed per superpixel (no candidate mask is decoded)."""
    sp = candidates._full_superpixels()
    if value_map.shape != sp.shape:
        raise ValueError(f"value map {value_map.shape} != image size {sp.shape}")
    num_sp = int(sp.max()) + 1
    sums = np.bincount(sp.ravel(), weights=value_map.ravel().astype(np.float64), minlength=num_sp)
    areas = np.bincount(sp.ravel(), minlength=num_sp).astype(np.float64)
    member = candidates.membership().astype(np.float64)
    return (member @ sums) / np.maximum(member @ areas, 1.0)


def rough_mask(
    maps: np.ndarray, class_masks: Sequence[np.ndarray], class_ids: Sequence[int]
) -> np.ndarray:
    """Sec. 3.3.2's rough mask from each label's selected region (union of its top-10 candidates
    by Eq. 5): a pixel covered by one label's region takes that label; a pixel covered by several
    takes the one with the highest localization-map value there (ties: the first label); the rest
    is background.

    Args:
        maps: ``(L + 1, H, W)`` localization maps (:func:`localization_maps`).
        class_masks: per label, an ``(H, W)`` bool region.
        class_ids: per label, its class index; the mask holds ``class_id + 1`` (0: background).

    Returns:
        ``(H, W)`` uint8 label map.
    """
    if len(class_masks) != len(maps) - 1 or len(class_ids) != len(class_masks):
        raise ValueError("one region and one class id per label (maps has background first)")
    h, w = maps.shape[1:]
    out = np.zeros((h, w), dtype=np.uint8)
    if not class_masks:
        return out
    covered = np.stack([np.asarray(m, dtype=bool) for m in class_masks])
    values = np.where(covered, maps[1:], -np.inf)
    best = values.argmax(axis=0)
    lut = np.asarray([c + 1 for c in class_ids], dtype=np.uint8)
    any_cover = covered.any(axis=0)
    out[any_cover] = lut[best[any_cover]]
    return out


def top_regions(values: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` largest ``values`` (Eq. 5's ``v_r``), highest first."""
    return np.argsort(-values, kind="stable")[:top_k]
