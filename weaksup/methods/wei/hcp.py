"""Hypotheses-CNN-Pooling (HCP, Wei et al. 2014 [30]; Wei et al. 2016 Sec. 3.1, Fig. 2).

A shared CNN classifies each hypothesis (a proposal box cropped from the image and resized to a
fixed square); cross-hypothesis max pooling of the class scores gives one multi-label prediction
per image, trained with image-level labels only:

* image fine-tuning (``MODEL.HCP.MODE: "image"``): the whole image is the only hypothesis;
* hypothesis fine-tuning (``"hypotheses"``): a few selected proposals per image
  (:func:`weaksup.pseudo.proposals.select_hypotheses`, 10 in the paper) plus the whole image.

The loss is the cross-entropy of the softmax of the max-pooled scores against the normalised
label vector ``y / |y|_1`` (HCP's multi-label loss; :func:`soft_cross_entropy`). Stage 2 calls
:meth:`HCP.score_hypotheses`: every proposal's softmax scores (the "predictive confidences",
Sec. 3.1) and its penultimate-layer features (Sec. 3.2).

Background class (``MODEL.HCP.BACKGROUND_CLASS``, not in the paper): a (C+1)-th output that is a
label of *every* training image (each has background somewhere), so that images with no object
label (negative images) have a target and, after max pooling, the most background-like
hypothesis of each image is pulled to it. Softmax outputs then give a proposal of background
a low confidence for every object class, where a C-way softmax must spread it over the object
classes. Scores returned are the C object columns of the (C+1)-way softmax, so a proposal is a
candidate of class k at confidence > 0.5 exactly as in Sec. 3.1. The paper trains on VOC, where
classes alternate across scenes; where one class is in every photo of its scenes (the CPU demo's
PennFudan), a C-way HCP learns the scene and scores every proposal of it as the class
(docs/wei.md).
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn
from torchvision.ops import roi_align

from weaksup.modeling.losses.soft_multilabel_loss import soft_cross_entropy

__all__ = ["HCP"]


@META_ARCH_REGISTRY.register()
class HCP(nn.Module):
    """HCP classifier (module docstring). Inputs: dicts with ``image`` ``(3, H, W)``,
    ``image_labels`` (training) and, in hypothesis mode, ``proposal_boxes`` ``(n, 4)``.
    Inference returns ``{"hcp_scores": (C,)}`` per image (softmax of the pooled scores; with a
    background class, its C object columns)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_feature: str,
        num_classes: int,
        crop_size: int,
        fc_dim: int,
        use_hypotheses: bool,
        include_whole_image: bool,
        background_class: bool,
        test_batch_size: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ):
        """
        Args:
            backbone: the shared CNN (crops in, ``in_feature`` map out).
            num_classes: C object classes (no background).
            crop_size: side of the square each hypothesis is resized to.
            fc_dim: width of the penultimate fully connected layer (VGG's fc7: 4,096).
            use_hypotheses: hypothesis fine-tuning (else image fine-tuning).
            include_whole_image: add the whole image to the hypotheses of hypothesis mode.
            background_class: a (C+1)-th output, a label of every image (module docstring).
            test_batch_size: crops per forward pass in :meth:`score_hypotheses`.
        """
        super().__init__()
        self.backbone = backbone
        self.in_feature = in_feature
        self.crop_size = crop_size
        self.use_hypotheses = use_hypotheses
        self.include_whole_image = include_whole_image
        self.num_classes = num_classes
        self.background_class = background_class
        self.test_batch_size = test_batch_size
        channels = backbone.output_shape()[in_feature].channels
        self.fc = nn.Linear(channels, fc_dim)
        self.classifier = nn.Linear(fc_dim, num_classes + int(background_class))
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.constant_(self.classifier.bias, 0)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg) -> Dict:
        c = cfg.MODEL.HCP
        if c.MODE not in ("image", "hypotheses"):
            raise ValueError(f"MODEL.HCP.MODE must be 'image' or 'hypotheses', got {c.MODE!r}")
        return {
            "backbone": build_backbone(cfg),
            "in_feature": c.IN_FEATURE,
            "num_classes": c.NUM_CLASSES,
            "crop_size": c.CROP_SIZE,
            "fc_dim": c.FC_DIM,
            "use_hypotheses": c.MODE == "hypotheses",
            "include_whole_image": c.INCLUDE_WHOLE_IMAGE,
            "background_class": c.BACKGROUND_CLASS,
            "test_batch_size": c.TEST_BATCH_SIZE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _crops(self, images: torch.Tensor, boxes: List[torch.Tensor]) -> torch.Tensor:
        """``(sum n_i, 3, S, S)`` crops of the normalised padded ``images`` at ``boxes``."""
        return roi_align(images, boxes, self.crop_size, spatial_scale=1.0, aligned=True)

    def classify(self, crops: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The shared CNN: ``(logits (n, C), penultimate features (n, fc_dim))``."""
        x = self.backbone(crops)[self.in_feature]
        feats = F.relu(self.fc(x.mean(dim=(2, 3))))
        return self.classifier(feats), feats

    def _hypotheses(self, batched_inputs: List[Dict], sizes) -> List[torch.Tensor]:
        out = []
        for x, (h, w) in zip(batched_inputs, sizes):
            whole = torch.tensor([[0.0, 0.0, w, h]], device=self.device)
            if not self.use_hypotheses:
                out.append(whole)
                continue
            boxes = x["proposal_boxes"].to(self.device).float().reshape(-1, 4)
            if self.include_whole_image or len(boxes) == 0:
                boxes = torch.cat([whole, boxes])
            out.append(boxes)
        return out

    def forward(self, batched_inputs: List[Dict]):
        images = [
            (x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        images = ImageList.from_tensors(images)
        boxes = self._hypotheses(batched_inputs, images.image_sizes)
        logits, _ = self.classify(self._crops(images.tensor, boxes))
        # cross-hypothesis max pooling
        pooled = torch.stack([l.max(dim=0).values for l in logits.split([len(b) for b in boxes])])
        if not self.training:
            return [{"hcp_scores": p} for p in self._object_scores(pooled)]
        target = torch.zeros_like(pooled)
        for i, x in enumerate(batched_inputs):
            labels = x["image_labels"].to(self.device)
            if self.background_class:
                labels = torch.cat([labels, labels.new_tensor([self.num_classes])])
            if len(labels) == 0:
                raise ValueError(
                    f"image {x.get('file_name')!r} has no image-level label "
                    "(images without one need MODEL.HCP.BACKGROUND_CLASS)"
                )
            target[i, labels] = 1.0 / len(labels.unique())
        return {"loss_hcp": soft_cross_entropy(pooled, target, dim=1)}

    @torch.no_grad()
    def score_hypotheses(
        self, image: torch.Tensor, boxes: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-hypothesis softmax scores ``(n, C)`` and penultimate features ``(n, fc_dim)`` of
        ``boxes`` (``(n, 4)``, coordinates of ``image``, a ``(3, H, W)`` unnormalised tensor),
        in chunks of ``test_batch_size`` crops (Sec. 3.1-3.2)."""
        x = ((image.to(self.device).float() - self.pixel_mean) / self.pixel_std)[None]
        scores, feats = [], []
        for chunk in boxes.to(self.device).float().split(self.test_batch_size):
            logits, f = self.classify(self._crops(x, [chunk]))
            scores.append(self._object_scores(logits))
            feats.append(f)
        if not scores:
            return x.new_zeros(0, self.num_classes), x.new_zeros(0, self.fc.out_features)
        return torch.cat(scores), torch.cat(feats)

    def _object_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over the classifier's outputs, the C object classes' columns."""
        return logits.softmax(dim=1)[:, : self.num_classes]
