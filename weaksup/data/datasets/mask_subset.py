"""
Heterogeneous training sets (DASNet Sec. 4.1): every image has boxes, a subset also has masks.

A mask-subset view of a dataset with masks is registered under its own name. Its loader drops
every ``segmentation`` (and ``sem_seg_file_name``) of the images outside the subset at load time,
so with the ``"annotation"`` mask source their instances are flagged ``gt_mask_valid = False``
and no mask outside the subset can reach a loss. The subset is

* ``per_class=k``: k images per class drawn at random with a fixed seed (Seg100 / Seg200 /
  Seg500 are 5 / 10 / 25 per class), class by class in class order, each class drawing among the
  images that contain it and were not drawn for an earlier class;
* ``image_list=path``: the images named in a list file (the VOC 2012 ``train`` segmentation list,
  1,464 images: Seg1.4k);
* neither: all images (Seg10k).

``subset_only=True`` keeps only the images with masks (DASNet's stage 2). ``sem_seg_dataset``
joins VOC label maps (``sem_seg_file_name``, by image file) to the subset's images.

:func:`register_instance_sem_seg` derives semantic label maps from instance masks, for the
``sem_seg`` evaluator on instance datasets (PennFudan).
"""

import copy
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ...paths import cache_dir
from .coco import PSEUDO_MASK_KEYS
from .image_sets import declare_image_sources

__all__ = [
    "select_per_class",
    "select_by_names",
    "apply_mask_subset",
    "load_mask_subset",
    "register_mask_subset",
    "instance_label_map",
    "register_instance_sem_seg",
]

logger = logging.getLogger(__name__)

# Per-image keys that carry pixel-level supervision, dropped outside the subset.
_IMAGE_MASK_KEYS = ("sem_seg_file_name",)
# Per-annotation keys that carry (or describe) a mask, dropped outside the subset.
_ANNOTATION_MASK_KEYS = ("segmentation",) + PSEUDO_MASK_KEYS


def _classes_with_masks(record: Dict) -> set:
    return {
        a["category_id"]
        for a in record["annotations"]
        if "segmentation" in a and not a.get("iscrowd", 0)
    }


def select_per_class(dicts: Sequence[Dict], per_class: int, seed: int) -> List:
    """``image_id`` s of ``per_class`` images per class, drawn with ``np.random.RandomState(seed)``.

    Classes in increasing id; each draws without replacement among the images that have a mask of
    that class and were not drawn before (all of them when fewer, with a warning). Deterministic
    for a given dataset order and seed.
    """
    rng = np.random.RandomState(seed)
    classes = [_classes_with_masks(r) for r in dicts]
    chosen: List = []
    taken = set()
    for c in sorted(set().union(*classes)):
        candidates = [
            r["image_id"] for r, cs in zip(dicts, classes) if c in cs and r["image_id"] not in taken
        ]
        if len(candidates) < per_class:
            logger.warning(
                f"class {c}: only {len(candidates)} images left to draw {per_class} from; "
                "taking all of them"
            )
        drawn = [candidates[j] for j in rng.permutation(len(candidates))[:per_class]]
        chosen += drawn
        taken.update(drawn)
    return chosen


def select_by_names(dicts: Sequence[Dict], list_file: str) -> List:
    """``image_id`` s of the images whose file stem is a line of ``list_file`` (VOC ImageSets)."""
    with open(list_file) as f:
        names = {line.strip() for line in f if line.strip()}
    chosen = [
        r["image_id"]
        for r in dicts
        if os.path.splitext(os.path.basename(r["file_name"]))[0] in names
    ]
    if len(chosen) != len(names):
        logger.warning(f"{list_file}: {len(names)} names, {len(chosen)} of them in the dataset")
    return chosen


def apply_mask_subset(
    dicts: Sequence[Dict], image_ids: Sequence, subset_only: bool = False
) -> List[Dict]:
    """Copies of ``dicts`` where only the images in ``image_ids`` keep masks and label maps.

    Outside the subset, annotations keep their box, class and ``iscrowd`` and lose
    ``segmentation`` and the pseudo-mask keys; the record loses ``sem_seg_file_name``.
    ``subset_only`` returns the subset's images alone.
    """
    keep = set(image_ids)
    out = []
    for record in dicts:
        inside = record["image_id"] in keep
        if subset_only and not inside:
            continue
        record = copy.deepcopy(record)
        if not inside:
            for key in _IMAGE_MASK_KEYS:
                record.pop(key, None)
            record["annotations"] = [
                {k: v for k, v in a.items() if k not in _ANNOTATION_MASK_KEYS}
                for a in record["annotations"]
            ]
        out.append(record)
    return out


def load_mask_subset(
    base_name: str,
    per_class: Optional[int] = None,
    image_list: Optional[str] = None,
    seed: int = 0,
    subset_only: bool = False,
    sem_seg_dataset: Optional[str] = None,
) -> List[Dict]:
    """Load ``base_name`` (a dataset with masks) as a mask-subset view (see the module doc)."""
    if per_class is not None and image_list is not None:
        raise ValueError("choose the mask subset by per_class or by image_list, not both")
    dicts = DatasetCatalog.get(base_name)
    if sem_seg_dataset is not None:
        label_maps = {
            r["file_name"]: r["sem_seg_file_name"] for r in DatasetCatalog.get(sem_seg_dataset)
        }
        dicts = [{**r, "sem_seg_file_name": label_maps[r["file_name"]]} for r in dicts]
    if per_class is not None:
        image_ids = select_per_class(dicts, per_class, seed)
    elif image_list is not None:
        image_ids = select_by_names(dicts, image_list)
    else:
        image_ids = [r["image_id"] for r in dicts]
    out = apply_mask_subset(dicts, image_ids, subset_only)
    logger.info(
        f"Mask subset of {base_name}: {len(image_ids)} of {len(dicts)} images keep their masks"
        + (" (only these are loaded)" if subset_only else "")
    )
    return out


