"""MCG-style candidate segments (BoxSup Sec. 4.1, Wei et al. Sec. 3.1) and the official MCG files.

MCG (Arbelaez et al. 2014) is MATLAB; :func:`candidate_segments` is a Python generator in its
spirit: over-segmentation at several scales, a hierarchy of merges per scale, combinations of 1-3
adjacent regions, deduplicated and ranked, a fixed number per image. Candidates are stored as MCG
stores them (:class:`CandidateSet`): one superpixel map plus, per candidate, its superpixel ids,
so :func:`load_mcg_mat` (official ``.mat`` files) and the generator share one interface.
"""

import heapq
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy import ndimage
from skimage.segmentation import felzenszwalb

from .methods import PseudoMaskConfig, register_method
from .fallback import with_fallback
from .geometry import box_mask

__all__ = ["CandidateSet", "best_candidate_for_box", "candidate_segments", "load_mcg_mat"]


@dataclass
class CandidateSet:
    """Candidate segments of one image in MCG's encoding.

    Attributes:
        superpixels: ``(h, w)`` int32 superpixel ids ``0..S-1``; ``h, w`` may be smaller than the
            image (the generator works on a downscaled image); masks are upsampled (nearest).
        labels: per candidate, an int array of its superpixel ids (0-based).
        scores: ``(K,)`` ranking score, higher first (candidates are sorted by it).
        image_size: ``(H, W)`` of the image the candidates are for.
    """

    superpixels: np.ndarray
    labels: List[np.ndarray]
    scores: np.ndarray
    image_size: Tuple[int, int]

    def __len__(self) -> int:
        return len(self.labels)

    def _full_superpixels(self) -> np.ndarray:
        h, w = self.image_size
        if self.superpixels.shape == (h, w):
            return self.superpixels
        return cv2.resize(self.superpixels, (w, h), interpolation=cv2.INTER_NEAREST)

    def membership(self) -> np.ndarray:
        """``(K, S)`` bool: candidate k contains superpixel s."""
        num_sp = int(self.superpixels.max()) + 1
        member = np.zeros((len(self), num_sp), dtype=bool)
        for k, ids in enumerate(self.labels):
            member[k, ids] = True
        return member

    def masks(self, indices: Optional[Sequence[int]] = None) -> np.ndarray:
        """``(K', H, W)`` bool masks at image resolution (all candidates, or ``indices``)."""
        sp = self._full_superpixels()
        member = self.membership()
        if indices is not None:
            member = member[np.asarray(indices, dtype=np.int64)]
        return member[:, sp]

    def boxes(self) -> np.ndarray:
        """``(K, 4)`` tight boxes (``XYXY_ABS``, image pixels) of the candidates: the union of
        their superpixels' tight boxes, so no mask is decoded."""
        sp = self._full_superpixels()
        slices = ndimage.find_objects(sp + 1)
        sp_boxes = np.array(
            [
                (
                    [s[1].start, s[0].start, s[1].stop, s[0].stop]
                    if s
                    else [np.inf] * 2 + [-np.inf] * 2
                )
                for s in slices
            ],
            dtype=np.float64,
        )
        member = self.membership()[:, : len(sp_boxes)]
        lo = np.where(member[:, :, None], sp_boxes[None, :, :2], np.inf).min(axis=1)
        hi = np.where(member[:, :, None], sp_boxes[None, :, 2:], -np.inf).max(axis=1)
        return np.concatenate([lo, hi], axis=1)


