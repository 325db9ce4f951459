from .boxinst import (
    box_projection_loss,
    boxinst_mask_rcnn_loss,
    colour_similarity,
    pairwise_affinity_loss,
    rgb_to_lab,
    roi_box_masks,
)
from .flagged_mask_loss import flagged_mask_rcnn_loss
from .mil_loss import mil_unary_loss, pairwise_smoothness_loss
from .pairwise import neighbour_offsets, neighbour_values
from .soft_multilabel_loss import soft_cross_entropy

__all__ = [
    "box_projection_loss",
    "boxinst_mask_rcnn_loss",
    "colour_similarity",
    "flagged_mask_rcnn_loss",
    "mil_unary_loss",
    "neighbour_offsets",
    "neighbour_values",
    "pairwise_affinity_loss",
    "pairwise_smoothness_loss",
    "rgb_to_lab",
    "roi_box_masks",
    "soft_cross_entropy",
]
