"""The BoxCaseg network (BoxCaseg Sec. 3.2-3.3, Fig. 4): class-agnostic segmentation of patches.

Training takes patches (box-supervised and salient, see :mod:`weaksup.methods.boxcaseg.data`), not whole
images: features come from the patch itself, not from ROIAlign on image features (Sec. 3.2.2).
Inference takes whole images with boxes, crops one patch per box, segments it and pastes the
mask back (Sec. 3.4), so it plugs into Detectron2's ``inference_on_dataset`` and evaluators.
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, get_norm
from detectron2.layers.mask_ops import paste_masks_in_image
from detectron2.modeling import FPN, META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import Boxes, Instances
from fvcore.nn import weight_init
from torch import nn
from torchvision.ops import roi_align

from weaksup.modeling.losses.mil_loss import mil_unary_loss, pairwise_smoothness_loss

__all__ = ["BoxCaseg", "SegmentationHead", "WeightTransfer"]

ConvParams = List[Tuple[torch.Tensor, torch.Tensor]]


class SegmentationHead(nn.Module):
    """One segmentation head (Fig. 4, right): ``num_convs`` 3x3 convs, each followed by ``norm``
    and ReLU, then a 1x1 conv to one logit map. The three BoxCaseg heads share this
    architecture; the transferred head runs it with weights produced by :class:`WeightTransfer`
    and norm layers of its own (:func:`run_head`)."""

    def __init__(self, in_channels: int, conv_dim: int, num_convs: int, norm: str = ""):
        super().__init__()
        layers = []
        for _ in range(num_convs):
            layers.append(nn.Conv2d(in_channels, conv_dim, 3, padding=1))
            weight_init.c2_msra_fill(layers[-1])
            in_channels = conv_dim
        layers.append(nn.Conv2d(in_channels, 1, 1))
        nn.init.normal_(layers[-1].weight, std=0.01)
        nn.init.constant_(layers[-1].bias, 0)
        self.layers = nn.ModuleList(layers)
        self.norms = head_norms(norm, conv_dim, num_convs)

    def conv_params(self) -> ConvParams:
        return [(conv.weight, conv.bias) for conv in self.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_head(x, self.conv_params(), self.norms)


def head_norms(norm: str, channels: int, num: int) -> nn.ModuleList:
    """``num`` norm layers (Detectron2's ``get_norm``; identities when ``norm`` is empty)."""
    return nn.ModuleList([get_norm(norm, channels) or nn.Identity() for _ in range(num)])


def run_head(x: torch.Tensor, params: ConvParams, norms: Sequence[nn.Module]) -> torch.Tensor:
    """Apply a head's convs given as ``(weight, bias)`` pairs: norm and ReLU after all but the
    last."""
    for i, (weight, bias) in enumerate(params):
        x = F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)
        if i < len(params) - 1:
            x = F.relu(norms[i](x))
    return x[:, 0]


class WeightTransfer(nn.Module):
    """Weight transfer (Sec. 3.3.2, after Mask^X R-CNN): a 2-layer MLP with LeakyReLU per conv of
    the weak head maps each of its output filters (weights and bias, flattened) to the filter of
    the transferred head. The input is detached: no gradient reaches the weak head (one direction).

    The paper does not say how an MLP is applied to conv weights; as Mask^X R-CNN applies one MLP
    to each class's weight vector, one MLP per layer is applied to each output filter. Nor does it
    give an initialization: the linear layers get Detectron2's ``c2_xavier_fill`` (zero biases), so
    the initial transferred filters are distinct maps of the weak filters at their scale. PyTorch's
    default init (biases of magnitude ~1/sqrt(hidden)) would make every transferred filter nearly
    the same vector (the output bias dominates), and the transferred head would start, and in short
    schedules stay, a near-constant map.

    The transferred head's norm layers (``norms``, one per hidden conv) are its own, not
    transferred, as in the authors' released code (a separate BN after the transferred conv).
    They matter more here than in the other heads: one MLP makes all filters of a layer, so one
    step can push every filter's pre-activation below zero at once. Without them the hidden ReLUs
    all died in 3 of 7 CPU runs (docs/boxcaseg.md) and the head stayed a constant map.
    """

    def __init__(self, head: SegmentationHead, hidden_dim: int, norm: str = ""):
        super().__init__()
        self.mlps = nn.ModuleList()
        for weight, _ in head.conv_params():
            dim = weight[0].numel() + 1
            mlp = nn.Sequential(
                nn.Linear(dim, hidden_dim), nn.LeakyReLU(), nn.Linear(hidden_dim, dim)
            )
            for layer in (mlp[0], mlp[2]):
                weight_init.c2_xavier_fill(layer)
            self.mlps.append(mlp)
        hidden = head.layers[:-1]
        self.norms = head_norms(norm, hidden[0].out_channels if hidden else 0, len(hidden))

    def forward(self, params: ConvParams) -> ConvParams:
        out = []
        for mlp, (weight, bias) in zip(self.mlps, params):
            flat = torch.cat([weight.detach().flatten(1), bias.detach()[:, None]], dim=1)
            new = mlp(flat)
            out.append((new[:, :-1].reshape(weight.shape), new[:, -1]))
        return out


