"""RLE masks checked against their image: declared size and counts must both fit.

pycocotools trusts an RLE: ``frPyObjects`` / ``decode`` of counts that do not add up to
``height * width`` give a mask with uninitialised pixels or an "Invalid RLE" error that names
nothing. :func:`rle_problem` says what is wrong (both uncompressed ``counts`` lists and compressed
``counts`` strings are summed, the latter decoded as pycocotools' ``rleFrString`` does, vectorised);
callers name the file and the annotation. :func:`encode_mask` writes the json form of a mask.
Plain numpy and pycocotools.
"""

from typing import Any, Dict, Iterable, Tuple

import numpy as np
import pycocotools.mask as mask_util

__all__ = ["check_annotation_rles", "compressed_rle_counts", "encode_mask", "rle_problem"]


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """A ``(H, W)`` mask (nonzero = in) as a json-able compressed RLE: ``{"size": [H, W],
    "counts": str}``, as COCO json files hold it."""
    rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def compressed_rle_counts(counts: bytes) -> np.ndarray:
    """The run lengths of a compressed RLE string (pycocotools' ``rleFrString``): 5-bit groups,
    bit 0x20 = more groups follow, 0x10 of the last group = negative; runs after the second are
    stored as differences to the run two before. Raises ``ValueError`` for a malformed string."""
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if (c < 0).any() or (c > 63).any():
        raise ValueError("compressed RLE counts hold characters outside '0'..'o'")
    last = (c & 0x20) == 0  # the last group of each number
    if not last[-1]:
        raise ValueError("compressed RLE counts end in the middle of a number")
    number = np.concatenate([[0], np.cumsum(last)[:-1]])  # which number each group belongs to
    start = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1])
    shift = 5 * (np.arange(c.size) - start[number])
    if shift.max() > 55:
        raise ValueError("compressed RLE counts hold a number too large for a mask")
    x = np.bincount(number, weights=(c & 0x1F) << shift).astype(np.int64)
    ends = np.flatnonzero(last)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.int64(1) << (shift[ends[negative]] + 5)
    runs = x.copy()  # runs[m] = x[m] + runs[m - 2] for m > 2
    runs[3::2] = x[1] + np.cumsum(x[3::2]) if x.size > 3 else runs[3::2]
    runs[4::2] = x[2] + np.cumsum(x[4::2]) if x.size > 4 else runs[4::2]
    return runs


def rle_problem(segm: Dict[str, Any], height: int, width: int) -> str:
    """What makes the RLE ``segm`` (``size`` and ``counts``: list or compressed str / bytes)
    unusable as a mask of a ``height`` x ``width`` image, or ``""`` when it is fine."""
    size = segm.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        return f"RLE without a valid 'size' ({size!r})"
    if [int(v) for v in size] != [height, width]:
        return f"RLE of size {list(size)} in an image of size {[height, width]}"
    counts = segm.get("counts")
    if isinstance(counts, list):
        if not all(isinstance(v, (int, np.integer)) and v >= 0 for v in counts):
            return "uncompressed RLE counts that are not non-negative integers"
        runs = np.asarray(counts, dtype=np.int64)
    elif isinstance(counts, (str, bytes)):
        try:
            runs = compressed_rle_counts(counts.encode() if isinstance(counts, str) else counts)
        except ValueError as e:
            return str(e)
        if (runs < 0).any():
            return "compressed RLE counts with a negative run"
    else:
        return f"RLE counts of type {type(counts).__name__}"
    total = int(runs.sum())
    if total != height * width:
        return f"RLE counts add up to {total} pixels, not {height} x {width} = {height * width}"
    return ""


def check_annotation_rles(
    annotations: Iterable[Dict[str, Any]], sizes: Dict[Any, Tuple[int, int]], source: str
) -> None:
    """Raise a ``ValueError`` naming ``source``, the image and the annotation id for the first
    RLE ``segmentation`` of ``annotations`` that does not fit its image (``sizes``: image id ->
    ``(height, width)``); polygons and annotations without a mask are not checked here."""
    for ann in annotations:
        segm = ann.get("segmentation")
        if not isinstance(segm, dict):
            continue
        where = f"{source}: image {ann.get('image_id')!r} annotation id {ann.get('id')!r}"
        if ann.get("image_id") not in sizes:
            raise ValueError(f"{where}: the image is not in the file's 'images'")
        problem = rle_problem(segm, *sizes[ann["image_id"]])
        if problem:
            raise ValueError(f"{where}: {problem}")
