"""DASNet (Niu et al.): detection, attention and segmentation modules (Sec. 3, Fig. 1)."""

from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.postprocessing import detector_postprocess, sem_seg_postprocess
from detectron2.structures import BitMasks, ImageList, Instances, PolygonMasks
from detectron2.utils.events import get_event_storage
from torch import nn

from .attention import AttentionQueries, box_attention, box_region_masks
from .detection import check_detector, detect, detection_losses
from .position_sensitive import (
    assemble_position_sensitive,
    instance_losses,
    sample_instance_boxes,
)
from .segmentation import DASNetDecoder, semantic_loss

__all__ = ["DASNet"]

STAGES = ("detection", "segmentation", "joint")


def _dense_masks(instances: Instances, height: int, width: int) -> torch.Tensor:
    """``gt_masks`` of ``instances`` as a (G, height, width) bool tensor (zero padded), on the
    device of their boxes (polygons are rasterised on the CPU)."""
    masks = instances.gt_masks
    if isinstance(masks, PolygonMasks):
        masks = BitMasks.from_polygon_masks(masks, *instances.image_size)
    dense = masks.tensor.bool().to(instances.gt_boxes.device)
    return F.pad(dense, (0, width - dense.shape[2], 0, height - dense.shape[1]))


def _usable_masks(instances: Instances) -> torch.Tensor:
    """Which instances' masks may train (``gt_mask_valid``; all if absent, none if no masks)."""
    if not instances.has("gt_masks"):
        return torch.zeros(len(instances), dtype=torch.bool, device=instances.gt_boxes.device)
    if instances.has("gt_mask_valid"):
        return instances.gt_mask_valid
    return torch.ones(len(instances), dtype=torch.bool, device=instances.gt_boxes.device)


def _select(queries: AttentionQueries, first: int, last: int) -> AttentionQueries:
    """Queries ``first .. last - 1`` (re-indexed from 0) and their boxes."""
    keep = (queries.box_query >= first) & (queries.box_query < last)
    return AttentionQueries(
        queries.image_index[first:last],
        queries.classes[first:last],
        queries.boxes[keep],
        queries.box_query[keep] - first,
    )


