"""
The user's own COCO-json datasets, declared in the config or on the command line (no Python).

Config (a list of ``[name, json_file, image_root, kind]``)::

    WEAKSUP:
      DATASETS:
        COCO: [["mydata_train_boxonly", "data/train.json", "data/images", "boxonly"],
               ["mydata_val", "data/val.json", "data/images", "instances"]]

or the same on the command line of ``train_net.py`` and the tools (``--register`` may repeat)::

    --register mydata_train_boxonly=data/train.json:data/images          # kind from the name
    --register mydata_val=data/val.json:data/images:instances            # kind given

Kinds: ``"boxonly"`` drops every ``segmentation`` at load time (box-supervised training; as a
test set it is scored on boxes only), ``"instances"`` keeps the json's masks. Without a kind, a
name ending in ``_boxonly`` is box-only (weaksup's naming convention), any other has masks.

:func:`register_user_datasets` runs in :func:`train_net.setup`, i.e. in every process of a
multi-process job, before the trainer is built. It checks at once that the json and the image
folder exist; loading (when Detectron2 asks for the dataset) adds the checks of every weaksup
loader (:mod:`.sanitize`) and that each image file exists, naming the json and the record.
Other box formats (Pascal VOC XML, labelme, VIA) are converted to COCO json first by
``datasets/convert_to_coco.py``.
"""

import argparse
import os
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.config import CfgNode as CN
from detectron2.data import DatasetCatalog, MetadataCatalog

from .coco import load_coco_json
from .sanitize import check_annotation_file, check_image_files

__all__ = [
    "USER_DATASET_KINDS",
    "add_register_argument",
    "add_user_datasets_config",
    "load_user_coco_json",
    "parse_register_spec",
    "register_user_datasets",
    "roi_heads_num_classes",
]

USER_DATASET_KINDS = ("boxonly", "instances")


def add_user_datasets_config(cfg: CN) -> None:
    """Add ``cfg.WEAKSUP.DATASETS`` (called by ``add_weaksup_config``)."""
    cfg.WEAKSUP.DATASETS = CN()
    # The user's COCO-json datasets, registered before the trainer is built (every process):
    # a list of [name, json_file, image_root, kind], kind "boxonly" (segmentations dropped at
    # load; scored on boxes only as a test set) or "instances" (masks kept). train_net.py's
    # --register NAME=JSON:IMAGES[:KIND] appends to it. Names may then be used in DATASETS.*.
    cfg.WEAKSUP.DATASETS.COCO = []


def parse_register_spec(spec: str) -> List[str]:
    """``"NAME=JSON:IMAGES[:KIND]"`` -> ``[name, json_file, image_root, kind]``.

    Without a kind, names ending in ``_boxonly`` are ``"boxonly"``, others ``"instances"``.
    """
    name, sep, rest = spec.partition("=")
    parts = rest.split(":")
    kind = parts.pop() if len(parts) == 3 and parts[-1] in USER_DATASET_KINDS else None
    if not sep or not name or len(parts) != 2 or not all(parts):
        raise ValueError(
            f"--register {spec!r}: expected NAME=JSON:IMAGES[:KIND] (KIND one of "
            f"{', '.join(USER_DATASET_KINDS)}; paths without ':')"
        )
    if kind is None:
        kind = "boxonly" if name.endswith("_boxonly") else "instances"
    return [name, parts[0], parts[1], kind]


def add_register_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--register NAME=JSON:IMAGES[:KIND]`` (repeatable) to a command-line parser."""
    parser.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="NAME=JSON:IMAGES[:KIND]",
        help="register a COCO-json dataset (KIND: boxonly | instances; default from the name: "
        "*_boxonly is box-only); appended to WEAKSUP.DATASETS.COCO",
    )
    return parser


def load_user_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: str,
    box_only: bool,
    num_classes: Optional[int] = None,
) -> List[Dict]:
    """:func:`load_coco_json` of a user dataset, plus checks that every image file exists and
    that the json has ``num_classes`` categories (the model's, when given)."""
    dicts = load_coco_json(json_file, image_root, dataset_name, box_only=box_only)
    classes = MetadataCatalog.get(dataset_name).thing_classes
    if num_classes is not None and len(classes) != num_classes:
        raise ValueError(
            f"{json_file}: {len(classes)} categories ({', '.join(classes)}) but the model has "
            f"MODEL.ROI_HEADS.NUM_CLASSES {num_classes}: set MODEL.ROI_HEADS.NUM_CLASSES "
            f"{len(classes)}"
        )
    check_image_files(dicts, json_file)
    return dicts


def roi_heads_num_classes(cfg: CN) -> Optional[int]:
    """``MODEL.ROI_HEADS.NUM_CLASSES`` when the model is an R-CNN (it then predicts exactly the
    dataset's classes), else None."""
    from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

    try:
        arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    except KeyError:
        return None
    return cfg.MODEL.ROI_HEADS.NUM_CLASSES if issubclass(arch, GeneralizedRCNN) else None


def _check_entry(entry: Sequence) -> Tuple[str, str, str, str]:
    if not isinstance(entry, (list, tuple)) or len(entry) != 4:
        raise ValueError(
            f"WEAKSUP.DATASETS.COCO entry {entry!r}: expected [name, json_file, image_root, kind]"
        )
    name, json_file, image_root, kind = (str(x) for x in entry)
    if kind not in USER_DATASET_KINDS:
        raise ValueError(
            f"WEAKSUP.DATASETS.COCO entry {name!r}: unknown kind {kind!r} "
            f"(one of {', '.join(USER_DATASET_KINDS)})"
        )
    check_annotation_file(json_file)
    if not os.path.isdir(image_root):
        raise FileNotFoundError(
            f"dataset {name!r} ({json_file}): image folder not found: {image_root}"
        )
    return name, json_file, image_root, kind


def register_user_datasets(cfg: CN, register: Sequence[str] = ()) -> List[str]:
    """
    Append the ``--register`` specs to ``cfg.WEAKSUP.DATASETS.COCO`` (``cfg`` must not be
    frozen when ``register`` is given) and register every entry with Detectron2's catalogs.

    Registering the same entry again in a process replaces its loader (the model's number of
    classes, checked at load, may differ); a name taken by another dataset raises an error.
    Returns the names.
    """
    if register:
        cfg.WEAKSUP.DATASETS.COCO = list(cfg.WEAKSUP.DATASETS.COCO) + [
            parse_register_spec(s) for s in register
        ]
    names, num_classes = [], roi_heads_num_classes(cfg)
    for entry in cfg.WEAKSUP.DATASETS.COCO:
        name, json_file, image_root, kind = _check_entry(entry)
        json_file, image_root = os.path.abspath(json_file), os.path.abspath(image_root)
        source = (json_file, image_root, kind)
        if name in DatasetCatalog.list():
            if MetadataCatalog.get(name).get("user_dataset", None) != source:
                raise ValueError(
                    f"WEAKSUP.DATASETS.COCO: dataset name {name!r} is already registered "
                    f"(a builtin or another json); choose another name"
                )
            DatasetCatalog.remove(name)  # the same data: re-registered for this model's classes
        box_only = kind == "boxonly"
        DatasetCatalog.register(
            name,
            lambda j=json_file, r=image_root, n=name, b=box_only, k=num_classes: (
                load_user_coco_json(j, r, n, b, k)
            ),
        )
        MetadataCatalog.get(name).set(
            json_file=json_file,
            image_root=image_root,
            evaluator_type="coco",
            box_only=box_only,
            user_dataset=source,
        )
        names.append(name)
    return names
