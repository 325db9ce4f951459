"""Configuration keys of Wei et al.'s HCP classifier and pipeline: ``add_wei_config``.

Composed into every weaksup config by :func:`weaksup.config.add_weaksup_config`; each key with a
comment, as Detectron2 does.
"""

from detectron2.config import CfgNode as CN

__all__ = ["add_wei_config"]


def add_wei_config(cfg: CN) -> CN:
    """Add Wei et al.'s keys to a Detectron2 config (in place) and return it."""
    _C = cfg
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
    # A (C+1)-th "background" output, a label of every training image, so that images without
    # any object label (negative images) can train HCP; scores are the C object columns of the
    # (C+1)-way softmax. Not in the paper (VOC needs none); see weaksup/methods/wei/hcp.py.
    _C.MODEL.HCP.BACKGROUND_CLASS = False
    # Learning rate of the classifier (last layer) relative to SOLVER.BASE_LR (Sec. 4.2: 100 for
    # image fine-tuning, 0.01 vs 1e-4; 10 for hypothesis fine-tuning, 1e-3 vs 1e-4).
    _C.MODEL.HCP.CLASSIFIER_LR_FACTOR = 100.0
    # Crops per forward pass when scoring all proposals (stage 2).
    _C.MODEL.HCP.TEST_BATCH_SIZE = 64

    # Wei et al. pipeline (WEAKSUP.PIPELINE: "Wei"; docs/wei.md). The
    # config holding these keys is the segmentation network's (SoftTargetSegmentor); DATASETS.TRAIN
    # is one image-level dataset, DATASETS.TEST semantic datasets.
    _C.WEAKSUP.WEI = CN()
    # HCP image fine-tuning config file (path as given on the command line) ...
    _C.WEAKSUP.WEI.HCP_IMAGE_CONFIG = ""
    # ... and hypothesis fine-tuning config file, started from the image stage's final weights.
    _C.WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG = ""
    # Candidate segments (proposals) per image, scored in stage 2 (Sec. 3.1: ~2,000 MCG
    # proposals); the same key as WEAKSUP.BOXSUP.NUM_CANDIDATES for the same generator.
    _C.WEAKSUP.WEI.NUM_CANDIDATES = 2000
    # Longer image side at which the MCG-style generator works (weaksup.pseudo.candidates).
    _C.WEAKSUP.WEI.CANDIDATE_MAX_SIDE = 256
    # Folder of official MCG .mat files named <image file stem>.mat; "" uses the generator.
    _C.WEAKSUP.WEI.MCG_DIR = ""
    # A proposal is a candidate of a ground-truth label when its softmax confidence of that
    # label exceeds this (Sec. 3.1: 0.5).
    _C.WEAKSUP.WEI.SCORE_THRESH = 0.5
    # Labels with fewer candidates take their most confident proposals up to this many (the
    # paper is silent; 0 keeps its rule strictly and leaves such a label's map black).
    _C.WEAKSUP.WEI.MIN_CANDIDATES = 1
    # Share of the feature energy kept by the PCA before the refinement (Sec. 3.2: 98 %).
    _C.WEAKSUP.WEI.PCA_ENERGY = 0.98
    # Share of each image's candidates kept by the cross-image refinement (Sec. 3.2: half).
    _C.WEAKSUP.WEI.REFINE_KEEP = 0.5
    # Eq. 1 ranking: "ascending" keeps the smallest average distance (Fig. 3: the proposals that
    # tightly include the object; default), "descending" the largest (the text's wording).
    _C.WEAKSUP.WEI.REFINE_ORDER = "ascending"
    # Rough masks: candidate regions per label combined into its mask (Sec. 3.3.2: 10).
    _C.WEAKSUP.WEI.ROUGH_TOP_K = 10
    # Segmentation networks trained and evaluated (Tab. 1): AN_A / SN_A (localization maps,
    # Eq. 4; all / single-label images), AN_B / SN_B (rough masks, single-label cross-entropy).
    _C.WEAKSUP.WEI.SCHEMES = ["AN_A", "SN_A", "AN_B", "SN_B"]
    # Also train the *_A schemes on maps made without the cross-image refinement (Tab. 3).
    _C.WEAKSUP.WEI.ABLATION = True
    # Learning rate of the segmentation predictor (final layer) relative to SOLVER.BASE_LR
    # (Sec. 4.2: 0.01 vs 0.001).
    _C.WEAKSUP.WEI.PREDICTOR_LR_FACTOR = 10.0
    # Scores printed with the tables, from ground truth no stage trains on (empty: not scored).
    # Image-level dataset of validation images: HCP's per-class AP of its whole-image scores.
    _C.WEAKSUP.WEI.HCP_TEST_DATASET = ""
    # Semantic dataset (sem_seg_file_name) of the training images, matched by file_name: the
    # mIoU of the localization maps' argmax (with / without refinement) and of the rough masks.
    _C.WEAKSUP.WEI.LABEL_GT_DATASET = ""
    # Worker processes of the per-image stage-2 jobs (proposals, maps and masks); 0: in-process.
    _C.WEAKSUP.WEI.NUM_WORKERS = 2
    return cfg