@META_ARCH_REGISTRY.register()
class DASNet(nn.Module):
    """DASNet: a detector, box attention (Eq. 1) and a class-agnostic segmentation decoder.

    * training (Sec. 3.5): ``stage="detection"`` trains the detector on boxes (the segmentation
      module is frozen); ``"segmentation"`` freezes the detector and trains the decoder with the
      GT class-specific boxes fed to the attention; ``"joint"`` trains both, the segmentation
      losses reaching the detector's features through the attention.
    * semantic inference (Sec. 3.4.1): one decoder pass per detected class (boxes with score >=
      ``semantic_score_thresh``); ``sem_seg`` channel ``l + 1`` is the foreground probability of
      class ``l`` inside its boxes (0 elsewhere), channel 0 is one minus the largest of them, so
      the argmax is the max over class-specific maps, background where none exceeds 0.5.
    * instance inference (Sec. 3.5): one decoder pass per detection with that box alone in the
      attention; its mask is the inside probability assembled from the position-sensitive maps.
    """

    @configurable
    def __init__(
        self,
        *,
        detector: nn.Module,
        in_features: List[str],
        decoder: DASNetDecoder,
        num_classes: int,
        stage: str,
        semantic_on: bool,
        instance_on: bool,
        ignore_value: int,
        ps_grid: int,
        ps_mask_size: int,
        positives_per_gt: int,
        negatives_per_gt: int,
        positive_iou: float,
        box_jitter: float,
        semantic_score_thresh: float,
        max_queries_per_pass: int,
        random_box_subset: bool = False,
        box_attention: bool = True,
    ):
        """
        Args:
            detector: the detection module (see :mod:`weaksup.methods.dasnet.detection`).
            in_features: names of the backbone features ``f_1 .. f_m``, finest first.
            decoder: the segmentation module.
            num_classes: object classes C of the detector.
            stage: one of "detection", "segmentation", "joint".
            semantic_on / instance_on: train and predict ``sem_seg`` / instance masks.
            ignore_value: label-map value of unlabelled pixels (``sem_seg`` inputs).
            box_attention: Eq. 1 on (the default); False gives the decoder every query's whole
                feature maps (the ablation of the attention module: only the losses and the
                instance assembly still see the boxes).
            others: see ``cfg.MODEL.DASNET`` in :mod:`weaksup.config`.
        """
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"MODEL.DASNET.STAGE must be one of {STAGES}, got {stage!r}")
        if stage != "detection" and not (semantic_on or instance_on):
            raise ValueError(
                f"DASNet stage {stage!r} trains the segmentation module, but neither "
                "MODEL.DASNET.SEMANTIC_ON nor MODEL.MASK_ON is set"
            )
        check_detector(detector)
        self.detector = detector
        self.in_features = list(in_features)
        self.decoder = decoder
        self.num_classes = num_classes
        self.stage = stage
        self.semantic_on = semantic_on
        self.instance_on = instance_on
        self.ignore_value = ignore_value
        self.ps_grid = ps_grid
        self.ps_mask_size = ps_mask_size
        self.positives_per_gt = positives_per_gt
        self.negatives_per_gt = negatives_per_gt
        self.positive_iou = positive_iou
        self.box_jitter = box_jitter
        self.semantic_score_thresh = semantic_score_thresh
        self.max_queries_per_pass = max_queries_per_pass
        self.random_box_subset = random_box_subset
        self.box_attention = box_attention
        # Frozen parts get no gradient, so the optimizer skips them and DDP does not wait on them.
        frozen = []
        if stage == "segmentation":
            frozen.append(self.detector)
        if stage == "detection" or not semantic_on:
            frozen.append(self.decoder.semantic_predictor)
        if stage == "detection" or not instance_on:
            frozen.append(self.decoder.ps_predictor)
        if stage == "detection":
            frozen.append(self.decoder)
        for module in frozen:
            module.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg):
        c = cfg.MODEL.DASNET
        det_cfg = cfg.clone()
        det_cfg.defrost()
        det_cfg.MODEL.META_ARCHITECTURE = c.DETECTOR
        det_cfg.MODEL.MASK_ON = False
        detector = META_ARCH_REGISTRY.get(c.DETECTOR)(det_cfg)
        shapes = detector.backbone.output_shape()
        missing = [f for f in c.IN_FEATURES if f not in shapes]
        if missing:
            raise ValueError(f"MODEL.DASNET.IN_FEATURES {missing} not in the backbone's {shapes}")
        num_classes = getattr(detector, "num_classes", None)
        if num_classes is None:
            num_classes = detector.roi_heads.num_classes
        return {
            "detector": detector,
            "in_features": c.IN_FEATURES,
            "decoder": DASNetDecoder(
                [shapes[f] for f in c.IN_FEATURES], c.HEAD_DIM, c.NORM, c.PS_GRID
            ),
            "num_classes": num_classes,
            "stage": c.STAGE,
            "semantic_on": c.SEMANTIC_ON,
            "instance_on": cfg.MODEL.MASK_ON,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "ps_grid": c.PS_GRID,
            "ps_mask_size": c.PS_MASK_SIZE,
            "positives_per_gt": c.POSITIVES_PER_GT,
            "negatives_per_gt": c.NEGATIVES_PER_GT,
            "positive_iou": c.POSITIVE_IOU,
            "box_jitter": c.BOX_JITTER,
            "semantic_score_thresh": c.SEMANTIC_SCORE_THRESH,
            "max_queries_per_pass": c.MAX_QUERIES_PER_PASS,
            "random_box_subset": c.RANDOM_BOX_SUBSET,
            "box_attention": c.BOX_ATTENTION,
        }

    @property
    def device(self) -> torch.device:
        return self.detector.device

    def train(self, mode: bool = True) -> "DASNet":
        """As ``nn.Module.train``; the frozen module of the stage stays in eval mode."""
        super().train(mode)
        if self.stage == "segmentation":
            self.detector.train(False)
        elif self.stage == "detection":
            self.decoder.train(False)
        return self

    def forward(self, batched_inputs: List[Dict]) -> List[Dict] | Dict[str, torch.Tensor]:
        """
        Args:
            batched_inputs: outputs of the dataset mapper: ``image``, ``instances`` (training:
                ``gt_boxes``, ``gt_classes``, ``gt_masks`` and ``gt_mask_valid``), optionally
                ``sem_seg`` (a label map: class ``l`` is ``l + 1``), ``height``, ``width``.

        Returns:
            training: a dict of losses; inference: per image ``{"instances"}`` (with
            ``pred_masks`` if the instance branch is on) and ``"sem_seg"`` (C + 1, height, width)
            if the semantic branch is on.
        """
        images = self.detector.preprocess_image(batched_inputs)
        if not self.training:
            return self.inference(batched_inputs, images)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        train_detector = self.stage != "segmentation"
        with torch.set_grad_enabled(train_detector):
            features = self.detector.backbone(images.tensor)
        losses = {}
        if train_detector:
            losses.update(detection_losses(self.detector, images, features, gt_instances))
        if self.stage != "detection":
            sem_seg = [x.get("sem_seg") for x in batched_inputs]
            losses.update(self._segmentation_losses(images, features, gt_instances, sem_seg))
        return losses

    # ---------------------------------------------------------------- training (Sec. 3.5)
    def _training_queries(
        self, gt_instances: List[Instances], sem_seg: List[Optional[torch.Tensor]]
    ) -> Tuple[AttentionQueries, List[torch.Tensor]]:
        """One query per (image, class) with a usable mask: its GT boxes of that class.

        With ``random_box_subset`` (Sec. 4.1: "the number of class-specific bboxes is randomly
        set") a query holds a random non-empty subset of them, its size uniform in 1..n.

        Returns:
            the queries, and per query the indices of its GT instances in its image.
        """
        image_index, classes, boxes, box_query, members = [], [], [], [], []
        for i, inst in enumerate(gt_instances):
            usable = _usable_masks(inst) | (sem_seg[i] is not None)
            for c in torch.unique(inst.gt_classes[usable]).tolist():
                index = torch.nonzero(inst.gt_classes == c).flatten()
                if self.random_box_subset:
                    keep = int(torch.randint(1, len(index) + 1, ()))
                    index = index[torch.randperm(len(index), device=index.device)[:keep]]
                box_query.append(torch.full((len(index),), len(image_index)))
                image_index.append(i)
                classes.append(c)
                boxes.append(inst.gt_boxes.tensor[index])
                members.append(index)
        device = self.device
        queries = AttentionQueries(
            torch.tensor(image_index, dtype=torch.long, device=device),
            torch.tensor(classes, dtype=torch.long, device=device),
            cat(boxes) if boxes else torch.zeros((0, 4), device=device),
            cat(box_query).to(device) if boxes else torch.zeros(0, dtype=torch.long, device=device),
        )
        return queries, members

    def _segmentation_losses(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        gt_instances: List[Instances],
        sem_seg: List[Optional[torch.Tensor]],
    ) -> Dict[str, torch.Tensor]:
        queries, members = self._training_queries(gt_instances, sem_seg)
        storage = get_event_storage()
        storage.put_scalar("dasnet/class_specific_inputs", len(queries))
        if len(queries) == 0:  # no mask in the batch: zero losses that touch every trained weight
            zero = sum(p.sum() for p in self.decoder.parameters() if p.requires_grad) * 0.0
            names = ["loss_sem_seg"] if self.semantic_on else []
            names += ["loss_instance_score", "loss_instance_mask"] if self.instance_on else []
            return {name: zero for name in names}
        image_size = tuple(images.tensor.shape[-2:])
        x = self.decoder(self._attend([features[f] for f in self.in_features], queries, image_size))
        losses = {}
        if self.semantic_on:
            targets = self._semantic_targets(queries, gt_instances, sem_seg, image_size)
            logits = self.decoder.semantic_predictor(x)
            losses["loss_sem_seg"] = semantic_loss(logits, targets, self.ignore_value)
        if self.instance_on:
            ps_maps = self.decoder.ps_predictor(x)
            losses.update(
                self._instance_losses(ps_maps, queries, members, gt_instances, image_size)
            )
        return losses

    def _semantic_targets(
        self,
        queries: AttentionQueries,
        gt_instances: List[Instances],
        sem_seg: List[Optional[torch.Tensor]],
        image_size: Tuple[int, int],
    ) -> torch.Tensor:
        """(Q, H, W) targets of the class-specific 2-class maps (Sec. 3.5).

        Foreground: pixels of class ``l``, from the label map ``sem_seg`` (value ``l + 1``) when
        the image has one, else the union of the usable class-``l`` instance masks. Ignored:
        pixels outside the class-``l`` boxes, unlabelled label-map pixels, the padding, and
        pixels in the box of a class-``l`` instance whose mask is unusable.
        """
        height, width = image_size
        region = box_region_masks(
            queries.boxes, queries.box_query, len(queries), image_size, image_size
        )
        targets = []
        for q, (i, c) in enumerate(zip(queries.image_index.tolist(), queries.classes.tolist())):
            inst = gt_instances[i]
            ignore = ~region[q]
            if sem_seg[i] is not None:
                label = sem_seg[i].to(self.device)
                label = F.pad(label, (0, width - label.shape[1], 0, height - label.shape[0]))
                foreground = label == c + 1
                ignore |= label == self.ignore_value
            else:
                of_class = inst.gt_classes == c
                usable = of_class & _usable_masks(inst)
                foreground = _dense_masks(inst[usable], height, width).any(dim=0)
                unusable = of_class & ~usable
                if unusable.any():
                    ignore |= box_region_masks(
                        inst.gt_boxes.tensor[unusable],
                        torch.zeros(int(unusable.sum()), dtype=torch.long, device=self.device),
                        1,
                        image_size,
                        image_size,
                    )[0]
            h, w = inst.image_size
            ignore[h:, :] = True
            ignore[:, w:] = True
            target = foreground.long()
            target[ignore] = self.ignore_value
            targets.append(target)
        return torch.stack(targets)

    def _instance_losses(
        self,
        ps_maps: torch.Tensor,
        queries: AttentionQueries,
        members: List[torch.Tensor],
        gt_instances: List[Instances],
        image_size: Tuple[int, int],
    ) -> Dict[str, torch.Tensor]:
        """Sec. 3.5: p positive and n negative boxes per usable GT instance of each query."""
        boxes, labels, box_query, targets = [], [], [], []
        for q, i in enumerate(queries.image_index.tolist()):
            inst = gt_instances[i]
            usable = torch.zeros(len(inst), dtype=torch.bool, device=inst.gt_classes.device)
            usable[members[q]] = True
            usable &= _usable_masks(inst)
            if not usable.any():
                continue
            gt = inst[usable]
            sampled, label, gt_index = sample_instance_boxes(
                gt.gt_boxes.tensor,
                inst.gt_boxes.tensor,
                self.positives_per_gt,
                self.negatives_per_gt,
                self.positive_iou,
                self.box_jitter,
                inst.image_size,
            )
            positive = label == 1
            targets.append(
                gt.gt_masks[gt_index[positive]].crop_and_resize(
                    sampled[positive], self.ps_mask_size
                )
            )
            boxes.append(sampled)
            labels.append(label)
            box_query.append(torch.full_like(label, q))
        if not boxes:  # label maps only (no instance masks) in this batch
            zero = ps_maps.sum() * 0
            return {"loss_instance_score": zero, "loss_instance_mask": zero}
        assembled = assemble_position_sensitive(
            ps_maps, cat(boxes), cat(box_query), self.ps_grid, self.ps_mask_size
        )
        return instance_losses(assembled, cat(labels), cat(targets).to(self.device))

    def _attend(
        self, features: List[torch.Tensor], queries: AttentionQueries, image_size: Tuple[int, int]
    ) -> List[torch.Tensor]:
        """The decoder's input per query: Eq. 1's box attention, or with ``box_attention`` off
        the query's image's unmasked maps."""
        if self.box_attention:
            return box_attention(features, queries, image_size)
        return [f[queries.image_index] for f in features]

    # ---------------------------------------------------------------- inference (Sec. 3.5)
    def _decode_in_chunks(
        self,
        features: List[torch.Tensor],
        queries: AttentionQueries,
        image_size: Tuple[int, int],
        head: Callable[[AttentionQueries, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """``head(chunk, decoder features)`` over chunks of at most ``max_queries_per_pass``."""
        outputs = []
        for first in range(0, len(queries), self.max_queries_per_pass):
            chunk = _select(queries, first, first + self.max_queries_per_pass)
            outputs.append(head(chunk, self.decoder(self._attend(features, chunk, image_size))))
        return cat(outputs)

    def _semantic_inference(
        self, features: List[torch.Tensor], detections: List[Instances], image_size: Tuple[int, int]
    ) -> torch.Tensor:
        """(N, C + 1, H, W) scores: max over the class-specific maps (see the class docstring)."""
        image_index, classes, boxes, box_query = [], [], [], []
        for i, det in enumerate(detections):
            det = det[det.scores >= self.semantic_score_thresh]
            for c in torch.unique(det.pred_classes).tolist():
                of_class = det.pred_classes == c
                box_query.append(torch.full((int(of_class.sum()),), len(image_index)))
                image_index.append(i)
                classes.append(c)
                boxes.append(det.pred_boxes.tensor[of_class])
        scores = features[0].new_zeros((len(detections), self.num_classes + 1, *image_size))
        if image_index:
            queries = AttentionQueries(
                torch.tensor(image_index, device=self.device),
                torch.tensor(classes, device=self.device),
                cat(boxes),
                cat(box_query).to(self.device),
            )

            def foreground(chunk: AttentionQueries, x: torch.Tensor) -> torch.Tensor:
                prob = self.decoder.semantic_predictor(x).softmax(dim=1)[:, 1]
                region = box_region_masks(
                    chunk.boxes, chunk.box_query, len(chunk), image_size, image_size
                )
                return prob * region

            prob = self._decode_in_chunks(features, queries, image_size, foreground)
            scores[queries.image_index, queries.classes + 1] = prob
        scores[:, 0] = 1 - scores[:, 1:].max(dim=1).values
        return scores

    def _instance_inference(
        self, features: List[torch.Tensor], detections: List[Instances], image_size: Tuple[int, int]
    ) -> None:
        """Set ``pred_masks`` (R, 1, M, M): each detection segmented with its own box alone."""
        counts = [len(d) for d in detections]
        boxes = cat([d.pred_boxes.tensor for d in detections])
        queries = AttentionQueries(
            torch.repeat_interleave(
                torch.arange(len(detections), device=self.device),
                torch.tensor(counts, device=self.device),
            ),
            cat([d.pred_classes for d in detections]),
            boxes,
            torch.arange(len(boxes), device=self.device),
        )

        def inside_probability(chunk: AttentionQueries, x: torch.Tensor) -> torch.Tensor:
            assembled = assemble_position_sensitive(
                self.decoder.ps_predictor(x),
                chunk.boxes,
                chunk.box_query,
                self.ps_grid,
                self.ps_mask_size,
            )
            return assembled.softmax(dim=1)[:, :1]

        if len(boxes):
            masks = self._decode_in_chunks(features, queries, image_size, inside_probability)
        else:
            masks = boxes.new_zeros((0, 1, self.ps_mask_size, self.ps_mask_size))
        for det, m in zip(detections, masks.split(counts)):
            det.pred_masks = m

    def inference(self, batched_inputs: List[Dict], images: ImageList) -> List[Dict]:
        """Detect, then segment (Sec. 3.5); outputs at each input's ``height`` x ``width``."""
        features = self.detector.backbone(images.tensor)
        detections = detect(self.detector, images, features)
        feats = [features[f] for f in self.in_features]
        image_size = tuple(images.tensor.shape[-2:])
        if self.instance_on:
            self._instance_inference(feats, detections, image_size)
        sem_seg = (
            self._semantic_inference(feats, detections, image_size) if self.semantic_on else None
        )
        results = []
        for i, (det, inputs, size) in enumerate(
            zip(detections, batched_inputs, images.image_sizes)
        ):
            height, width = inputs.get("height", size[0]), inputs.get("width", size[1])
            out = {"instances": detector_postprocess(det, height, width)}
            if sem_seg is not None:
                out["sem_seg"] = sem_seg_postprocess(sem_seg[i], size, height, width)
            results.append(out)
        return results