def load_mcg_mat(path: str) -> CandidateSet:
    """Read an official MCG proposal file (``im2mcg`` output saved with MATLAB ``save``).

    Expected variables: ``superpixels`` (``(H, W)``, ids from 1), ``labels`` (cell array, one
    vector of 1-based superpixel ids per proposal) and ``scores`` (one per proposal; proposals are
    re-sorted by it, highest first). Errors name the file.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(path)
    except (OSError, ValueError, NotImplementedError, MatReadError) as e:
        raise ValueError(f"{path}: not a readable MCG .mat file ({e})") from e
    missing = [k for k in ("superpixels", "labels", "scores") if k not in data]
    if missing:
        raise ValueError(f"{path}: MCG .mat file lacks {missing} (has {sorted(data)})")
    sp = np.asarray(data["superpixels"]).astype(np.int64) - 1
    if sp.ndim != 2 or sp.size == 0 or sp.min() < 0:
        raise ValueError(f"{path}: `superpixels` must be a 2-D map of ids >= 1, got {sp.shape}")
    cells = np.asarray(data["labels"], dtype=object).ravel()
    labels = [np.asarray(c, dtype=np.int64).ravel() - 1 for c in cells]
    scores = np.asarray(data["scores"], dtype=np.float64).ravel()
    if len(scores) != len(labels):
        raise ValueError(f"{path}: {len(labels)} proposals in `labels` but {len(scores)} scores")
    num_sp = int(sp.max()) + 1
    for k, ids in enumerate(labels):
        if ids.size == 0 or ids.min() < 0 or ids.max() >= num_sp:
            raise ValueError(f"{path}: proposal {k} has superpixel ids outside 1..{num_sp}")
    order = np.argsort(-scores, kind="stable")
    return CandidateSet(
        sp.astype(np.int32), [labels[k] for k in order], scores[order], tuple(sp.shape)
    )


def _adjacency(labels: np.ndarray, weight: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges between 4-adjacent superpixels: ``(pairs (E, 2) with a < b, boundary length,
    summed boundary strength)``; one boundary element per pair of neighbouring pixels."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    wgt = np.concatenate(
        [
            np.maximum(weight[:, :-1], weight[:, 1:]).ravel(),
            np.maximum(weight[:-1, :], weight[1:, :]).ravel(),
        ]
    )
    cut = a != b
    a, b, wgt = a[cut], b[cut], wgt[cut]
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    key = lo * (int(labels.max()) + 1) + hi
    uniq, inv = np.unique(key, return_inverse=True)
    n = int(labels.max()) + 1
    pairs = np.stack([uniq // n, uniq % n], axis=1)
    return pairs, np.bincount(inv).astype(np.float64), np.bincount(inv, weights=wgt)


def _merge_hierarchy(
    seg: np.ndarray, lab_hist: np.ndarray, strength: np.ndarray, cut_levels: Sequence[int]
) -> Tuple[List[frozenset], List[List[frozenset]]]:
    """Greedy region merging of one over-segmentation (a region adjacency graph hierarchy).

    The adjacent pair with the lowest dissimilarity merges first:
    ``d = (1 - colour histogram intersection) + mean boundary strength + size term``, the
    colour/size parts as in Selective Search (Uijlings et al. 2013), the boundary part in the
    spirit of MCG's contour strength. Histograms, sizes and boundary sums merge exactly.

    Returns:
        every region of the hierarchy (leaves and merges) as a frozenset of segment ids, and the
        partitions at ``cut_levels`` (number of regions alive).
    """
    n = int(seg.max()) + 1
    size = np.bincount(seg.ravel(), minlength=n).astype(np.float64)
    hist = {i: lab_hist[i] for i in range(n)}
    sizes = {i: size[i] for i in range(n)}
    members = {i: frozenset([i]) for i in range(n)}
    pairs, length, bsum = _adjacency(seg, strength)
    boundary: Dict[int, Dict[int, Tuple[float, float]]] = {i: {} for i in range(n)}
    for (a, b), ln, s in zip(pairs.tolist(), length.tolist(), bsum.tolist()):
        boundary[a][b] = boundary[b][a] = (ln, s)
    total = float(seg.size)

    def dissim(a: int, b: int) -> float:
        ln, s = boundary[a][b]
        colour = 1.0 - np.minimum(hist[a], hist[b]).sum()
        return colour + s / ln + (sizes[a] + sizes[b]) / total

    heap = [(dissim(a, b), a, b) for a, b in pairs.tolist()]
    heapq.heapify(heap)
    regions = list(members.values())
    levels = sorted(set(cut_levels), reverse=True)
    partitions = []
    alive, nxt = n, n
    while levels and levels[0] >= alive:
        partitions.append(list(members.values()))
        levels.pop(0)
    while heap:
        _, a, b = heapq.heappop(heap)
        if a not in members or b not in members:
            continue  # stale: one side was merged already
        r = nxt
        nxt += 1
        sizes[r] = sizes[a] + sizes[b]
        hist[r] = (hist[a] * sizes[a] + hist[b] * sizes[b]) / sizes[r]
        members[r] = members.pop(a) | members.pop(b)
        boundary[r] = {}
        for old in (a, b):
            for c, (ln, s) in boundary.pop(old).items():
                del boundary[c][old]
                if c in (a, b):
                    continue
                pl, ps = boundary[r].get(c, (0.0, 0.0))
                boundary[r][c] = boundary[c][r] = (pl + ln, ps + s)
        for c in boundary[r]:
            heapq.heappush(heap, (dissim(r, c), r, c))
        regions.append(members[r])
        alive -= 1
        while levels and levels[0] >= alive:
            partitions.append(list(members.values()))
            levels.pop(0)
    return regions, partitions


def _combinations(partition: List[frozenset], seg_pairs: np.ndarray) -> List[frozenset]:
    """Singletons, adjacent pairs and connected triplets of a partition's regions."""
    owner = {}
    for i, region in enumerate(partition):
        for s in region:
            owner[s] = i
    adj: Dict[int, set] = {i: set() for i in range(len(partition))}
    for a, b in seg_pairs.tolist():
        ra, rb = owner[a], owner[b]
        if ra != rb:
            adj[ra].add(rb)
            adj[rb].add(ra)
    combos = {frozenset([i]) for i in adj}
    for i, nbrs in adj.items():
        for j in nbrs:
            combos.add(frozenset([i, j]))
            for k in adj[j] | nbrs:  # paths i-j-k and stars j-i-k
                if k not in (i, j):
                    combos.add(frozenset([i, j, k]))
    return [frozenset().union(*(partition[i] for i in c)) for c in combos]


