from .dilated_resnet import build_dilated_resnet_backbone, dilate_resnet
from .efficientnet import (
    EfficientNetLite,
    add_efficientnet_config,
    build_efficientnet_backbone,
    build_efficientnet_enhanced_fpn_backbone,
    build_efficientnet_fpn_backbone,
)
from .enhanced_fpn import EnhancedFPN, build_resnet_enhanced_fpn_backbone
from .hrnet import HRNet, build_hrnet_backbone
from .pretrained import ImageNetPretrainedHandler

__all__ = [
    "EfficientNetLite",
    "add_efficientnet_config",
    "build_dilated_resnet_backbone",
    "build_efficientnet_backbone",
    "build_efficientnet_enhanced_fpn_backbone",
    "build_efficientnet_fpn_backbone",
    "dilate_resnet",
    "EnhancedFPN",
    "HRNet",
    "ImageNetPretrainedHandler",
    "build_hrnet_backbone",
    "build_resnet_enhanced_fpn_backbone",
]