def fuse_features(features: Dict[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """HRNetV2 representation: upsample ``features[names]`` to the first one's size, concatenate."""
    size = features[names[0]].shape[-2:]
    return torch.cat(
        [
            (
                features[n]
                if features[n].shape[-2:] == size
                else F.interpolate(features[n], size=size, mode="bilinear", align_corners=False)
            )
            for n in names
        ],
        dim=1,
    )


# The three heads of Sec. 3.3 (Tab. 4 ablates them).
HEADS = ("weak", "salient", "transferred")


def rescale_min_max(probs: torch.Tensor) -> torch.Tensor:
    """Each ``(S, S)`` map of ``probs`` (N, S, S) rescaled to [0, 1] by its own min and max
    (a constant map becomes 0)."""
    flat = probs.flatten(1)
    low = flat.min(dim=1)[0][:, None, None]
    span = (flat.max(dim=1)[0][:, None, None] - low).clamp(min=1e-6)
    return (probs - low) / span


def inside_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, height, width)`` bool: the pixels whose centre lies in each ``XYXY_ABS`` box."""
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5
    in_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])
    in_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])
    return in_y[:, :, None] & in_x[:, None, :]


@META_ARCH_REGISTRY.register()
class BoxCaseg(nn.Module):
    """Backbone + fused features + weak, salient and transferred heads.

    Training input: a list of patch dicts ``{"image": (3, S, S) tensor, "mil_box": (4,) int
    tensor, optional "salient_mask": (S, S) tensor}``; every patch trains the weak head (MIL,
    Eq. 1-2, with the box or the salient mask's tight box); salient patches also train the
    salient and transferred heads (Eq. 3: one BCE of their mixed logits, averaged over the salient
    patches' pixels, as the authors' code; the MIL terms are averaged over all patches).

    Inference input: Detectron2 dicts ``{"image": (3, H, W) at original resolution, "instances":
    Instances with gt_boxes (and gt_classes)}``; output per image ``{"instances"}`` with one
    ``pred_masks`` per box (``gt_index`` = its position in the input instances).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_features: Sequence[str],
        head_conv_dim: int,
        head_num_convs: int,
        head_norm: str,
        transfer_norm: str,
        transfer_hidden_dim: int,
        pairwise_weight: float,
        alpha: float,
        mask_threshold: float,
        rescale_probs: bool,
        test_size: int,
        test_batch_size: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        heads: Sequence[str] = HEADS,
        test_context: Tuple[float, float] = (1.0, 0.0),
    ):
        """
        Args:
            backbone: any Detectron2 backbone; ``in_features`` of it are fused.
            head_conv_dim, head_num_convs, head_norm: head architecture
                (:class:`SegmentationHead`) of the weak and salient heads; ``head_norm`` is a
                ``get_norm`` name or "".
            transfer_norm: norm of the transferred head's hidden convs (its own layers).
            transfer_hidden_dim: hidden width of the weight-transfer MLP.
            pairwise_weight: weight of the pairwise term (Eq. 1; 0.05).
            alpha: weight of the transferred head's logits against the salient head's (Eq. 3;
                0.7), in the pixel loss and the prediction.
            mask_threshold: foreground probability threshold of pasted masks.
            rescale_probs: rescale each patch's probabilities to [0, 1] (min-max) before the
                threshold, as the authors' released test code (``normPRED``); the paper does
                not say. A patch of one constant value gives an empty mask.
            test_size: side of the patch cropped per box at inference (320).
            test_batch_size: patches per forward pass at inference.
            pixel_mean, pixel_std: input normalization (as GeneralizedRCNN).
            heads: the heads that train and predict (Tab. 4's ablation), a non-empty subset of
                ``("weak", "salient", "transferred")``. The others are built but get no loss.
                Prediction: the alpha mix of salient and transferred (Eq. 3,
                :meth:`pixel_logits`) when both are on, the one of them that is, else the weak
                head; the pixel loss is the BCE of the same map.
            test_context: ``(scale, pixels)``: the test crop's half sides are the box's times
                ``scale``, at least the box's plus ``pixels`` (:meth:`context_boxes`); the mask
                is pasted over the crop and cut to the box. ``(1, 0)``: the crop is the box
                (Sec. 4).
        """
        super().__init__()
        heads = tuple(heads)
        if not heads or set(heads) - set(HEADS):
            raise ValueError(f"MODEL.BOXCASEG.HEADS must be a non-empty subset of {HEADS}: {heads}")
        self.heads = heads
        self.backbone = backbone
        self.in_features = list(in_features)
        shapes = backbone.output_shape()
        in_channels = sum(shapes[f].channels for f in self.in_features)
        head = (in_channels, head_conv_dim, head_num_convs, head_norm)
        self.weak_head = SegmentationHead(*head)
        self.salient_head = SegmentationHead(*head)
        self.weight_transfer = WeightTransfer(self.weak_head, transfer_hidden_dim, transfer_norm)
        self.pairwise_weight = pairwise_weight
        self.alpha = alpha
        self.mask_threshold = mask_threshold
        self.rescale_probs = rescale_probs
        self.test_size = test_size
        self.test_batch_size = test_batch_size
        if test_context[0] < 1 or test_context[1] < 0:
            raise ValueError(
                f"INPUT.BOXCASEG.TEST_CONTEXT must be (scale >= 1, pixels >= 0): {test_context}"
            )
        self.test_context = (float(test_context[0]), float(test_context[1]))
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        # Patches are fed as they are (no padding): an FPN (e.g. Lite0-FPN) needs sides that its
        # coarsest level divides, or its top-down sums fail on mismatched sizes (HRNetV2
        # resizes between its branches and takes any side).
        divisor = backbone.size_divisibility if isinstance(backbone, FPN) else 1
        for key in ("PATCH_SIZE", "TEST_SIZE"):
            side = cfg.INPUT.BOXCASEG.get(key)
            if side % divisor:
                raise ValueError(
                    f"INPUT.BOXCASEG.{key} {side} is not a multiple of {divisor}, which "
                    f"{cfg.MODEL.BACKBONE.NAME} needs (its size_divisibility)"
                )
        b = cfg.MODEL.BOXCASEG
        return {
            "backbone": backbone,
            "in_features": b.IN_FEATURES,
            "head_conv_dim": b.HEAD_CONV_DIM,
            "head_num_convs": b.HEAD_NUM_CONVS,
            "head_norm": b.HEAD_NORM,
            "transfer_norm": b.TRANSFER_NORM,
            "transfer_hidden_dim": b.TRANSFER_HIDDEN_DIM,
            "pairwise_weight": b.PAIRWISE_WEIGHT,
            "alpha": b.ALPHA,
            "mask_threshold": b.MASK_THRESHOLD,
            "rescale_probs": b.RESCALE_PROBS,
            "test_size": cfg.INPUT.BOXCASEG.TEST_SIZE,
            "test_batch_size": b.TEST_BATCH_SIZE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "heads": b.HEADS,
            "test_context": cfg.INPUT.BOXCASEG.TEST_CONTEXT,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(self.device, torch.float32) - self.pixel_mean) / self.pixel_std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Fused backbone features of normalized ``(N, 3, S, S)`` patches."""
        return fuse_features(self.backbone(images), self.in_features)

    def _upsample(self, logits: torch.Tensor, size) -> torch.Tensor:
        """Logit maps ``(N, h, w)`` to the input size (Sec. 3.3.1)."""
        return F.interpolate(logits[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]

    def transferred_params(self) -> ConvParams:
        return self.weight_transfer(self.weak_head.conv_params())

    def transferred_head(self, feats: torch.Tensor, params: ConvParams) -> torch.Tensor:
        """Logits of the transferred head: ``params`` (:meth:`transferred_params`) with its own
        norm layers."""
        return run_head(feats, params, self.weight_transfer.norms)

    @torch.no_grad()
    def head_activity(self, patches: torch.Tensor) -> Dict[str, Tuple[float, float]]:
        """Per head with a hidden conv, on normalized ``patches``: the share of its first hidden
        layer's channels positive (after the norm, before the ReLU) at some pixel of some patch,
        and the share of positive values. A head whose first share is ~0 is a constant map: all
        its ReLUs are dead (the transferred head's failure without ``TRANSFER_NORM``)."""
        feats = self.features(patches)
        heads = {
            "weak": (self.weak_head.conv_params(), self.weak_head.norms),
            "salient": (self.salient_head.conv_params(), self.salient_head.norms),
            "transferred": (self.transferred_params(), self.weight_transfer.norms),
        }
        out = {}
        for name, (params, norms) in heads.items():
            if len(params) < 2:
                continue
            weight, bias = params[0]
            positive = norms[0](F.conv2d(feats, weight, bias, padding=weight.shape[-1] // 2)) > 0
            out[name] = (
                positive.any(dim=3).any(dim=2).any(dim=0).float().mean().item(),
                positive.float().mean().item(),
            )
        return out

    def forward(self, batched_inputs: List[Dict]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self._normalize(torch.stack([x["image"] for x in batched_inputs]))
        size = images.shape[-2:]
        feats = self.features(images)
        weak = self._upsample(self.weak_head(feats), size)
        mil_boxes = torch.stack([x["mil_box"] for x in batched_inputs])
        losses = {}
        if "weak" in self.heads:
            losses["loss_mil"] = mil_unary_loss(weak, mil_boxes)
            losses["loss_pairwise"] = self.pairwise_weight * pairwise_smoothness_loss(
                weak.sigmoid()
            )
        salient = [i for i, x in enumerate(batched_inputs) if "salient_mask" in x]
        params = self.transferred_params()
        pixel_heads = [h for h in ("salient", "transferred") if h in self.heads]
        # parameters without a loss in this batch get a zero loss (DDP waits for all of them)
        trained = set(self.heads) if salient else set(self.heads) & {"weak"}
        unused = []
        if "weak" not in trained:
            unused.append(weak.sum())
        if "salient" not in trained:
            unused += [p.sum() for p in self.salient_head.parameters()]
        if "transferred" not in trained:
            unused += [w.sum() + b.sum() for w, b in params]
            unused += [p.sum() for p in self.weight_transfer.norms.parameters()]
        zero = sum(unused) * 0.0 if unused else None
        if not pixel_heads:
            return self._connect(losses, zero)
        if not salient:
            return self._connect({**losses, "loss_pixel": zero}, zero)
        target = torch.stack([batched_inputs[i]["salient_mask"] for i in salient])
        target = target.to(self.device, torch.float32)
        # Eq. 3: one BCE of the mixed logits over the salient patches' pixels (the authors'
        # train_pd; not scaled by the salient share of the batch)
        logits = self._upsample(self.pixel_logits(feats[salient], params), size)
        losses["loss_pixel"] = F.binary_cross_entropy_with_logits(logits, target)
        return self._connect(losses, zero)

    def pixel_logits(self, feats: torch.Tensor, params: ConvParams) -> torch.Tensor:
        """Eq. 3's map: ``(1 - alpha) s + alpha t`` of the salient (s) and transferred (t) heads'
        logits (the authors' code mixes logits, in training and at test; alpha weights the
        transferred head, as Tab. 6's alpha 0 / 1 rows equal Tab. 4's "weak + salient" / "weak +
        transferred"); the one of the two that is on alone. ``params``: the transferred head's
        (:meth:`transferred_params`)."""
        out = 0.0
        if "salient" in self.heads:
            weight = 1.0 - self.alpha if "transferred" in self.heads else 1.0
            out = out + weight * self.salient_head(feats)
        if "transferred" in self.heads:
            weight = self.alpha if "salient" in self.heads else 1.0
            out = out + weight * self.transferred_head(feats, params)
        return out

    @staticmethod
    def _connect(losses: Dict[str, torch.Tensor], zero: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Add ``zero`` (0 x the parameters no loss reaches) to the last loss, so DDP sees a
        gradient for each parameter whatever the heads and the batch."""
        if zero is None:
            return losses
        last = list(losses)[-1]
        value = losses[last]
        return {**losses, last: zero if value is zero else value + zero}

    def predict_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Foreground probability ``(N, S, S)`` of normalized patches: the sigmoid of the
        salient and transferred heads' mixed logits (Eq. 3, Sec. 3.4; :meth:`pixel_logits`)."""
        feats = self.features(patches)
        if "salient" in self.heads or "transferred" in self.heads:
            logits = self.pixel_logits(feats, self.transferred_params())
        else:
            logits = self.weak_head(feats)
        return self._upsample(logits, patches.shape[-2:]).sigmoid()

    def crop_patches(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Normalized ``(N, 3, S, S)`` patches of ``image`` (3, H, W) at ``boxes`` (N, 4),
        bilinearly resampled (``roi_align`` on pixels with adaptive sampling, i.e. crop + resize,
        not on features)."""
        image = self._normalize(image)[None]
        rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1).to(image)
        return roi_align(image, rois, self.test_size, 1.0, sampling_ratio=0, aligned=True)

    def context_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """The test crops of ``boxes`` (N, 4) ``XYXY_ABS``: same centres, half sides
        ``max(scale * half side, half side + pixels)`` (``test_context``), not clipped."""
        scale, pixels = self.test_context
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        half = (boxes[:, 2:] - boxes[:, :2]) / 2
        half = torch.maximum(half * scale, half + pixels)
        return torch.cat([centre - half, centre + half], dim=1)

    @torch.no_grad()
    def inference(self, batched_inputs: List[Dict]) -> List[Dict[str, Instances]]:
        """One mask per input box: crop, predict (rescaled to [0, 1] per patch when
        ``rescale_probs``), paste back at ``mask_threshold`` (Sec. 3.4); patches of all images of
        the batch go through the network together, ``test_batch_size`` at a time."""
        patches, per_image = [], []
        for x in batched_inputs:
            boxes = x["instances"].gt_boxes.tensor.to(self.device, torch.float32)
            per_image.append(boxes)
            if len(boxes):
                patches.append(self.crop_patches(x["image"], self.context_boxes(boxes)))
        probs = torch.zeros(0, self.test_size, self.test_size, device=self.device)
        if patches:
            patches = torch.cat(patches)
            probs = torch.cat(
                [
                    self.predict_patches(patches[i : i + self.test_batch_size])
                    for i in range(0, len(patches), self.test_batch_size)
                ]
            )
            if self.rescale_probs:
                probs = rescale_min_max(probs)
        results = []
        for x, boxes, p in zip(batched_inputs, per_image, probs.split([len(b) for b in per_image])):
            gt = x["instances"]
            height, width = x["image"].shape[-2:]
            result = Instances((height, width))
            result.pred_boxes = Boxes(boxes)
            result.scores = torch.ones(len(boxes), device=self.device)
            if gt.has("gt_classes"):
                result.pred_classes = gt.gt_classes.to(self.device)
            result.gt_index = (
                gt.gt_index.to(self.device)
                if gt.has("gt_index")
                else torch.arange(len(boxes), device=self.device)
            )
            result.pred_masks = paste_masks_in_image(
                p, self.context_boxes(boxes), (height, width), threshold=self.mask_threshold
            ) & inside_boxes(boxes, height, width)
            results.append({"instances": result})
        return results
