"""Configuration keys added by weaksup (``add_weaksup_config``).

Keys shared by all methods live under ``cfg.WEAKSUP``; each method adds its own under
``cfg.MODEL.<METHOD>`` in this file, each key with a comment, as Detectron2 does.
"""

from detectron2.config import CfgNode as CN


def add_weaksup_config(cfg: CN) -> CN:
    """Add weaksup's keys to a Detectron2 config (in place) and return it."""
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
    return cfg
