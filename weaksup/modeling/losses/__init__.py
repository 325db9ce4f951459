from .flagged_mask_loss import flagged_mask_rcnn_loss

__all__ = ["flagged_mask_rcnn_loss"]
