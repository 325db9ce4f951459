"""BoxInst's box-supervised mask losses on Detectron2's Mask R-CNN (Tian et al., CVPR 2021).

Two registered components (their config keys: :mod:`.config`):

* :class:`BoxInstROIHeads` (``MODEL.ROI_HEADS.NAME``): :class:`StandardROIHeads` that, in training,
  converts the image tensor the model already holds back to colours, to Lab, and pools it on each
  foreground proposal's mask grid (``Instances.proposal_lab``), which the pairwise term needs;
* :class:`BoxInstMaskRCNNConvUpsampleHead` (``MODEL.ROI_MASK_HEAD.NAME``): Detectron2's mask head
  trained with the projection and pairwise terms of :mod:`weaksup.methods.boxinst.losses` instead
  of per-pixel cross-entropy, from the ground-truth boxes only (``gt_masks`` are never read).
  Inference is Mask R-CNN's.

``MODEL.BOXINST.ROI_SCALE`` > 1 pools the mask branch on boxes enlarged about their centre, in
training and at inference (where the mask is then cropped back to the detected box). BoxInst's
full-image mask always sees pixels outside the box, whose projections are 0 and which the
pairwise term links to similar-coloured pixels inside; on a Mask R-CNN ROI that equals its box,
the projection target is 1 everywhere and a filled box satisfies both terms, which is what the
demo's first run learned (docs/boxinst.md).
"""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads.mask_head import (
    ROI_MASK_HEAD_REGISTRY,
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
)
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage
from torchvision.ops import roi_align

from .losses import boxinst_mask_rcnn_loss, rgb_to_lab

__all__ = [
    "BoxInstMaskRCNNConvUpsampleHead",
    "BoxInstROIHeads",
    "crop_roi_masks",
    "scale_boxes",
]


def scale_boxes(boxes: Boxes, scale: float) -> Boxes:
    """``boxes`` with width and height times ``scale``, about their centres (not clipped)."""
    if scale == 1.0:
        return boxes
    t = boxes.tensor
    centre = (t[:, :2] + t[:, 2:]) / 2
    half = (t[:, 2:] - t[:, :2]) * (scale / 2)
    return Boxes(torch.cat([centre - half, centre + half], dim=1))


def crop_roi_masks(masks: torch.Tensor, scale: float) -> torch.Tensor:
    """Resample ``(N, C, M, M)`` masks predicted on boxes enlarged by ``scale`` onto the boxes.

    The box is the central ``1 / scale`` of the enlarged ROI in each axis, ``[M (s - 1) / 2s,
    M (s + 1) / 2s]`` in mask-pixel coordinates; it is ROIAligned (aligned, bilinear) back to
    ``M x M``, so Detectron2's paste into the detected box is unchanged.
    """
    if scale == 1.0 or masks.shape[0] == 0:
        return masks
    n, m = masks.shape[0], masks.shape[2]
    lo, hi = m * (scale - 1) / (2 * scale), m * (scale + 1) / (2 * scale)
    rois = masks.new_tensor([0.0, lo, lo, hi, hi]).repeat(n, 1)
    rois[:, 0] = torch.arange(n, dtype=masks.dtype, device=masks.device)
    return roi_align(masks, rois, output_size=m, spatial_scale=1.0, sampling_ratio=2, aligned=True)


@ROI_MASK_HEAD_REGISTRY.register()
class BoxInstMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """:class:`MaskRCNNConvUpsampleHead` trained with BoxInst's projection and pairwise terms.

    Losses ``loss_prj`` and ``loss_pairwise`` (the latter times the warm-up factor
    ``min((iter + 1) / WARMUP_ITERS, 1)``), each times its weight and ``LOSS_WEIGHT``. Needs
    :class:`BoxInstROIHeads` for the proposals' Lab colours.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        projection_weight: float = 1.0,
        pairwise_weight: float = 1.0,
        pairwise_dilation: int = 2,
        colour_threshold: float = 0.3,
        colour_theta: float = 2.0,
        warmup_iters: int = 10000,
        **kwargs,
    ):
        """
        Args:
            projection_weight, pairwise_weight: weights of the two terms (Eq. 1).
            pairwise_dilation: dilation of the 3 x 3 edge neighbourhood (Sec. 3.3: 2).
            colour_threshold: tau, the similarity an edge needs to train (0.3).
            colour_theta: theta of the Lab colour similarity (2).
            warmup_iters: iterations over which the pairwise term ramps up linearly (10k).
            input_shape, kwargs: as :class:`MaskRCNNConvUpsampleHead`.
        """
        super().__init__(input_shape, **kwargs)
        self.projection_weight = projection_weight
        self.pairwise_weight = pairwise_weight
        self.pairwise_dilation = pairwise_dilation
        self.colour_threshold = colour_threshold
        self.colour_theta = colour_theta
        self.warmup_iters = warmup_iters

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        b = cfg.MODEL.BOXINST
        ret.update(
            projection_weight=b.PROJECTION_WEIGHT,
            pairwise_weight=b.PAIRWISE_WEIGHT,
            pairwise_dilation=b.PAIRWISE.DILATION,
            colour_threshold=b.PAIRWISE.COLOR_THRESH,
            colour_theta=b.PAIRWISE.THETA,
            warmup_iters=b.PAIRWISE.WARMUP_ITERS,
        )
        return ret

    def warmup_factor(self, iteration: int) -> float:
        """The pairwise term's ramp at (0-based) ``iteration``."""
        if self.warmup_iters <= 0:
            return 1.0
        return min((iteration + 1) / self.warmup_iters, 1.0)

    def forward(
        self, x: torch.Tensor, instances: List[Instances]
    ) -> Union[Dict[str, torch.Tensor], List[Instances]]:
        x = self.layers(x)
        if not self.training:
            mask_rcnn_inference(x, instances)
            return instances
        losses = boxinst_mask_rcnn_loss(
            x,
            instances,
            dilation=self.pairwise_dilation,
            threshold=self.colour_threshold,
            theta=self.colour_theta,
        )
        storage = get_event_storage()
        storage.put_scalar("boxinst/edge_fraction", float(losses.pop("edge_fraction")))
        warmup = self.warmup_factor(storage.iter)
        return {
            "loss_prj": losses["loss_prj"] * self.projection_weight * self.loss_weight,
            "loss_pairwise": losses["loss_pairwise"]
            * (self.pairwise_weight * warmup * self.loss_weight),
        }


