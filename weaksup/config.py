"""Configuration of weaksup: ``add_weaksup_config`` composes the shared keys and each method's.

The keys every method shares (``cfg.WEAKSUP``, shared backbones, mapper and heads) are added by
:func:`add_shared_config`; each method adds its own keys in its package
(``weaksup/methods/<method>/config.py``: ``add_boxcaseg_config``, ...), as Panoptic-DeepLab's
config reuses DeepLab's. Every key has a comment, as Detectron2 does.

This module imports only the methods' ``config`` modules, which import nothing of weaksup, so it
is in no import circle. It registers nothing: :mod:`weaksup.registration` does, and
``from weaksup import add_weaksup_config`` imports that first.
"""

import os
from typing import Sequence

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .data.datasets.user import add_user_datasets_config
from .engine.pipeline import set_default_config
from .engine.pseudo_mask_training import add_pseudo_mask_training_config
from .methods.boxcaseg import config as boxcaseg_config
from .methods.boxsup import config as boxsup_config
from .methods.dasnet import config as dasnet_config
from .methods.hybrid import config as hybrid_config
from .methods.wei import config as wei_config
from .modeling.backbone.efficientnet import add_efficientnet_config
from .modeling.roi_heads.boxinst import add_boxinst_config

__all__ = ["add_shared_config", "add_weaksup_config", "load_config"]

# Each method's key adder, in the order they are composed.
METHOD_CONFIGS = (
    boxcaseg_config.add_boxcaseg_config,
    boxsup_config.add_boxsup_config,
    dasnet_config.add_dasnet_config,
    hybrid_config.add_hybrid_config,
    wei_config.add_wei_config,
)
# Old key -> new key, of every method: a config using an old key is rejected naming the new one.
RENAMED_KEYS = {
    old: new
    for module in (boxcaseg_config, boxsup_config, dasnet_config, hybrid_config, wei_config)
    for old, new in getattr(module, "RENAMED_KEYS", {}).items()
}


def add_shared_config(cfg: CN) -> CN:
    """Add the keys shared by all methods (in place) and return the config."""
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
    #   flagged unusable for the mask loss; "pseudo_json": the mask and flag of the same
    #   annotation id in WEAKSUP.PSEUDO_MASKS (a ground-truth mask is never read).
    _C.WEAKSUP.MASK_SOURCE = "box"
    # Pseudo-mask json (tools/make_pseudo_masks.py output) read by MASK_SOURCE "pseudo_json":
    #   each training annotation takes the mask and mask_valid flag of the same annotation id.
    _C.WEAKSUP.PSEUDO_MASKS = ""
    # Evaluators run by Trainer.test (names in weaksup.evaluation.EVALUATOR_REGISTRY), e.g.
    # "coco", "voc_instance", "box_mask_quality", "sem_seg".
    _C.WEAKSUP.EVALUATORS = ["coco"]
    # Extra training hooks (names in weaksup.engine.HOOK_REGISTRY), e.g. "PredictionOverlays",
    # "LossCurve"; run after Detectron2's default hooks but before its final PeriodicWriter, so
    # the writers log what they record.
    _C.WEAKSUP.HOOKS = []
    add_user_datasets_config(_C)  # WEAKSUP.DATASETS: the user's own datasets

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
    add_pseudo_mask_training_config(_C)  # WEAKSUP.PSEUDO_STAGE
    add_efficientnet_config(_C)  # MODEL.EFFICIENTNET: EfficientNet-Lite backbones

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
    # AtrousSemSegHead (DeepLab-v2 ASPP): dilations of its parallel 3x3 branches, and the
    # dropout before each branch's classifier.
    _C.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [6, 12, 18, 24]
    _C.MODEL.SEM_SEG_HEAD.ASPP_DROPOUT = 0.5
    # build_dilated_resnet_backbone: output stride 8, 16 or 32 (res4/res5 strides -> dilation).
    _C.MODEL.RESNETS.OUTPUT_STRIDE = 16
    add_boxinst_config(_C)  # MODEL.BOXINST (BoxInst, Tian et al. 2021)
    return cfg


def add_weaksup_config(cfg: CN) -> CN:
    """Add all of weaksup's keys to a Detectron2 config (in place) and return it: the shared keys,
    then each method's (:data:`METHOD_CONFIGS`); old key names (:data:`RENAMED_KEYS`) raise a
    ``KeyError`` naming the new key when a file or an override uses them."""
    add_shared_config(cfg)
    for add_method_config in METHOD_CONFIGS:
        add_method_config(cfg)
    for old, new in RENAMED_KEYS.items():
        cfg.register_renamed_key(old, new)
    return cfg


# Training-stage records of earlier versions are read against today's defaults (engine layer).
set_default_config(lambda: add_weaksup_config(get_cfg()))


def load_config(path: str, opts: Sequence[str] = ()) -> CN:
    """A weaksup config (not frozen) from a YAML file and ``KEY VALUE`` overrides; raises
    ``FileNotFoundError`` naming ``path`` when it is not a file."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} not found")
    cfg = add_weaksup_config(get_cfg())
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg
