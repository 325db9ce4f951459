"""Configuration of weaksup: ``add_weaksup_config`` composes the shared keys and each method's.

The keys every method shares (``cfg.WEAKSUP``'s mapper, mask source, evaluators, hooks and
pipeline) are added here; each shared component adds its own next to its code
(``add_efficientnet_config``, ``add_hrnet_config``, ...), and each method of
:data:`weaksup.methods.METHODS` in its package (``weaksup/methods/<method>/config.py``:
``add_<method>_config``), as Panoptic-DeepLab's config reuses DeepLab's. Every key has a comment,
as Detectron2 does. :func:`load_config` is the one way to read a config file.
"""

import importlib
import os
from typing import Sequence

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .data.datasets.user import add_user_datasets_config
from .data.ssd_augmentation import add_ssd_augmentation_config
from .engine.overlays import add_overlays_config
from .evaluation.voc_instance_evaluation import add_voc_instance_evaluation_config
from .methods import METHODS
from .modeling.backbone.dilated_resnet import add_dilated_resnet_config
from .modeling.backbone.efficientnet import add_efficientnet_config
from .modeling.backbone.hrnet import add_hrnet_config
from .modeling.sem_seg_heads.atrous_head import add_atrous_head_config
from .utils.config_file import merge_config_file

__all__ = [
    "CONFIGS_ROOT",
    "add_shared_config",
    "add_weaksup_config",
    "load_config",
    "resolve_config_path",
]

# The shipped configs: the repository's configs/ (linked from the package in a clone, copied into
# the wheel when it is built), read by weaksup.model_zoo.
CONFIGS_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_zoo", "configs")


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
    # Name (in weaksup.engine.PIPELINE_REGISTRY) of a multi-stage pipeline that train_net.py runs
    # instead of one training (e.g. "BoxCaseg"); "" trains the configured model once.
    _C.WEAKSUP.PIPELINE = ""
    # The KEY VALUE overrides the config was loaded with (set by load_config: for train_net.py,
    # its command line). A pipeline passes some of them on to every stage config it loads
    # (weaksup.engine.pipeline.FORWARDED_KEYS; docs/foundation.md, "Several GPUs / machines").
    _C.WEAKSUP.OVERRIDES = []
    # Further keys counted in training iterations, rescaled like SOLVER.MAX_ITER when
    # SOLVER.REFERENCE_WORLD_SIZE scales the batch to the world size (WeaksupTrainer.
    # auto_scale_workers); each method's add_<method>_config appends its own.
    _C.WEAKSUP.ITERATION_KEYS = []
    add_overlays_config(_C)  # WEAKSUP.VIS: prediction overlays
    add_voc_instance_evaluation_config(_C)  # WEAKSUP.VOC_EVAL: mAP^r and ABO
    add_efficientnet_config(_C)  # MODEL.EFFICIENTNET: EfficientNet-Lite backbones
    add_hrnet_config(_C)  # MODEL.HRNET: HRNetV2 backbones
    add_dilated_resnet_config(_C)  # MODEL.RESNETS.OUTPUT_STRIDE: dilated ResNets
    add_atrous_head_config(_C)  # MODEL.SEM_SEG_HEAD.ASPP_*: the DeepLab-v2 head
    add_ssd_augmentation_config(_C)  # INPUT.SSD: SSD-style training augmentation
    return cfg


def add_weaksup_config(cfg: CN) -> CN:
    """Add all of weaksup's keys to a Detectron2 config (in place) and return it: the shared keys,
    then each method's (``add_<method>_config`` of every package in :data:`METHODS`). Registers
    every weaksup component first (:mod:`weaksup.registration`), so the config can name them."""
    from . import registration  # noqa: F401  (imports the methods, which import this module)

    add_shared_config(cfg)
    for package in METHODS:
        module = importlib.import_module(f"{__package__}.methods.{package}.config")
        getattr(module, f"add_{package}_config")(cfg)
    return cfg


def resolve_config_path(path: str, packaged_only: bool = False) -> str:
    """The config file ``path``: as given (relative to the working directory), else the shipped
    config of that name (:data:`CONFIGS_ROOT`; a leading ``configs/`` is dropped, so the
    repository-relative names that configs use for their stage configs work from any folder once
    weaksup is installed). Raises ``FileNotFoundError`` naming ``path`` when neither exists."""
    if path and not packaged_only and os.path.isfile(path):
        return path
    name = path[len("configs/") :] if path.startswith("configs/") else path
    shipped = os.path.join(CONFIGS_ROOT, name)
    if path and not os.path.isabs(name) and os.path.isfile(shipped):
        return shipped
    where = (
        "among weaksup's shipped configs" if packaged_only else "here or among the shipped configs"
    )
    raise FileNotFoundError(f"config file {path!r} not found {where} ({CONFIGS_ROOT})")


def load_config(path: str, opts: Sequence[str] = ()) -> CN:
    """A weaksup config (not frozen) from a YAML file (:func:`resolve_config_path`) and
    ``KEY VALUE`` overrides (recorded in ``WEAKSUP.OVERRIDES``); raises ``FileNotFoundError``
    naming ``path`` when there is none, and ``ValueError`` naming the file when it (or a
    ``_BASE_``) holds a YAML tag that would build a Python object (:func:`merge_config_file`:
    plain data only, never ``yaml.unsafe_load``)."""
    path = resolve_config_path(path)
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, path)
    cfg.merge_from_list(list(opts))
    cfg.WEAKSUP.OVERRIDES = [o if isinstance(o, str) else repr(o) for o in opts]
    return cfg
