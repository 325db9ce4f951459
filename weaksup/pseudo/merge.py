"""Merging via "smaller object better" (BoxCaseg Sec. 3.4)."""

import numpy as np

__all__ = ["merge_smaller_wins"]


def merge_smaller_wins(masks: np.ndarray) -> np.ndarray:
    """Make the masks of one image disjoint: a pixel claimed by several goes to the smallest.

    BoxCaseg Sec. 3.4: "for those pixels belong to multiple predicted masks, we assign them to
    the smallest objects", since a smaller object usually lies inside the larger one's box.
    "Smallest" is by mask area before merging; ties go to the lower index (the earlier box).

    Vectorised per mask, never per pixel: an owner map is painted mask by mask in decreasing
    (area, index) order, so the last painter of a pixel is its smallest claimant. This equals an
    argmin over a stacked ``(N, H, W)`` area map but needs ``O(H W)`` extra memory instead of
    ``O(N H W)`` (an image with 200 boxes would otherwise allocate hundreds of MB).

    Args:
        masks: ``(N, H, W)`` bool.

    Returns:
        ``(N, H, W)`` bool, pairwise disjoint, each a subset of its input mask.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"expected (N, H, W) masks, got shape {masks.shape}")
    n = len(masks)
    if n < 2:
        return masks.copy()
    areas = masks.reshape(n, -1).sum(axis=1)
    order = np.lexsort((-np.arange(n), -areas))  # by area desc, then index desc
    owner = np.full(masks.shape[1:], -1, dtype=np.int32)
    for k in order:
        owner[masks[k]] = k
    return owner[None] == np.arange(n)[:, None, None]
