"""Dilated (atrous) ResNet of any depth: output stride 8, 16 or 32 (DeepLab, Chen et al. 2015)."""

from detectron2.config import CfgNode
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import ResNet, build_resnet_backbone

__all__ = ["add_dilated_resnet_config", "dilate_resnet", "build_dilated_resnet_backbone"]

# Stages whose stride becomes dilation, and the dilation of each, per output stride.
_DILATIONS = {32: {}, 16: {"res5": 2}, 8: {"res4": 2, "res5": 4}}


def add_dilated_resnet_config(cfg: CfgNode) -> CfgNode:
    """Add ``cfg.MODEL.RESNETS.OUTPUT_STRIDE`` (``build_dilated_resnet_backbone``) in place and
    return the config."""
    _C = cfg
    # Output stride 8, 16 or 32 (res4 / res5 strides turned into dilation).
    _C.MODEL.RESNETS.OUTPUT_STRIDE = 16
    return cfg


def dilate_resnet(resnet: ResNet, output_stride: int) -> ResNet:
    """Turn the last stages' stride into dilation, in place, so the network keeps a feature
    resolution of ``1 / output_stride`` (8: res4 and res5 dilated 2 and 4; 16: res5 dilated 2).

    Every block of a dilated stage has stride 1 (its stride-2 convolutions, shortcut included,
    become stride 1) and every 3x3 convolution of it the stage's dilation (and padding), as
    Detectron2's ``RES5_DILATION`` does for bottleneck blocks; this also covers basic blocks
    (R18/R34), which Detectron2 cannot dilate, and res4.
    """
    if output_stride not in _DILATIONS:
        raise ValueError(f"output stride must be one of {sorted(_DILATIONS)}, got {output_stride}")
    dilations = _DILATIONS[output_stride]
    stride = resnet.stem.stride
    for name, stage in zip(resnet.stage_names, resnet.stages):
        d = dilations.get(name, 1)
        for block in stage:
            if d > 1:
                block.stride = 1
                for m in block.modules():
                    if isinstance(m, Conv2d):
                        m.stride = (1, 1)
                        if m.kernel_size == (3, 3):
                            m.dilation, m.padding = (d, d), (d, d)
            stride *= block.stride
        resnet._out_feature_strides[name] = stride
    return resnet


@BACKBONE_REGISTRY.register()
def build_dilated_resnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> ResNet:
    """Detectron2's ResNet (``cfg.MODEL.RESNETS``, ``RES5_DILATION`` must stay 1) dilated to
    ``cfg.MODEL.RESNETS.OUTPUT_STRIDE`` by :func:`dilate_resnet`. Weights load as Detectron2's
    ResNet (dilation changes no parameter)."""
    if cfg.MODEL.RESNETS.RES5_DILATION != 1:
        raise ValueError(
            "build_dilated_resnet_backbone sets the dilation from MODEL.RESNETS.OUTPUT_STRIDE; "
            "leave MODEL.RESNETS.RES5_DILATION at 1"
        )
    return dilate_resnet(build_resnet_backbone(cfg, input_shape), cfg.MODEL.RESNETS.OUTPUT_STRIDE)
