from .boxinst import BoxInstMaskRCNNConvUpsampleHead, BoxInstROIHeads, add_boxinst_config
from .flagged_mask_head import FlaggedMaskRCNNConvUpsampleHead

__all__ = [
    "BoxInstMaskRCNNConvUpsampleHead",
    "BoxInstROIHeads",
    "FlaggedMaskRCNNConvUpsampleHead",
    "add_boxinst_config",
]
