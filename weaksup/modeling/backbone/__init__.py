from .dilated_resnet import build_dilated_resnet_backbone, dilate_resnet
from .enhanced_fpn import EnhancedFPN, build_resnet_enhanced_fpn_backbone
from .hrnet import HRNet, build_hrnet_backbone

__all__ = [
    "build_dilated_resnet_backbone",
    "dilate_resnet",
    "EnhancedFPN",
    "HRNet",
    "build_hrnet_backbone",
    "build_resnet_enhanced_fpn_backbone",
]
