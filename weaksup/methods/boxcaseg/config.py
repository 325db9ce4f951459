"""Configuration keys of BoxCaseg (Wang et al.): ``add_boxcaseg_config``.

Composed into every weaksup config by :func:`weaksup.config.add_weaksup_config`; each key with a
comment, as Detectron2 does.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_boxcaseg_config"]


def add_boxcaseg_config(cfg: CN) -> CN:
    """Add BoxCaseg's keys to a Detectron2 config (in place) and return it."""
    _C = cfg
    # BoxCaseg (box-supervised class-agnostic segmentation with salient images).
    _C.MODEL.BOXCASEG = CN()
    # Backbone features upsampled to the first one's resolution and concatenated (HRNetV2's
    # representation head); e.g. ["p2", "p3", "p4", "p5"] for a ResNet-FPN.
    _C.MODEL.BOXCASEG.IN_FEATURES = ["hr2", "hr3", "hr4", "hr5"]
    # Each of the three heads (weak, salient, transferred; Sec. 3.3, Fig. 4): NUM_CONVS 3x3 convs
    # of CONV_DIM channels with ReLU, then a 1x1 conv to one logit map.
    _C.MODEL.BOXCASEG.HEAD_NUM_CONVS = 1
    # Channels of the heads' 3x3 convs.
    _C.MODEL.BOXCASEG.HEAD_CONV_DIM = 256
    # Norm after each 3x3 conv of the weak and salient heads (Detectron2 get_norm name, "" for
    # none). The authors' code has BN there; at the CPU schedule it lowered the salient head.
    _C.MODEL.BOXCASEG.HEAD_NORM = ""
    # Norm after each 3x3 conv of the transferred head, layers of its own (not transferred; the
    # authors' code: BN, set in Base-BoxCaseg.yaml). It keeps the MLP-made filters from all dying
    # at once (docs/boxcaseg.md). The default "" is the earlier behaviour, for recorded stages.
    _C.MODEL.BOXCASEG.TRANSFER_NORM = ""
    # Hidden width of the weight-transfer MLP (2 layers, LeakyReLU; Sec. 3.3.2), applied to each
    # output filter (weights + bias) of each weak-head conv.
    _C.MODEL.BOXCASEG.TRANSFER_HIDDEN_DIM = 256
    # Weight of the 8-neighbour pairwise smoothness term of the MIL loss (Eq. 1-2).
    _C.MODEL.BOXCASEG.PAIRWISE_WEIGHT = 0.05
    # alpha of Eq. 3: weight of the transferred head's logits against the salient head's, in the
    # pixel loss and in the prediction (Tab. 6: 0.7; its alpha 0 / 1 rows are Tab. 4's "weak +
    # salient" / "weak + transferred"). The authors' --fcn_ratio weights the salient head instead.
    _C.MODEL.BOXCASEG.ALPHA = 0.7
    # Heads that train and predict (Tab. 4): a subset of "weak", "salient", "transferred"; the
    # prediction mixes salient and transferred (Eq. 3), else takes the one on, else the weak head.
    _C.MODEL.BOXCASEG.HEADS = ["weak", "salient", "transferred"]
    # Probability above which a predicted pixel is foreground when pasting masks.
    _C.MODEL.BOXCASEG.MASK_THRESHOLD = 0.5
    # Rescale each patch's foreground probabilities to [0, 1] (min-max) before MASK_THRESHOLD, as
    # the authors' released test code does (normPRED; True in Base-BoxCaseg.yaml; the default
    # False is the earlier behaviour, for recorded stages).
    _C.MODEL.BOXCASEG.RESCALE_PROBS = False
    # Patches per forward pass at inference (proxy masks, evaluation).
    _C.MODEL.BOXCASEG.TEST_BATCH_SIZE = 32

    # BoxCaseg patches (Sec. 3.2.2; the authors' released settings).
    _C.INPUT.BOXCASEG = CN()
    # Side of the square training patches (box-supervised and salient).
    _C.INPUT.BOXCASEG.PATCH_SIZE = 288
    # Salient images are resized to this square before the random PATCH_SIZE crop (+ flip).
    _C.INPUT.BOXCASEG.SALIENT_RESIZE = 320
    # Box patches: the box centre moves by U(-J, J) of the half width / height ...
    _C.INPUT.BOXCASEG.CENTER_JITTER = 0.25
    # ... and each half side (left, right, top, bottom) is scaled by U(lo, hi).
    _C.INPUT.BOXCASEG.SCALE_JITTER = (0.5, 1.5)
    # Probability that a training patch (box or salient) is made from a low-resolution copy of
    # its crop (area-shrunk to a longer side of U(LOW_RES_SIDE) px, then resized to PATCH_SIZE):
    # the pixels of a small object's test crop (docs/boxcaseg.md, "Small boxes"); 0: never.
    _C.INPUT.BOXCASEG.LOW_RES_PROB = 0.0
    # Range of the low-resolution copy's longer side in pixels (COCO "small": under 32).
    _C.INPUT.BOXCASEG.LOW_RES_SIDE = (8, 32)
    # Test crop around each box: (scale, pixels): half sides max(scale x the box's, the box's +
    # pixels), the mask pasted over the crop and cut to the box. (1.0, 0.0): the crop is the box
    # (Sec. 4). A crop at the box leaves small objects' masks short of the box sides
    # (docs/boxcaseg.md, "Small boxes").
    _C.INPUT.BOXCASEG.TEST_CONTEXT = (1.0, 0.0)
    # Side of the square patch cropped at each GT box at inference (Sec. 4: 320).
    _C.INPUT.BOXCASEG.TEST_SIZE = 320
    # Salient-image datasets (dicts with `salient_mask_file`) trained jointly with DATASETS.TRAIN.
    _C.DATASETS.SALIENT_TRAIN = ()
    # Box-supervised : salient patches in every batch of each process (Sec. 4.2.3, Tab. 5: 9:7);
    # SOLVER.IMS_PER_BATCH / world size must be a multiple of their sum.
    _C.DATALOADER.BOX_SALIENT_RATIO = (9, 7)
    # "ratio": every batch holds the ratio above (Sec. 4.2.3); "random": Tab. 5's 'RS' baseline,
    # batches of the same size drawn at random from all box instances and salient images.
    _C.DATALOADER.BOX_SALIENT_SAMPLING = "ratio"

    # The BoxCaseg pipeline's stages (WEAKSUP.PIPELINE: "BoxCaseg"; Sec. 3.2-3.4).
    _C.WEAKSUP.BOXCASEG = CN()
    # The BoxCaseg pipeline (WEAKSUP.PIPELINE: "BoxCaseg"): the config holding these keys is the
    # stage-3 Proxy Mask R-CNN config; stage 1 comes from this config file (path as given on the
    # command line, i.e. relative to the working directory) ...
    _C.WEAKSUP.BOXCASEG.STAGE1_CONFIG = ""
    # ... with these KEY VALUE overrides; its OUTPUT_DIR becomes <OUTPUT_DIR>/stage1.
    _C.WEAKSUP.BOXCASEG.STAGE1_OPTS = []
    # Proxy masks (stage 2, Sec. 3.4).
    _C.WEAKSUP.BOXCASEG.PROXY = CN()
    # Merge: pixels claimed by several masks of an image go to the smallest object.
    _C.WEAKSUP.BOXCASEG.PROXY.MERGE = True
    # Drop: masks whose proxy box agreement is below this are flagged mask_valid=False (Tab. 8).
    _C.WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD = 0.95
    # Datasets with GT masks, one per DATASETS.TRAIN entry ("" for none), for the quality report
    # (mIoU*, IoU@50, IoU@75, drop rate), e.g. ["pennfudan_train"] for "pennfudan_train_boxonly".
    _C.WEAKSUP.BOXCASEG.PROXY.GT_DATASETS = []
    # Images per resumable shard file of the proxy-mask generation.
    _C.WEAKSUP.BOXCASEG.PROXY.SHARD_SIZE = 64
    return cfg
