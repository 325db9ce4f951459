from .flagged_mask_head import FlaggedMaskRCNNConvUpsampleHead

__all__ = ["FlaggedMaskRCNNConvUpsampleHead"]
