"""Dataset registration (roots from ``$DETECTRON2_DATASETS``, default ``datasets/``)."""

from . import builtin  # noqa: F401  (registers the builtin datasets)
from . import mask_subset  # noqa: F401  (registers the mask-subset views)
from . import small_view  # noqa: F401  (registers the small-object views)
from .catalog import register_or_replace, remove_dataset
from .image_labels import (
    image_level_record,
    load_image_labels,
    register_image_label_union,
    register_image_labels,
    single_label_records,
)
from .coco import PSEUDO_MASK_KEYS, load_coco_json, register_coco_boxonly, register_coco_instances
from .pennfudan import (
    PENNFUDAN_CLASSES,
    load_pennfudan,
    parse_pennfudan_annotation,
    register_pennfudan,
)
from .salient import load_salient_images, register_salient
from .sanitize import (
    check_annotation_file,
    check_image_files,
    sanitize_dataset_dicts,
    unknown_class_error,
)
from .user import (
    add_register_argument,
    add_user_datasets_config,
    parse_register_spec,
    register_user_datasets,
)
from .voc import (
    VOC_CLASSES,
    VOC_SEM_SEG_CLASSES,
    load_voc_sem_seg,
    register_voc_instance,
    register_voc_sem_seg,
)

__all__ = [
    "register_or_replace",
    "remove_dataset",
    "image_level_record",
    "load_image_labels",
    "register_image_label_union",
    "register_image_labels",
    "single_label_records",
    "PSEUDO_MASK_KEYS",
    "load_coco_json",
    "register_coco_boxonly",
    "register_coco_instances",
    "PENNFUDAN_CLASSES",
    "load_pennfudan",
    "parse_pennfudan_annotation",
    "register_pennfudan",
    "load_salient_images",
    "register_salient",
    "check_annotation_file",
    "check_image_files",
    "sanitize_dataset_dicts",
    "unknown_class_error",
    "add_register_argument",
    "add_user_datasets_config",
    "parse_register_spec",
    "register_user_datasets",
    "VOC_CLASSES",
    "VOC_SEM_SEG_CLASSES",
    "load_voc_sem_seg",
    "register_voc_instance",
    "register_voc_sem_seg",
]
