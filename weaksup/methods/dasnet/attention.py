"""DASNet attention module (Sec. 3.3, Eq. 1): class-specific multi-scale features."""

from typing import List, NamedTuple, Tuple

import torch

__all__ = ["AttentionQueries", "box_region_masks", "box_attention"]


class AttentionQueries(NamedTuple):
    """Class- (or instance-) specific inputs of the segmentation module.

    Query ``q`` is image ``image_index[q]`` seen through the boxes ``boxes[box_query == q]``
    (``XYXY_ABS`` in network-input pixels): the class-specific boxes ``B^l`` of class
    ``classes[q]``, or a single detected box at instance inference (Sec. 3.5).
    """

    image_index: torch.Tensor  # (Q,) long
    classes: torch.Tensor  # (Q,) long
    boxes: torch.Tensor  # (T, 4) float
    box_query: torch.Tensor  # (T,) long, in [0, Q)

    def __len__(self) -> int:
        return len(self.image_index)


def box_region_masks(
    boxes: torch.Tensor,
    box_query: torch.Tensor,
    num_queries: int,
    image_size: Tuple[int, int],
    map_size: Tuple[int, int],
) -> torch.Tensor:
    """Eq. 1's region on a map of ``map_size = (H_k, W_k)``: the union of each query's boxes.

    Box coordinates are normalised by ``image_size`` (the padded network input, which the feature
    maps cover) and scaled by the map size; the feature vector at integer position (x, y) stands
    for its cell centre (x + 0.5, y + 0.5), Detectron2's convention, and is kept when that centre
    lies in ``[W_k x_min, W_k x_max] x [H_k y_min, H_k y_max]`` of any of the query's boxes.

    Returns:
        bool tensor (num_queries, H_k, W_k).
    """
    height, width = image_size
    map_h, map_w = map_size
    device = boxes.device
    scale = boxes.new_tensor([map_w / width, map_h / height, map_w / width, map_h / height])
    scaled = boxes * scale
    xs = torch.arange(map_w, device=device, dtype=boxes.dtype) + 0.5
    ys = torch.arange(map_h, device=device, dtype=boxes.dtype) + 0.5
    in_x = (xs[None] >= scaled[:, 0:1]) & (xs[None] <= scaled[:, 2:3])  # (T, W_k)
    in_y = (ys[None] >= scaled[:, 1:2]) & (ys[None] <= scaled[:, 3:4])  # (T, H_k)
    inside = (in_y[:, :, None] & in_x[:, None, :]).to(boxes.dtype)
    counts = inside.new_zeros((num_queries, map_h, map_w)).index_add_(0, box_query, inside)
    return counts > 0


def box_attention(
    features: List[torch.Tensor], queries: AttentionQueries, image_size: Tuple[int, int]
) -> List[torch.Tensor]:
    """Eq. 1: ``f_k^l`` keeps ``f_k`` inside the boxes of ``B^l`` and is zero elsewhere.

    Args:
        features: the detector's maps ``f_k``, each (N, C_k, H_k, W_k), N images.
        queries: which image and boxes each output is computed from.
        image_size: (H, W) of the padded network input.

    Returns:
        per level, a (Q, C_k, H_k, W_k) tensor, same size as ``f_k``. It is ``f_k * mask``, so
        the backward pass is the same masking: gradients reach ``f_k`` inside the boxes only, and
        reach the detector when it is trained jointly (Sec. 3.5).
    """
    out = []
    for f in features:
        mask = box_region_masks(
            queries.boxes, queries.box_query, len(queries), image_size, f.shape[-2:]
        )
        out.append(f[queries.image_index] * mask[:, None].to(f.dtype))
    return out
