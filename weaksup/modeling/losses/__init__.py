from .flagged_mask_loss import flagged_mask_rcnn_loss
from .mil_loss import mil_unary_loss, pairwise_smoothness_loss

__all__ = ["flagged_mask_rcnn_loss", "mil_unary_loss", "pairwise_smoothness_loss"]