@ROI_HEADS_REGISTRY.register()
class BoxInstROIHeads(StandardROIHeads):
    """:class:`StandardROIHeads` that gives the mask head each foreground proposal's Lab colours.

    In training, the normalized image tensor is mapped back to sRGB (``PIXEL_MEAN``, ``PIXEL_STD``,
    ``INPUT.FORMAT``), converted to Lab (:func:`rgb_to_lab`) and pooled with ROIAlign (aligned,
    adaptive sampling, so each bin averages the pixels it covers) on the proposal's mask grid:
    ``2 x MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION`` bins a side, the size of the conv-upsample
    head's output. The result is ``Instances.proposal_lab`` of shape ``(n, 3, M, M)``. With
    ``roi_scale`` > 1 the mask branch pools features and colours on the proposals enlarged by it
    (the mask branch's copies of the proposals carry the enlarged ``proposal_boxes``, so the loss
    rasterizes the GT box on that grid) and, at inference, on the enlarged detected boxes, cropping
    the predicted masks back to the boxes (:func:`crop_roi_masks`).
    """

    @configurable
    def __init__(
        self,
        *,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str,
        colour_resolution: int,
        roi_scale: float = 1.0,
        **kwargs,
    ):
        """
        Args:
            pixel_mean, pixel_std: the model's input normalization (``MODEL.PIXEL_MEAN/STD``).
            input_format: channel order of the image tensor, "RGB" or "BGR" (``INPUT.FORMAT``).
            colour_resolution: side of the ROI grid the colours are pooled on (the mask size).
            roi_scale: the mask branch's ROI side over the box side (>= 1).
            kwargs: as :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        if roi_scale < 1.0:
            raise ValueError(f"MODEL.BOXINST.ROI_SCALE must be >= 1, got {roi_scale}")
        self.roi_scale = roi_scale
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"BoxInstROIHeads needs INPUT.FORMAT RGB or BGR, got {input_format}")
        order = [0, 1, 2] if input_format == "RGB" else [2, 1, 0]
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1)[order], False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1)[order], False)
        self.rgb_order = order
        self.colour_pooler = ROIPooler(
            output_size=colour_resolution,
            scales=(1.0,),
            sampling_ratio=0,
            pooler_type="ROIAlignV2",
        )

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(
            pixel_mean=cfg.MODEL.PIXEL_MEAN,
            pixel_std=cfg.MODEL.PIXEL_STD,
            input_format=cfg.INPUT.FORMAT,
            colour_resolution=2 * cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION,
            roi_scale=cfg.MODEL.BOXINST.ROI_SCALE,
        )
        return ret

    def image_lab(self, images: ImageList) -> torch.Tensor:
        """``(B, 3, H, W)`` Lab colours of the padded, normalized image batch."""
        rgb = images.tensor[:, self.rgb_order] * self.pixel_std + self.pixel_mean
        return rgb_to_lab((rgb / 255.0).clamp(0.0, 1.0))

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        if not self.training:
            return super().forward(images, features, proposals, targets)
        assert targets, "'targets' argument is required during training"
        proposals = self.label_and_sample_proposals(proposals, targets)
        losses = self._forward_box(features, proposals)
        losses.update(self._forward_mask(features, proposals, images))
        losses.update(self._forward_keypoint(features, proposals))
        return proposals, losses

    def _forward_mask(
        self,
        features: Dict[str, torch.Tensor],
        instances: List[Instances],
        images: Optional[ImageList] = None,
    ):
        if not self.mask_on:
            return {} if self.training else instances
        if self.training:
            # Indexing makes new Instances: the enlarged boxes stay in the mask branch's copies.
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            for p in instances:
                p.proposal_boxes = scale_boxes(p.proposal_boxes, self.roi_scale)
            boxes = [p.proposal_boxes for p in instances]
            with torch.no_grad():
                lab = self.colour_pooler([self.image_lab(images)], boxes)
            for p, lab_p in zip(instances, lab.split([len(p) for p in instances])):
                p.proposal_lab = lab_p
        else:
            boxes = [scale_boxes(p.pred_boxes, self.roi_scale) for p in instances]
        x = self.mask_pooler([features[f] for f in self.mask_in_features], boxes)
        out = self.mask_head(x, instances)
        if not self.training and self.roi_scale != 1.0:
            for p in out:
                p.pred_masks = crop_roi_masks(p.pred_masks, self.roi_scale)
        return out
