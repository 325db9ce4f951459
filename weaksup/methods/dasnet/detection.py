"""DASNet detection module (Sec. 3.2): a Detectron2 detector whose products are reused.

The detector is any registered meta-architecture with a multi-scale ``backbone`` (FPN):
``F = {f_k}`` are its backbone features (``cfg.MODEL.DASNET.IN_FEATURES``) and ``B`` its
post-NMS detections in network-input coordinates. Both come from one backbone pass, shared with
the segmentation module, by calling the detector's own heads:

* :class:`GeneralizedRCNN` (Faster R-CNN): RPN proposals, then the ROI heads;
* :class:`DenseDetector` (RetinaNet; FCOS too once registered, Detectron2 builds it from LazyConfig
  only): the dense head, then its ``forward_inference``.
"""

from typing import Dict, List

import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import ImageList, Instances
from torch import nn

__all__ = ["check_detector", "detection_losses", "detect"]


def check_detector(detector: nn.Module) -> None:
    """Raise unless ``detector`` is a detector DASNet can take its products from."""
    if isinstance(detector, GeneralizedRCNN) and detector.proposal_generator is not None:
        return
    if isinstance(detector, DenseDetector):
        return
    raise TypeError(
        f"DASNet's detection module must be a GeneralizedRCNN with a proposal generator or a "
        f"DenseDetector (e.g. RetinaNet), got {type(detector).__name__}"
    )


def _dense_predictions(detector: DenseDetector, features: Dict[str, torch.Tensor]):
    feats = [features[f] for f in detector.head_in_features]
    return feats, detector.head(feats)


def detection_losses(
    detector: nn.Module,
    images: ImageList,
    features: Dict[str, torch.Tensor],
    gt_instances: List[Instances],
) -> Dict[str, torch.Tensor]:
    """The detector's training losses on already computed backbone ``features``."""
    if isinstance(detector, DenseDetector):
        feats, predictions = _dense_predictions(detector, features)
        return detector.forward_training(images, feats, predictions, gt_instances)
    proposals, losses = detector.proposal_generator(images, features, gt_instances)
    _, roi_losses = detector.roi_heads(images, features, proposals, gt_instances)
    return {**losses, **roi_losses}


def detect(
    detector: nn.Module, images: ImageList, features: Dict[str, torch.Tensor]
) -> List[Instances]:
    """Detections ``B`` (``pred_boxes``, ``scores``, ``pred_classes``) in input coordinates."""
    if isinstance(detector, DenseDetector):
        feats, predictions = _dense_predictions(detector, features)
        return detector.forward_inference(images, feats, predictions)
    proposals, _ = detector.proposal_generator(images, features, None)
    results, _ = detector.roi_heads(images, features, proposals, None)
    return results