def register_mask_subset(name: str, base_name: str, **kwargs) -> None:
    """Register the mask-subset view ``name`` of ``base_name``; kwargs of :func:`load_mask_subset`.

    The metadata is the base's, plus ``mask_subset`` (the options) and, with a
    ``sem_seg_dataset``, its ``stuff_classes`` and ``ignore_label``.
    """
    DatasetCatalog.register(name, lambda: load_mask_subset(base_name, **kwargs))
    meta = {k: v for k, v in MetadataCatalog.get(base_name).as_dict().items() if k != "name"}
    if kwargs.get("sem_seg_dataset"):
        sem_meta = MetadataCatalog.get(kwargs["sem_seg_dataset"])
        meta.update(stuff_classes=sem_meta.stuff_classes, ignore_label=sem_meta.ignore_label)
    MetadataCatalog.get(name).set(mask_subset=dict(base=base_name, **kwargs), **meta)
    declare_image_sources(name, [base_name])


def instance_label_map(record: Dict, ignore_label: int = 255) -> np.ndarray:
    """Semantic label map (uint8, H x W) of a record's instance masks.

    Pixel value ``category_id + 1`` inside an instance (later annotations over earlier ones),
    ``ignore_label`` inside a crowd region, 0 elsewhere.
    """
    height, width = record["height"], record["width"]
    label = np.zeros((height, width), dtype=np.uint8)
    for ann in sorted(record["annotations"], key=lambda a: bool(a.get("iscrowd", 0))):
        seg = ann["segmentation"]
        if isinstance(seg, list):
            rle = mask_util.merge(mask_util.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = mask_util.frPyObjects(seg, height, width)
        else:
            rle = seg
        value = ignore_label if ann.get("iscrowd", 0) else ann["category_id"] + 1
        label[mask_util.decode(rle).astype(bool)] = value
    return label


def _load_instance_sem_seg(base_name: str, label_dir: str) -> List[Dict]:
    os.makedirs(label_dir, exist_ok=True)
    out = []
    for record in DatasetCatalog.get(base_name):
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        path = os.path.join(label_dir, f"{record['image_id']}_{stem}.png")
        if not os.path.isfile(path):
            tmp = f"{path}.{os.getpid()}.partial.png"
            Image.fromarray(instance_label_map(record)).save(tmp)
            os.replace(tmp, path)  # atomic: DDP ranks may write the same map
        out.append({**record, "sem_seg_file_name": path})
    return out


def register_instance_sem_seg(name: str, base_name: str, label_dir: str) -> None:
    """Register ``base_name`` (instance masks) with derived label maps for the ``sem_seg``
    evaluator: the records keep their annotations (``coco`` / ``voc_instance`` evaluators) and gain
    ``sem_seg_file_name``, a map of :func:`instance_label_map` written once under ``label_dir``.
    """
    DatasetCatalog.register(name, lambda: _load_instance_sem_seg(base_name, label_dir))
    meta = {k: v for k, v in MetadataCatalog.get(base_name).as_dict().items() if k != "name"}
    meta.update(
        stuff_classes=["background"] + list(meta["thing_classes"]),
        ignore_label=255,
        sem_seg_root=label_dir,
    )
    MetadataCatalog.get(name).set(**meta)
    declare_image_sources(name, [base_name])


def register_all_mask_subsets(root: str) -> None:
    """The paper's VOC splits (Sec. 4.1) and the PennFudan demo's.

    * ``voc_2012_train_aug_seg{100,200,500,1464,10k}`` (all 10,582 images with boxes; masks and
      label maps on Seg100 / Seg200 / Seg500 / Seg1.4k / Seg10k, seed 0) and ``..._masks``
      (the subset's images only). The Box16.5k boxes are Detectron2's ``voc_2007_trainval`` +
      ``voc_2012_trainval``.
    * ``pennfudan_train_seg{5,20}`` / ``..._masks`` (masks on 5 / 20 of the 128 images, seed 0;
      20 is the paper's semi-supervised share, Seg1.4k of 10.6k images: 14 %, here 16 %) and
      ``pennfudan_val_sem_seg`` (val with label maps derived from its instance masks).
    """
    voc_list = os.path.join(root, "VOC2012/ImageSets/Segmentation/train.txt")
    subsets = {
        "seg100": dict(per_class=5),
        "seg200": dict(per_class=10),
        "seg500": dict(per_class=25),
        "seg1464": dict(image_list=voc_list),
        "seg10k": {},
    }
    for tag, option in subsets.items():
        for suffix, subset_only in (("", False), ("_masks", True)):
            register_mask_subset(
                f"voc_2012_train_aug_{tag}{suffix}",
                "voc_2012_train_aug_instance",
                subset_only=subset_only,
                sem_seg_dataset="voc_2012_train_aug_sem_seg",
                **option,
            )
    for n in (5, 20):
        for suffix, subset_only in (("", False), ("_masks", True)):
            register_mask_subset(
                f"pennfudan_train_seg{n}{suffix}",
                "pennfudan_train",
                per_class=n,
                subset_only=subset_only,
            )
    register_instance_sem_seg(
        "pennfudan_val_sem_seg",
        "pennfudan_val",
        os.path.join(cache_dir(), "sem_seg", "pennfudan_val"),
    )


register_all_mask_subsets(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))
