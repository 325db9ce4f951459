"""Configuration keys of BoxSup (Dai et al. 2015): ``add_boxsup_config``.

Composed into every weaksup config by :func:`weaksup.config.add_weaksup_config`; each key with a
comment, as Detectron2 does.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_boxsup_config"]


def add_boxsup_config(cfg: CN) -> CN:
    """Add BoxSup's keys to a Detectron2 config (in place) and return it."""
    _C = cfg
    # BoxSup (Dai et al. 2015; docs/boxsup.md): semantic segmentation from boxes, candidate
    # segments re-labelled once per epoch by the network (hook "BoxSupLabelUpdate").
    _C.MODEL.BOXSUP = CN()
    # Image scales averaged at inference (Sec. 5.1 'BoxSup+': [0.8, 1.0, 1.2]).
    _C.MODEL.BOXSUP.TEST_SCALES = [1.0]
    # Dense-CRF post-processing at inference (weaksup.modeling.dense_crf; off by default).
    _C.MODEL.BOXSUP.CRF = CN()
    _C.MODEL.BOXSUP.CRF.ENABLED = False
    # Mean-field iterations.
    _C.MODEL.BOXSUP.CRF.ITERATIONS = 5
    # Bilateral kernel: weight, spatial std (pixels), colour std (0-255).
    _C.MODEL.BOXSUP.CRF.BI_WEIGHT = 4.0
    _C.MODEL.BOXSUP.CRF.BI_XY_STD = 10.0
    _C.MODEL.BOXSUP.CRF.BI_RGB_STD = 5.0
    # Positional (smoothness) kernel: weight, spatial std (pixels).
    _C.MODEL.BOXSUP.CRF.POS_WEIGHT = 3.0
    _C.MODEL.BOXSUP.CRF.POS_XY_STD = 3.0
    # Truncated kernel window: offsets -R..R in each direction, DILATION pixels apart.
    _C.MODEL.BOXSUP.CRF.WINDOW_RADIUS = 5
    _C.MODEL.BOXSUP.CRF.WINDOW_DILATION = 2

    # BoxSup's labellings: candidate segments re-labelled once per epoch by the network (hook
    # "BoxSupLabelUpdate", Sec. 3-4).
    _C.WEAKSUP.BOXSUP = CN()
    # Training labels: "candidates" (BoxSup: candidate segments chosen by E_o + lambda E_r and
    # updated every epoch) or a pseudo-mask engine method (weaksup.pseudo.METHODS), made once and
    # never updated: "box" (Tab. 2 'rectangles'), "grabcut" (Tab. 2 'GrabCut').
    _C.WEAKSUP.BOXSUP.LABEL_SOURCE = "candidates"
    # k of the top-k sampling (Sec. 4.3: 5); 1 is the 'w/o sampling' ablation (Tab. 2).
    _C.WEAKSUP.BOXSUP.TOP_K = 5
    # lambda of Eq. 4, the weight of the network's loss E_r against the overlap term E_o (3).
    _C.WEAKSUP.BOXSUP.REGRESSION_WEIGHT = 3.0
    # Form of E_r: "labelling" (Eq. 3: the network's loss over the whole labelling, pixels
    # outside the segment background, per image pixel) or "segment_mean" (the mean loss over the
    # segment's own pixels, weaksup's earlier choice; docs/boxsup.md).
    _C.WEAKSUP.BOXSUP.REGRESSION_COST = "labelling"
    # Treat every training image as box-only: its GT masks are never read (so a dataset with masks
    # trains box-supervised and can be its own GT_DATASET); False: images with GT masks train on
    # them, never re-labelled (semi-supervised, Tab. 1 'semi').
    _C.WEAKSUP.BOXSUP.IGNORE_GT_MASKS = False
    # Label the chosen candidate clipped to its box (pixels outside every box stay background).
    _C.WEAKSUP.BOXSUP.CLIP_TO_BOX = True
    # Candidate segments per image of the MCG-style generator, and the longer image side it
    # works at (weaksup.pseudo.candidate_segments).
    _C.WEAKSUP.BOXSUP.NUM_CANDIDATES = 1000
    _C.WEAKSUP.BOXSUP.CANDIDATE_MAX_SIDE = 256
    # Folder of official MCG .mat files named <image file stem>.mat; "" uses the generator.
    _C.WEAKSUP.BOXSUP.MCG_DIR = ""
    # Cache folder of the generated candidates (one .npz per image); "" is
    # $WEAKSUP_CACHE/boxsup_candidates/n<NUM_CANDIDATES>_s<CANDIDATE_MAX_SIDE> (shared by all
    # datasets: files are named by image).
    _C.WEAKSUP.BOXSUP.CANDIDATE_CACHE = ""
    # Iterations per epoch (a label update after each); 0: ceil(training images / IMS_PER_BATCH).
    _C.WEAKSUP.BOXSUP.EPOCH_ITERS = 0
    _C.WEAKSUP.ITERATION_KEYS += ["WEAKSUP.BOXSUP.EPOCH_ITERS"]  # scaled with the batch
    # Seed of the top-k sampling (with the epoch and the image id: the same draws for any number
    # of workers or processes).
    _C.WEAKSUP.BOXSUP.SEED = 0
    # Dataset with the ground-truth masks of the training images (matched by file name), to log
    # the mIoU of the training labels each epoch (Fig. 3 in numbers); "" logs none.
    _C.WEAKSUP.BOXSUP.GT_DATASET = ""
    # Save a checkpoint right after each label update, so a resumed job trains on that labelling.
    _C.WEAKSUP.BOXSUP.CHECKPOINT_AFTER_UPDATE = True
    # Label maps of this many training images drawn per labelling (OUTPUT_DIR/boxsup/vis).
    _C.WEAKSUP.BOXSUP.VIS_NUM_IMAGES = 0
    return cfg
