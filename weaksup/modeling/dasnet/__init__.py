"""DASNet modules (Niu et al.); the meta-architecture is :class:`weaksup.modeling.meta_arch.DASNet`."""

from .attention import AttentionQueries, box_attention, box_region_masks
from .detection import check_detector, detect, detection_losses
from .position_sensitive import (
    assemble_position_sensitive,
    instance_losses,
    instance_score_logits,
    sample_instance_boxes,
)
from .segmentation import DASNetDecoder, semantic_loss

__all__ = [
    "AttentionQueries",
    "DASNetDecoder",
    "assemble_position_sensitive",
    "box_attention",
    "box_region_masks",
    "check_detector",
    "detect",
    "detection_losses",
    "instance_losses",
    "instance_score_logits",
    "sample_instance_boxes",
    "semantic_loss",
]
