"""Configuration keys added by weaksup (``add_weaksup_config``).

Keys shared by all methods live under ``cfg.WEAKSUP``; each method adds its own under
``cfg.MODEL.<METHOD>`` in this file, each key with a comment, as Detectron2 does.
"""

import os
from typing import Sequence

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg


def add_weaksup_config(cfg: CN) -> CN:
    """Add weaksup's keys to a Detectron2 config (in place) and return it.

    Also registers every weaksup component, since a config that names them is about to be used.
    """
    from . import data, engine, evaluation, modeling  # noqa: F401  (registration side effects)

    _C = cfg
    _C.WEAKSUP = CN()
    # Name (in weaksup.data.MAPPER_REGISTRY) of the dataset mapper used for training.
    _C.WEAKSUP.TRAIN_MAPPER = "BoxSupervisedDatasetMapper"
    # Name (in weaksup.data.MAPPER_REGISTRY) of the dataset mapper used for evaluation.
    _C.WEAKSUP.TEST_MAPPER = "DatasetMapper"
    # Where training masks come from (weaksup.data.MASK_SOURCE_REGISTRY):
    #   "none": boxes and classes only (detection); "box": the filled box ("rectangles",
    #   BoxSup Tab. 2); "annotation": each annotation's own `segmentation` (pseudo-mask json or
    #   ground truth) with its `mask_valid` flag; annotations without one get the filled box,
    #   flagged unusable for the mask loss.
    _C.WEAKSUP.MASK_SOURCE = "box"
    # Pseudo-mask json (tools/make_pseudo_masks.py output) read by MASK_SOURCE "pseudo_json":
    #   each training annotation takes the mask and mask_valid flag of the same annotation id.
    _C.WEAKSUP.PSEUDO_MASKS = ""
    # Evaluators run by Trainer.test (names in weaksup.evaluation.EVALUATOR_REGISTRY), e.g.
    # "coco", "voc_instance", "box_mask_quality", "sem_seg".
    _C.WEAKSUP.EVALUATORS = ["coco"]
    # Extra training hooks (names in weaksup.engine.HOOK_REGISTRY), e.g. "PredictionOverlays",
    # "LossCurve"; appended after Detectron2's default hooks.
    _C.WEAKSUP.HOOKS = []

    # Prediction overlays written after each evaluation (and by --eval-only).
    _C.WEAKSUP.VIS = CN()
    # Number of test images drawn per evaluation, taken from the first test dataset.
    _C.WEAKSUP.VIS.NUM_IMAGES = 8
    # Predictions below this score are not drawn.
    _C.WEAKSUP.VIS.SCORE_THRESH = 0.5

    # VOC-style instance-segmentation evaluation (mAP^r and ABO).
    _C.WEAKSUP.VOC_EVAL = CN()
    # Mask-IoU thresholds of the reported mAP^r (Hybrid Tab. 1, BoxCaseg and BBTP VOC tables).
    _C.WEAKSUP.VOC_EVAL.IOU_THRESHOLDS = [0.25, 0.5, 0.7, 0.75]
    # Name (in weaksup.engine.PIPELINE_REGISTRY) of a multi-stage pipeline that train_net.py runs
    # instead of one training (e.g. "BoxCaseg"); "" trains the configured model once.
    _C.WEAKSUP.PIPELINE = ""
    engine.pseudo_mask_training.add_pseudo_mask_training_config(_C)  # WEAKSUP.PSEUDO_STAGE
    modeling.backbone.add_efficientnet_config(_C)  # MODEL.EFFICIENTNET: EfficientNet-Lite backbones

    # HRNetV2 backbone (MODEL.BACKBONE.NAME: "build_hrnet_backbone"), BoxCaseg Sec. 3.2.
    _C.MODEL.HRNET = CN()
    # Channels W of the highest-resolution branch; branches have W, 2W, 4W, 8W (W48 in the paper).
    _C.MODEL.HRNET.WIDTH = 48
    # Modules in stages 1-4 (HRNetV2: 1, 1, 4, 3; stage 1 must have one).
    _C.MODEL.HRNET.NUM_MODULES = [1, 1, 4, 3]
    # Residual blocks per branch in stages 1-4 (HRNetV2: 4 each).
    _C.MODEL.HRNET.NUM_BLOCKS = [4, 4, 4, 4]
    # Normalization of every conv ("BN", "SyncBN", "GN", "FrozenBN").
    _C.MODEL.HRNET.NORM = "BN"
    # Returned resolutions: hr2..hr5 are strides 4..32.
    _C.MODEL.HRNET.OUT_FEATURES = ["hr2", "hr3", "hr4", "hr5"]

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
    # Hidden width of the weight-transfer MLP (2 layers, LeakyReLU; Sec. 3.3.2), applied to each
    # output filter (weights + bias) of each weak-head conv.
    _C.MODEL.BOXCASEG.TRANSFER_HIDDEN_DIM = 256
    # Weight of the 8-neighbour pairwise smoothness term of the MIL loss (Eq. 1-2).
    _C.MODEL.BOXCASEG.PAIRWISE_WEIGHT = 0.05
    # alpha of Eq. 3: weight of the transferred head against the salient head, in the pixel loss
    # and in the prediction (Tab. 6: 0.7).
    _C.MODEL.BOXCASEG.ALPHA = 0.7
    # Probability above which a predicted pixel is foreground when pasting masks.
    _C.MODEL.BOXCASEG.MASK_THRESHOLD = 0.5
    # Patches per forward pass at inference (proxy masks, evaluation).
    _C.MODEL.BOXCASEG.TEST_BATCH_SIZE = 32
    # The BoxCaseg pipeline (WEAKSUP.PIPELINE: "BoxCaseg"): the config holding these keys is the
    # stage-3 Proxy Mask R-CNN config; stage 1 comes from this config file (path as given on the
    # command line, i.e. relative to the working directory) ...
    _C.MODEL.BOXCASEG.STAGE1_CONFIG = ""
    # ... with these KEY VALUE overrides; its OUTPUT_DIR becomes <OUTPUT_DIR>/stage1.
    _C.MODEL.BOXCASEG.STAGE1_OPTS = []
    # Proxy masks (stage 2, Sec. 3.4).
    _C.MODEL.BOXCASEG.PROXY = CN()
    # Merge: pixels claimed by several masks of an image go to the smallest object.
    _C.MODEL.BOXCASEG.PROXY.MERGE = True
    # Drop: masks whose proxy box agreement is below this are flagged mask_valid=False (Tab. 8).
    _C.MODEL.BOXCASEG.PROXY.DROP_THRESHOLD = 0.95
    # Datasets with GT masks, one per DATASETS.TRAIN entry ("" for none), for the quality report
    # (mIoU*, IoU@50, IoU@75, drop rate), e.g. ["pennfudan_train"] for "pennfudan_train_boxonly".
    _C.MODEL.BOXCASEG.PROXY.GT_DATASETS = []
    # Images per resumable shard file of the proxy-mask generation.
    _C.MODEL.BOXCASEG.PROXY.SHARD_SIZE = 64

    # SSD-style training augmentation placed before resize and flip by the box-supervised
    # mapper (weaksup/data/ssd_augmentation.py; DASNet Sec. 4.1, "as in [21]").
    _C.INPUT.SSD = CN()
    # Photometric noise, zoom-out expansion and min-IoU crop on training images.
    _C.INPUT.SSD.ENABLED = False
    # Expansion: canvas side up to this multiple of the image's ...
    _C.INPUT.SSD.EXPAND_MAX_RATIO = 4.0
    # ... applied with this probability.
    _C.INPUT.SSD.EXPAND_PROB = 0.5
    # Crop: minimum IoU with some box, one drawn per image (or "keep the whole image").
    _C.INPUT.SSD.CROP_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9)

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
    # Side of the square patch cropped at each GT box at inference (Sec. 4: 320).
    _C.INPUT.BOXCASEG.TEST_SIZE = 320
    # Salient-image datasets (dicts with `salient_mask_file`) trained jointly with DATASETS.TRAIN.
    _C.DATASETS.SALIENT_TRAIN = ()
    # Box-supervised : salient patches in every batch of each process (Sec. 4.2.3, Tab. 5: 9:7);
    # SOLVER.IMS_PER_BATCH / world size must be a multiple of their sum.
    _C.DATALOADER.BOX_SALIENT_RATIO = (9, 7)

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

    # HCP classifier (Wei et al. Sec. 3.1; MODEL.META_ARCHITECTURE: "HCP"): a shared CNN on each
    # hypothesis crop, cross-hypothesis max pooling, multi-label loss on image-level labels.
    _C.MODEL.HCP = CN()
    # Number of object classes C (no background).
    _C.MODEL.HCP.NUM_CLASSES = 20
    # Backbone output pooled into the fully connected layers (ResNet: "res5").
    _C.MODEL.HCP.IN_FEATURE = "res5"
    # Each hypothesis box is cropped and resized to this square (VGG-16: 224).
    _C.MODEL.HCP.CROP_SIZE = 224
    # Width of the penultimate fully connected layer, whose output is the proposal feature of
    # the cross-image refinement (VGG-16's fc7: 4096).
    _C.MODEL.HCP.FC_DIM = 4096
    # "image": image fine-tuning (the whole image is the hypothesis); "hypotheses": hypothesis
    # fine-tuning on the selected proposals of each image's proposal file.
    _C.MODEL.HCP.MODE = "image"
    # Hypothesis fine-tuning: proposals selected per image (Sec. 3.1: 10), greedily in rank order
    # skipping boxes whose IoU with a chosen one exceeds HYPOTHESIS_IOU ...
    _C.MODEL.HCP.NUM_HYPOTHESES = 10
    _C.MODEL.HCP.HYPOTHESIS_IOU = 0.5
    # ... after HCP's filter: area >= this many pixels and aspect ratio <= MAX_ASPECT_RATIO.
    _C.MODEL.HCP.MIN_HYPOTHESIS_AREA = 900.0
    _C.MODEL.HCP.MAX_ASPECT_RATIO = 4.0
    # Hypothesis mode also pools the whole image as one more hypothesis.
    _C.MODEL.HCP.INCLUDE_WHOLE_IMAGE = True
    # Learning rate of the classifier (last layer) relative to SOLVER.BASE_LR (Sec. 4.2: 100 for
    # image fine-tuning, 0.01 vs 1e-4; 10 for hypothesis fine-tuning, 1e-3 vs 1e-4).
    _C.MODEL.HCP.CLASSIFIER_LR_FACTOR = 100.0
    # Crops per forward pass when scoring all proposals (stage 2).
    _C.MODEL.HCP.TEST_BATCH_SIZE = 64

    # Wei et al. pipeline (WEAKSUP.PIPELINE: "WeiImageLevel"; docs/wei_image_level.md). The
    # config holding these keys is the segmentation network's (SemanticSegmentor); DATASETS.TRAIN
    # is one image-level dataset, DATASETS.TEST semantic datasets.
    _C.MODEL.WEI = CN()
    # HCP image fine-tuning config file (path as given on the command line) ...
    _C.MODEL.WEI.HCP_IMAGE_CONFIG = ""
    # ... and hypothesis fine-tuning config file, started from the image stage's final weights.
    _C.MODEL.WEI.HCP_HYPOTHESES_CONFIG = ""
    # Proposals per image scored in stage 2 (Sec. 3.1: ~2,000 MCG proposals).
    _C.MODEL.WEI.NUM_PROPOSALS = 2000
    # Longer image side at which the MCG-style generator works (weaksup.pseudo.candidates).
    _C.MODEL.WEI.PROPOSAL_MAX_SIDE = 256
    # Folder of official MCG .mat files named <image file stem>.mat; "" uses the generator.
    _C.MODEL.WEI.MCG_DIR = ""
    # A proposal is a candidate of a ground-truth label when its softmax confidence of that
    # label exceeds this (Sec. 3.1: 0.5).
    _C.MODEL.WEI.SCORE_THRESH = 0.5
    # Labels with fewer candidates take their most confident proposals up to this many (the
    # paper is silent; 0 keeps its rule strictly and leaves such a label's map black).
    _C.MODEL.WEI.MIN_CANDIDATES = 1
    # Share of the feature energy kept by the PCA before the refinement (Sec. 3.2: 98 %).
    _C.MODEL.WEI.PCA_ENERGY = 0.98
    # Share of each image's candidates kept by the cross-image refinement (Sec. 3.2: half).
    _C.MODEL.WEI.REFINE_KEEP = 0.5
    # Eq. 1 ranking: "ascending" keeps the smallest average distance (Fig. 3: the proposals that
    # tightly include the object; default), "descending" the largest (the text's wording).
    _C.MODEL.WEI.REFINE_ORDER = "ascending"
    # Rough masks: candidate regions per label combined into its mask (Sec. 3.3.2: 10).
    _C.MODEL.WEI.ROUGH_TOP_K = 10
    # Segmentation networks trained and evaluated (Tab. 1): AN_A / SN_A (localization maps,
    # Eq. 4; all / single-label images), AN_B / SN_B (rough masks, single-label cross-entropy).
    _C.MODEL.WEI.SCHEMES = ["AN_A", "SN_A", "AN_B", "SN_B"]
    # Also train the *_A schemes on maps made without the cross-image refinement (Tab. 3).
    _C.MODEL.WEI.ABLATION = True
    # Learning rate of the segmentation predictor (final layer) relative to SOLVER.BASE_LR
    # (Sec. 4.2: 0.01 vs 0.001).
    _C.MODEL.WEI.PREDICTOR_LR_FACTOR = 10.0
    # Worker processes of the per-image stage-2 jobs (proposals, maps and masks); 0: in-process.
    _C.MODEL.WEI.NUM_WORKERS = 2

    # Hybrid networks (Liao et al.): large-object branch (Mask R-CNN, Enhanced-FPN), small-object
    # branch (Faster R-CNN + GrabCut), fused inference (meta-architecture "HybridNetwork") and the
    # pipeline "Hybrid" that trains and evaluates all of them (docs/hybrid.md).
    _C.MODEL.HYBRID = CN()
    # Branch configs (paths as given on the command line, i.e. relative to the working directory)
    # and their KEY VALUE overrides: the large branch (Mask R-CNN on valid GrabCut masks, Sec. 2.1)
    _C.MODEL.HYBRID.LARGE_CONFIG = ""
    _C.MODEL.HYBRID.LARGE_OPTS = []
    # ... the small branch (Faster R-CNN, then GrabCut per detected box, Sec. 2.2) ...
    _C.MODEL.HYBRID.SMALL_CONFIG = ""
    _C.MODEL.HYBRID.SMALL_OPTS = []
    # ... and, for the pipeline's ablation table, the baseline Mask R-CNN trained on all GrabCut
    # masks, valid or not (Tab. 2 "baseline").
    _C.MODEL.HYBRID.BASELINE_CONFIG = ""
    _C.MODEL.HYBRID.BASELINE_OPTS = []
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
    # Instances the small branch trains on (pipeline): "all" (default: boxes are never noisy, and
    # Tab. 2's small branch reaches AP_L 22.2, so it detects large objects too) or "invalid"
    # (only those whose GrabCut mask is invalid, Sec. 2's wording; the others become background).
    _C.MODEL.HYBRID.SMALL_TRAIN_INSTANCES = "all"
    # Pseudo masks of the pipeline's first stage (a weaksup.pseudo engine job).
    _C.MODEL.HYBRID.PSEUDO = CN()
    # Engine method (weaksup.pseudo.METHODS): "grabcut" (Sec. 1; empty or failed -> ellipse).
    _C.MODEL.HYBRID.PSEUDO.METHOD = "grabcut"
    # Worker processes per training process (0: in the process itself).
    _C.MODEL.HYBRID.PSEUDO.NUM_WORKERS = 0
    # Images per resumable shard file.
    _C.MODEL.HYBRID.PSEUDO.SHARD_SIZE = 32
    # Job seed, combined with each annotation id, of GrabCut's random initialisation.
    _C.MODEL.HYBRID.PSEUDO.SEED = 0

    # BoxSup (Dai et al. 2015; docs/boxsup.md): semantic segmentation from boxes, candidate
    # segments re-labelled once per epoch by the network (hook "BoxSupLabelUpdate").
    _C.MODEL.BOXSUP = CN()
    # Training labels: "candidates" (BoxSup: candidate segments chosen by E_o + lambda E_r and
    # updated every epoch) or a pseudo-mask engine method (weaksup.pseudo.METHODS), made once and
    # never updated: "box" (Tab. 2 'rectangles'), "grabcut" (Tab. 2 'GrabCut').
    _C.MODEL.BOXSUP.LABEL_SOURCE = "candidates"
    # k of the top-k sampling (Sec. 4.3: 5); 1 is the 'w/o sampling' ablation (Tab. 2).
    _C.MODEL.BOXSUP.TOP_K = 5
    # lambda of Eq. 4, the weight of the network's loss E_r against the overlap term E_o (3).
    _C.MODEL.BOXSUP.REGRESSION_WEIGHT = 3.0
    # Treat every training image as box-only: its GT masks are never read (so a dataset with masks
    # trains box-supervised and can be its own GT_DATASET); False: images with GT masks train on
    # them, never re-labelled (semi-supervised, Tab. 1 'semi').
    _C.MODEL.BOXSUP.IGNORE_GT_MASKS = False
    # Label the chosen candidate clipped to its box (pixels outside every box stay background).
    _C.MODEL.BOXSUP.CLIP_TO_BOX = True
    # Candidate segments per image of the MCG-style generator, and the longer image side it
    # works at (weaksup.pseudo.candidate_segments).
    _C.MODEL.BOXSUP.NUM_CANDIDATES = 1000
    _C.MODEL.BOXSUP.CANDIDATE_MAX_SIDE = 256
    # Folder of official MCG .mat files named <image file stem>.mat; "" uses the generator.
    _C.MODEL.BOXSUP.MCG_DIR = ""
    # Cache folder of the generated candidates (one .npz per image); "" is
    # $WEAKSUP_CACHE/boxsup_candidates/<training datasets>_n<NUM>_s<SIDE>.
    _C.MODEL.BOXSUP.CANDIDATE_CACHE = ""
    # Iterations per epoch (a label update after each); 0: ceil(training images / IMS_PER_BATCH).
    _C.MODEL.BOXSUP.EPOCH_ITERS = 0
    # Seed of the top-k sampling (with the epoch and the image id: the same draws for any number
    # of workers or processes).
    _C.MODEL.BOXSUP.SEED = 0
    # Dataset with the ground-truth masks of the training images (matched by file name), to log
    # the mIoU of the training labels each epoch (Fig. 3 in numbers); "" logs none.
    _C.MODEL.BOXSUP.GT_DATASET = ""
    # Save a checkpoint right after each label update, so a resumed job trains on that labelling.
    _C.MODEL.BOXSUP.CHECKPOINT_AFTER_UPDATE = True
    # Label maps of this many training images drawn per labelling (OUTPUT_DIR/boxsup/vis).
    _C.MODEL.BOXSUP.VIS_NUM_IMAGES = 0
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
    # AtrousSemSegHead (DeepLab-v2 ASPP): dilations of its parallel 3x3 branches, and the
    # dropout before each branch's classifier.
    _C.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [6, 12, 18, 24]
    _C.MODEL.SEM_SEG_HEAD.ASPP_DROPOUT = 0.5
    # build_dilated_resnet_backbone: output stride 8, 16 or 32 (res4/res5 strides -> dilation).
    _C.MODEL.RESNETS.OUTPUT_STRIDE = 16
    modeling.roi_heads.add_boxinst_config(_C)  # MODEL.BOXINST (BoxInst, Tian et al. 2021)
    return cfg


def load_config(path: str, opts: Sequence[str] = ()) -> CN:
    """A weaksup config (not frozen) from a YAML file and ``KEY VALUE`` overrides; raises
    ``FileNotFoundError`` naming ``path`` when it is not a file."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} not found")
    cfg = add_weaksup_config(get_cfg())
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg
