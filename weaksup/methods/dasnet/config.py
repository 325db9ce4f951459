"""Configuration keys of DASNet (Niu et al.): ``add_dasnet_config``.

Composed into every weaksup config by :func:`weaksup.config.add_weaksup_config`; each key with a
comment, as Detectron2 does.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_dasnet_config"]


def add_dasnet_config(cfg: CN) -> CN:
    """Add DASNet's keys to a Detectron2 config (in place) and return it."""
    _C = cfg
    # DASNet (Niu et al.): detection, box attention and segmentation modules (docs/dasnet.md).
    # MODEL.MASK_ON trains and runs its instance branch (Sec. 3.4.2), as for Mask R-CNN's head.
    _C.MODEL.DASNET = CN()
    # Meta-architecture (META_ARCH_REGISTRY) of the detection module (Sec. 3.2), built from this
    # same config with MASK_ON False: "GeneralizedRCNN" (Faster R-CNN) or a dense detector.
    _C.MODEL.DASNET.DETECTOR = "GeneralizedRCNN"
    # Backbone features F = {f_k} given to the attention module, finest first, each half the
    # resolution of the previous one (FPN levels).
    _C.MODEL.DASNET.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    # Training stage (Sec. 3.5): "detection" (stage 1: detector on boxes, segmentation module
    # frozen), "segmentation" (stage 2: detector frozen, GT boxes into the attention) or "joint".
    _C.MODEL.DASNET.STAGE = "segmentation"
    # Train and predict semantic segmentation (Sec. 3.4.1; outputs["sem_seg"]).
    _C.MODEL.DASNET.SEMANTIC_ON = True
    # Channels of the decoder's deconvolutions above the finest feature map (up to full size).
    _C.MODEL.DASNET.HEAD_DIM = 64
    # Normalization after each deconvolution of the decoder ("", "GN", "BN", "SyncBN", ...).
    _C.MODEL.DASNET.NORM = "GN"
    # k: side of the position-sensitive grid; the instance branch predicts 2k^2 maps (Sec. 3.4.2).
    _C.MODEL.DASNET.PS_GRID = 7
    # Side of the assembled per-box score map (a multiple of PS_GRID), as Mask R-CNN's 28.
    _C.MODEL.DASNET.PS_MASK_SIZE = 28
    # Boxes sampled per GT box to train the position-sensitive maps (Sec. 3.5: p = 2, n = 4).
    _C.MODEL.DASNET.POSITIVES_PER_GT = 2
    _C.MODEL.DASNET.NEGATIVES_PER_GT = 4
    # A sampled box is positive if its IoU with its GT box exceeds this (Sec. 3.5: 0.5), negative
    # if its IoU with every GT box of the image is at most this.
    _C.MODEL.DASNET.POSITIVE_IOU = 0.5
    # Sampled boxes: the GT box shifted by up to this fraction of its size and rescaled by a
    # factor up to (1 + this) (the paper does not say how boxes are drawn).
    _C.MODEL.DASNET.BOX_JITTER = 0.5
    # Detections with at least this score give the class-specific boxes of semantic inference.
    _C.MODEL.DASNET.SEMANTIC_SCORE_THRESH = 0.5
    # Inference runs the decoder on at most this many class- or instance-specific inputs at once.
    _C.MODEL.DASNET.MAX_QUERIES_PER_PASS = 32
    # Training: each class-specific input holds a random non-empty subset of the class's GT
    # boxes (Sec. 4.1, "the number of class-specific bboxes is randomly set"); False: all of them.
    _C.MODEL.DASNET.RANDOM_BOX_SUBSET = False
    # Box attention (Sec. 3.3, Eq. 1): the decoder sees the features inside the query's boxes
    # only; False feeds it the whole maps (the ablation of Eq. 1, benchmarks/dasnet.py).
    _C.MODEL.DASNET.BOX_ATTENTION = True
    return cfg
