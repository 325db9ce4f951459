"""DeepLab-style atrous head: parallel dilated 3x3 branches whose class scores are summed."""

from typing import Dict, List, Optional, Tuple

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode as CN
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import nn

__all__ = ["add_atrous_head_config", "AtrousSemSegHead"]


def add_atrous_head_config(cfg: CN) -> CN:
    """Add the ``AtrousSemSegHead`` keys (DeepLab-v2 ASPP) to ``cfg.MODEL.SEM_SEG_HEAD`` in place
    and return the config."""
    _C = cfg
    # Dilations of the parallel 3x3 branches (DeepLab-v2 ASPP-L: 6, 12, 18, 24).
    _C.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [6, 12, 18, 24]
    # Dropout before each branch's classifier.
    _C.MODEL.SEM_SEG_HEAD.ASPP_DROPOUT = 0.5
    return cfg


@SEM_SEG_HEADS_REGISTRY.register()
class AtrousSemSegHead(nn.Module):
    """Atrous spatial pyramid head of DeepLab-v2 (ASPP-L, Chen et al. 2017, Fig. 4) on one
    feature map of a dilated backbone (output stride 8 or 16).

    Each branch is a 3x3 convolution with dilation ``r`` (``CONVS_DIM`` channels, norm, ReLU),
    dropout, and a 1x1 classifier (``CONVS_DIM`` 0: the 3x3 dilated convolution is the classifier,
    DeepLab-v2's ResNet-101 head); the branches' class scores are summed. BoxSup's network is FCN
    on VGG-16 (Sec. 3); any per-pixel classifier serves its objective (Eq. 1/3), and this is the
    standard one on ResNet. The loss is the per-pixel cross-entropy (Eq. 1) averaged over the
    labelled pixels of the batch, on scores upsampled bilinearly to the label map.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        in_feature: str,
        conv_dims: int,
        dilations: List[int],
        dropout: float,
        norm: str = "",
        loss_weight: float = 1.0,
        ignore_value: int = 255,
    ):
        """
        Args:
            input_shape: backbone output shapes; ``in_feature`` is the one used.
            num_classes: classes including background.
            conv_dims, dilations, dropout, norm: the branches (see the class docstring).
            loss_weight, ignore_value: loss scale and the label of unlabelled pixels.
        """
        super().__init__()
        self.in_feature = in_feature
        self.common_stride = input_shape[in_feature].stride
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        channels = input_shape[in_feature].channels
        self.branches = nn.ModuleList()
        for d in dilations:
            if conv_dims == 0:  # DeepLab-v2 on ResNet: one dilated 3x3 classifier per branch
                classifier = Conv2d(channels, num_classes, kernel_size=3, padding=d, dilation=d)
                nn.init.normal_(classifier.weight, std=0.01)
                nn.init.constant_(classifier.bias, 0)
                self.branches.append(classifier)
                continue
            conv = Conv2d(
                channels,
                conv_dims,
                kernel_size=3,
                padding=d,
                dilation=d,
                bias=not norm,
                norm=get_norm(norm, conv_dims),
                activation=F.relu,
            )
            weight_init.c2_msra_fill(conv)
            classifier = Conv2d(conv_dims, num_classes, kernel_size=1)
            nn.init.normal_(classifier.weight, std=0.01)
            nn.init.constant_(classifier.bias, 0)
            self.branches.append(nn.Sequential(conv, nn.Dropout2d(dropout), classifier))

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        if len(head.IN_FEATURES) != 1:
            raise ValueError(f"AtrousSemSegHead reads one feature map, got {head.IN_FEATURES}")
        return {
            "input_shape": input_shape,
            "num_classes": head.NUM_CLASSES,
            "in_feature": head.IN_FEATURES[0],
            "conv_dims": head.CONVS_DIM,
            "dilations": list(head.ASPP_DILATIONS),
            "dropout": head.ASPP_DROPOUT,
            "norm": head.NORM,
            "loss_weight": head.LOSS_WEIGHT,
            "ignore_value": head.IGNORE_VALUE,
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Class scores at the feature resolution, ``(N, num_classes, h, w)``."""
        x = features[self.in_feature]
        return sum(branch(x) for branch in self.branches)

    def forward(
        self, features: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """Training: ``(None, {"loss_sem_seg": ...})``; inference: scores upsampled by the
        output stride (Detectron2's head interface), and no loss."""
        x = self.layers(features)
        if self.training:
            return None, self.losses(x, targets)
        return F.interpolate(x, scale_factor=self.common_stride, mode="bilinear"), {}

    def losses(self, scores: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        scores = F.interpolate(scores, size=targets.shape[-2:], mode="bilinear")
        if not (targets != self.ignore_value).any():  # nothing labelled: zero, graph kept (DDP)
            return {"loss_sem_seg": scores.sum() * 0.0}
        loss = F.cross_entropy(scores, targets, reduction="mean", ignore_index=self.ignore_value)
        return {"loss_sem_seg": loss * self.loss_weight}
