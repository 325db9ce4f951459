from .flagged_mask_loss import flagged_mask_rcnn_loss
from .mil_loss import mil_unary_loss, pairwise_smoothness_loss
from .pairwise import neighbour_offsets, neighbour_values
from .soft_multilabel_loss import soft_cross_entropy

__all__ = [
    "flagged_mask_rcnn_loss",
    "mil_unary_loss",
    "neighbour_offsets",
    "neighbour_values",
    "pairwise_smoothness_loss",
    "soft_cross_entropy",
]
