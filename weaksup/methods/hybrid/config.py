"""Configuration keys of Hybrid networks (Liao et al.): ``add_hybrid_config``.

Composed into every weaksup config by :func:`weaksup.config.add_weaksup_config`; each key with a
comment, as Detectron2 does.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_hybrid_config"]


def add_hybrid_config(cfg: CN) -> CN:
    """Add Hybrid's keys to a Detectron2 config (in place) and return it."""
    _C = cfg
    # Hybrid networks (Liao et al.): large-object branch (Mask R-CNN, Enhanced-FPN), small-object
    # branch (Faster R-CNN + GrabCut), fused inference (meta-architecture "HybridNetwork") and the
    # pipeline "Hybrid" that trains and evaluates all of them (docs/hybrid.md).
    _C.MODEL.HYBRID = CN()
    # Checkpoints of the trained branches that HybridNetwork loads (the pipeline sets them).
    _C.MODEL.HYBRID.LARGE_WEIGHTS = ""
    _C.MODEL.HYBRID.SMALL_WEIGHTS = ""
    # Fusion (Sec. 2): an output is small when its mask has fewer pixels than this (64 x 64);
    # small outputs come from NMS over both branches' small outputs, large ones from the large
    # branch only.
    _C.MODEL.HYBRID.SMALL_AREA = 64 * 64
    # Box IoU above which the lower-scored of two same-class small outputs is suppressed.
    _C.MODEL.HYBRID.FUSION_NMS_THRESH = 0.5
    # Validity (Sec. 1): a GrabCut mask is valid when IoU(its tight box, its box) >= this; the
    # same rule replaces the small branch's invalid GrabCut masks by ellipses (Sec. 2.2).
    _C.MODEL.HYBRID.VALID_THRESHOLD = 0.5
    # Threads segmenting one image's detections by GrabCut at inference (small branch); the
    # masks are the same for any count (docs/hybrid.md, "GrabCut at evaluation").
    _C.MODEL.HYBRID.GRABCUT_THREADS = 4

    # The Hybrid pipeline's stages (WEAKSUP.PIPELINE: "Hybrid"; docs/hybrid.md).
    _C.WEAKSUP.HYBRID = CN()
    # Branch configs (paths as given on the command line, i.e. relative to the working directory)
    # and their KEY VALUE overrides: the large branch (Mask R-CNN on valid GrabCut masks, Sec. 2.1)
    _C.WEAKSUP.HYBRID.LARGE_CONFIG = ""
    _C.WEAKSUP.HYBRID.LARGE_OPTS = []
    # ... the small branch (Faster R-CNN, then GrabCut per detected box, Sec. 2.2) ...
    _C.WEAKSUP.HYBRID.SMALL_CONFIG = ""
    _C.WEAKSUP.HYBRID.SMALL_OPTS = []
    # ... and, for the pipeline's ablation table, the baseline Mask R-CNN trained on all GrabCut
    # masks, valid or not (Tab. 2 "baseline").
    _C.WEAKSUP.HYBRID.BASELINE_CONFIG = ""
    _C.WEAKSUP.HYBRID.BASELINE_OPTS = []
    # Instances the small branch trains on (pipeline): "invalid" (only those whose GrabCut mask
    # is invalid, Sec. 2: the paper config; the others become background) or "all" (boxes are
    # never noisy, and Tab. 2's small branch reaches AP_L 22.2; docs/hybrid.md).
    _C.WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES = "all"
    # Instances the large branch trains on (pipeline): "valid" (Sec. 2.1 "using only the samples
    # with valid masks": the paper config; the invalid ones become background) or "all" (every box
    # trains RPN and box head, only valid masks the mask head).
    _C.WEAKSUP.HYBRID.LARGE_TRAIN_INSTANCES = "all"
    # Also train and fuse the branches on the other split (the paper's, or all / all when the
    # config's is the paper's), with their rows in the ablation table.
    _C.WEAKSUP.HYBRID.SPLIT_ABLATION = False
    # Pseudo masks of the pipeline's first stage (a weaksup.pseudo engine job).
    _C.WEAKSUP.HYBRID.PSEUDO = CN()
    # Engine method (weaksup.pseudo.METHODS): "grabcut" (Sec. 1; empty or failed -> ellipse).
    _C.WEAKSUP.HYBRID.PSEUDO.METHOD = "grabcut"
    # Worker processes per training process (0: in the process itself).
    _C.WEAKSUP.HYBRID.PSEUDO.NUM_WORKERS = 0
    # Images per resumable shard file.
    _C.WEAKSUP.HYBRID.PSEUDO.SHARD_SIZE = 32
    # Job seed, combined with each annotation id, of GrabCut's random initialisation.
    _C.WEAKSUP.HYBRID.PSEUDO.SEED = 0
    return cfg