def candidate_segments(
    image: np.ndarray,
    num_candidates: int = 1000,
    max_side: int = 256,
    scales: Sequence[float] = (100.0, 300.0, 800.0),
    cut_levels: Sequence[int] = (24, 12, 6),
    min_area: float = 0.0005,
) -> CandidateSet:
    """MCG-style candidate segments of a BGR uint8 image.

    1. The image is downscaled so its longer side is at most ``max_side`` (speed; masks come
       back at image resolution, with superpixel boundaries at the working resolution).
    2. Over-segmentation at several ``scales``: Felzenszwalb-Huttenlocher graph segmentation of
       the RGB image (``sigma=0.8``, ``min_size=scale/4``), as Selective Search's diversified
       starting partitions; the superpixels are the overlay (intersection) of all of them.
    3. Per scale, a merge hierarchy (:func:`_merge_hierarchy`) on a Lab colour histogram (8 bins
       per channel) and the boundary strength (Sobel gradient magnitude of the Lab image,
       normalised by its 99th percentile and clipped at 1).
    4. Candidates: every region of every hierarchy, plus singletons, adjacent pairs and
       connected triplets of the regions alive when ``cut_levels`` regions remain (MCG's
       combinations of 1-3 regions of a hierarchy cut). Deduplicated by superpixel set;
       candidates covering less than ``min_area`` of the image or the whole image are dropped.
    5. Ranking score (MCG learns one; ours is hand-set): the mean boundary strength along the
       candidate's contour (a strong closed contour suggests an object), ties broken by the
       larger area. The best ``num_candidates`` are kept (fewer when the deduplicated pool is
       smaller: ~900-1,400 on ECSSD images at the defaults).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    f = min(1.0, max_side / max(h, w))
    small = (
        image
        if f == 1.0
        else cv2.resize(
            image,
            (max(int(round(w * f)), 1), max(int(round(h * f)), 1)),
            interpolation=cv2.INTER_AREA,
        )
    )
    rgb = np.ascontiguousarray(small[:, :, ::-1])
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB)
    labf = lab.astype(np.float32)
    grad = np.sqrt(
        sum(
            cv2.Sobel(labf[:, :, c], cv2.CV_32F, 1, 0) ** 2
            + cv2.Sobel(labf[:, :, c], cv2.CV_32F, 0, 1) ** 2
            for c in range(3)
        )
    )
    strength = np.minimum(grad / max(float(np.percentile(grad, 99)), 1e-6), 1.0)
    segs = [felzenszwalb(rgb, scale=s, sigma=0.8, min_size=int(s / 4)) for s in scales]
    # superpixels: the overlay of all scales
    key = np.zeros(segs[0].shape, dtype=np.int64)
    for seg in segs:
        key = key * (int(seg.max()) + 1) + seg
    _, sp = np.unique(key, return_inverse=True)
    sp = sp.reshape(key.shape).astype(np.int32)
    num_sp = int(sp.max()) + 1
    bins = (lab // 32).astype(np.int64)  # 8 bins per channel
    sp_pairs, sp_len, sp_sum = _adjacency(sp, strength)

    keys: Dict[bytes, np.ndarray] = {}
    for seg in segs:
        n = int(seg.max()) + 1
        hist = (
            np.stack(
                [
                    np.bincount(seg.ravel() * 8 + bins[:, :, c].ravel(), minlength=n * 8).reshape(
                        n, 8
                    )
                    for c in range(3)
                ],
                axis=1,
            )
            .reshape(n, 24)
            .astype(np.float64)
        )
        hist /= hist.sum(axis=1, keepdims=True)
        regions, partitions = _merge_hierarchy(seg, hist, strength, cut_levels)
        seg_pairs = _adjacency(seg, strength)[0]
        for part in partitions:
            regions.extend(_combinations(part, seg_pairs))
        seg_of_sp = np.zeros(num_sp, dtype=np.int64)
        seg_of_sp[sp.ravel()] = seg.ravel()
        for region in regions:
            member = np.isin(seg_of_sp, np.fromiter(region, dtype=np.int64))
            keys.setdefault(np.packbits(member).tobytes(), member)
    member = np.stack(list(keys.values()))
    area = member @ np.bincount(sp.ravel(), minlength=num_sp).astype(np.float64)
    keep = (area >= min_area * sp.size) & (area < sp.size)
    member, area = member[keep], area[keep]
    cut = member[:, sp_pairs[:, 0]] != member[:, sp_pairs[:, 1]]
    score = (cut @ sp_sum) / np.maximum(cut @ sp_len, 1e-9)
    order = np.lexsort((-area, -score))[:num_candidates]
    labels = [np.flatnonzero(member[k]) for k in order]
    return CandidateSet(sp, labels, score[order], (h, w))


def best_candidate_for_box(candidates: CandidateSet, box: Sequence[float], boxes=None) -> int:
    """Index of the candidate minimising BoxSup's E_o = 1 - IoU(box, tight box of candidate)
    (BoxSup Sec. 4.1, Eq. 2). Ties (equal tight-box IoU) go to the candidate with more pixels
    inside the box, i.e. the fuller mask, then to the higher-ranked one.

    Args:
        boxes: ``candidates.boxes()`` when already computed (it is shared by all boxes).
    """
    cb = candidates.boxes() if boxes is None else boxes
    iw = np.clip(np.minimum(cb[:, 2], box[2]) - np.maximum(cb[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(cb[:, 3], box[3]) - np.maximum(cb[:, 1], box[1]), 0, None)
    inter = iw * ih
    union = (cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1]) + (box[2] - box[0]) * (box[3] - box[1])
    iou = inter / np.maximum(union - inter, 1e-9)
    tied = np.flatnonzero(iou >= iou.max() - 1e-9)
    if len(tied) == 1:
        return int(tied[0])
    h, w = candidates.image_size
    inside = candidates.masks(tied)[:, box_mask(box, h, w)].sum(axis=1)
    return int(tied[np.argmax(inside)])  # argmax: first (higher-ranked) among equals


@register_method("candidates")
def candidates_method(image, boxes, seeds, cfg):
    """Per box, the candidate with the lowest E_o (:func:`best_candidate_for_box`), clipped to
    the box; empty -> ``cfg.fallback``. Candidates: :func:`candidate_segments` with
    ``cfg.num_candidates``."""
    h, w = image.shape[:2]
    cands = candidate_segments(image, cfg.num_candidates)
    cboxes = cands.boxes()
    out = []
    for box in boxes:
        mask = cands.masks([best_candidate_for_box(cands, box, cboxes)])[0] & box_mask(box, h, w)
        out.append(with_fallback(mask, box, cfg.fallback, (h, w)))
    return out
