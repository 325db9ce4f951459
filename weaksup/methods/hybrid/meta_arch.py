"""Hybrid networks (Liao et al.): the small-object branch and the fused two-branch model.

* :class:`HybridSmallBranch` (Sec. 2.2): Faster R-CNN trained on boxes; at inference each detected
  box is segmented by GrabCut on the image, checked with the validity rule of Sec. 1 against the
  detected box and replaced by the inscribed ellipse when invalid ("detection and segmentation
  sequentially"). The segmentation is the pseudo-mask engine's ``grabcut_ellipse`` method, the
  very GrabCut that made the training masks.
* :class:`HybridNetwork` (Sec. 2, Fig. 2): runs the trained large branch (Mask R-CNN with
  Enhanced-FPN, any meta-architecture predicting masks) and the small branch on each image and
  fuses their outputs with :func:`fuse_detections`.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import batched_nms
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, build_model
from detectron2.structures import Instances
from torch import nn

from weaksup.config import load_config
from weaksup.pseudo import PseudoMaskConfig, pseudo_masks_for_image
from weaksup.utils.checkpoint import SafeDetectionCheckpointer

__all__ = ["HybridNetwork", "HybridSmallBranch", "fuse_detections", "segment_detections"]


def segment_detections(
    image_bgr: np.ndarray, boxes: np.ndarray, valid_threshold: float = 0.5, threads: int = 1
) -> np.ndarray:
    """Masks of detected boxes (Sec. 2.2): crop GrabCut per box; a mask that is empty, failed, or
    invalid (IoU of its tight box with the detected box below ``valid_threshold``, Sec. 1) is
    replaced by the box's inscribed ellipse.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR image; boxes: ``(N, 4)`` ``XYXY_ABS`` in its pixels.
        threads: the boxes are cut into this many runs, segmented in parallel threads (OpenCV
            releases the GIL; up to 100 detections per image would otherwise run one by one
            while the GPU waits).

    Returns:
        ``(N, H, W)`` bool masks. GrabCut is seeded by the detection's rank (OpenCV's RNG is
        per thread), so the result is deterministic and the same for any ``threads``.
    """
    h, w = image_bgr.shape[:2]
    if len(boxes) == 0:
        return np.zeros((0, h, w), dtype=bool)
    cfg = PseudoMaskConfig(valid_threshold=valid_threshold)
    runs = np.array_split(np.arange(len(boxes)), min(max(threads, 1), len(boxes)))

    def segment(ranks: np.ndarray) -> List[np.ndarray]:
        masks = pseudo_masks_for_image(
            image_bgr, boxes[ranks], "grabcut_ellipse", ranks.tolist(), cfg
        )
        return [m.mask for m in masks]

    if len(runs) == 1:
        return np.stack(segment(runs[0]))
    with ThreadPoolExecutor(len(runs)) as pool:
        return np.stack([m for run in pool.map(segment, runs) for m in run])


@META_ARCH_REGISTRY.register()
class HybridSmallBranch(GeneralizedRCNN):
    """The small-object branch (Sec. 2.2): a :class:`GeneralizedRCNN` detector (configure it as
    Faster R-CNN: ``MODEL.MASK_ON False``) whose postprocessed detections get ``pred_masks`` from
    :func:`segment_detections` (``MODEL.HYBRID.VALID_THRESHOLD``).

    GrabCut runs on the network's input image resized back to the original resolution, where the
    boxes are; the test input is the original image resized by the test transform, so this costs
    no file read and is exact up to that resize. Trains exactly as Faster R-CNN.
    """

    # Its predictions carry masks although MASK_ON is False: the "coco" evaluator scores segm
    # even when no image has a detection (Detectron2 would infer bbox only from empty results).
    predicts_masks = True

    @configurable
    def __init__(self, *, valid_threshold: float, grabcut_threads: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.valid_threshold = valid_threshold
        self.grabcut_threads = grabcut_threads

    @classmethod
    def from_config(cls, cfg: CfgNode):
        if cfg.MODEL.MASK_ON:
            raise ValueError(
                "HybridSmallBranch is a Faster R-CNN whose masks come from GrabCut: set "
                "MODEL.MASK_ON False"
            )
        return {
            **GeneralizedRCNN.from_config(cfg),
            "valid_threshold": cfg.MODEL.HYBRID.VALID_THRESHOLD,
            "grabcut_threads": cfg.MODEL.HYBRID.GRABCUT_THREADS,
        }

    def inference(
        self,
        batched_inputs: List[Dict[str, torch.Tensor]],
        detected_instances: Optional[List[Instances]] = None,
        do_postprocess: bool = True,
    ):
        if not do_postprocess:
            raise ValueError("HybridSmallBranch segments at image resolution: do_postprocess=True")
        results = super().inference(batched_inputs, detected_instances, do_postprocess=True)
        for x, r in zip(batched_inputs, results):
            inst = r["instances"]
            h, w = inst.image_size
            image = x["image"].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
            if self.input_format == "RGB":
                image = image[:, :, ::-1]
            image = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_LINEAR)
            boxes = inst.pred_boxes.tensor.detach().cpu().numpy().astype(np.float64)
            masks = segment_detections(image, boxes, self.valid_threshold, self.grabcut_threads)
            inst.pred_masks = torch.from_numpy(masks).to(inst.pred_boxes.device)
        return results


def fuse_detections(
    large: Instances,
    small: Instances,
    small_area: float,
    nms_thresh: float,
    max_detections: int,
) -> Instances:
    """The fusion rule of Sec. 2 on one image's outputs of the two branches.

    An output is *small* when its mask has fewer than ``small_area`` pixels (64 x 64 in the
    paper). The fused outputs are: the large branch's large outputs, plus the class-wise NMS
    (box IoU > ``nms_thresh`` suppresses the lower score) over the small outputs of both
    branches; the small branch's large outputs are dropped. At most ``max_detections`` are kept,
    by score.

    Args:
        large, small: postprocessed outputs (``pred_boxes``, ``scores``, ``pred_classes``,
            ``pred_masks`` at image resolution) of the same image.
    """
    large_area = large.pred_masks.flatten(1).sum(1)
    small_area_ = small.pred_masks.flatten(1).sum(1)
    from_large = large[large_area >= small_area]
    candidates = Instances.cat([large[large_area < small_area], small[small_area_ < small_area]])
    keep = batched_nms(
        candidates.pred_boxes.tensor, candidates.scores, candidates.pred_classes, nms_thresh
    )
    fused = Instances.cat([from_large, candidates[keep]])
    order = torch.argsort(fused.scores, descending=True)[:max_detections]
    return fused[order]


@META_ARCH_REGISTRY.register()
class HybridNetwork(nn.Module):
    """Both branches on each image, outputs fused by :func:`fuse_detections` (Sec. 2).

    Inference only: the branches are trained separately (pipeline ``"Hybrid"``,
    :mod:`weaksup.methods.hybrid.pipeline`). Built from ``WEAKSUP.HYBRID.LARGE_CONFIG`` / ``SMALL_CONFIG``
    (+ ``*_OPTS``), each branch on ``MODEL.DEVICE``, loading ``MODEL.HYBRID.LARGE_WEIGHTS`` /
    ``SMALL_WEIGHTS`` when given; a checkpoint of the fused model holds both (``large.*``,
    ``small.*``).
    """

    @configurable
    def __init__(
        self,
        *,
        large: nn.Module,
        small: nn.Module,
        small_area: float,
        nms_thresh: float,
        max_detections: int,
    ):
        super().__init__()
        self.large, self.small = large, small
        self.small_area, self.nms_thresh = small_area, nms_thresh
        self.max_detections = max_detections

    @classmethod
    def from_config(cls, cfg: CfgNode):
        h, stages = cfg.MODEL.HYBRID, cfg.WEAKSUP.HYBRID
        branches = {}
        for name, path, opts, weights in (
            ("large", stages.LARGE_CONFIG, stages.LARGE_OPTS, h.LARGE_WEIGHTS),
            ("small", stages.SMALL_CONFIG, stages.SMALL_OPTS, h.SMALL_WEIGHTS),
        ):
            sub = branch_config(path, opts, cfg.MODEL.DEVICE)
            if sub.INPUT.FORMAT != cfg.INPUT.FORMAT:  # this config's test mapper feeds both
                raise ValueError(
                    f"the {name} branch ({path}) takes INPUT.FORMAT {sub.INPUT.FORMAT} but the "
                    f"fused config reads images as {cfg.INPUT.FORMAT}: set the same INPUT.FORMAT"
                )
            model = build_model(sub)
            if weights:
                SafeDetectionCheckpointer(model).load(weights)
            branches[name] = model
        return {
            **branches,
            "small_area": h.SMALL_AREA,
            "nms_thresh": h.FUSION_NMS_THRESH,
            "max_detections": cfg.TEST.DETECTIONS_PER_IMAGE,
        }

    @property
    def device(self) -> torch.device:
        return self.large.device

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]) -> List[Dict[str, Instances]]:
        if self.training:
            raise RuntimeError(
                "HybridNetwork only fuses trained branches: train the large and small branches "
                "(WEAKSUP.PIPELINE 'Hybrid' does both), then evaluate it"
            )
        large, small = self.large(batched_inputs), self.small(batched_inputs)
        return [
            {
                "instances": fuse_detections(
                    a["instances"],
                    b["instances"],
                    self.small_area,
                    self.nms_thresh,
                    self.max_detections,
                )
            }
            for a, b in zip(large, small)
        ]


def branch_config(path: str, opts: Sequence[str], device: str) -> CfgNode:
    """A branch's config (``path`` + ``opts``, frozen) on ``device``."""
    cfg = load_config(path, opts)
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    return cfg
