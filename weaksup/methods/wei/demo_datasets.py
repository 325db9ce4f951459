"""The Wei et al. CPU demo's datasets: image-level labels from PennFudan, nuts_coco and
labelme_voc3 on one class list, and a semantic validation set with derived label maps.

* ``wei_demo_train``: image-level labels (:mod:`weaksup.data.datasets.image_labels`) of
  PennFudan train (128 images, ``person``), nuts_coco train (12 images: dates, figs, hazelnuts)
  and the 3 labelme_voc3 images (VOC classes; :mod:`weaksup.data.datasets.nuts_labelme`);
* ``wei_demo_train_box_free``: the same plus 117 negative images without any label, the street
  crops of ``pennfudan_train_box_free`` (:mod:`weaksup.data.datasets.box_free_crops`), for HCP
  with a background class (``MODEL.HCP.BACKGROUND_CLASS``): every PennFudan photo has a
  pedestrian, so without them "person" is the street scene;
* ``wei_demo_val_sem_seg``: PennFudan val (42) + nuts_coco val (6, every third image by id),
  label maps derived once from their instance masks (``$WEAKSUP_CACHE/sem_seg/wei_demo_val``,
  :func:`~weaksup.data.datasets.mask_subset.register_instance_sem_seg`), for the ``sem_seg`` evaluator;
* scoring only (``WEAKSUP.WEI.HCP_TEST_DATASET`` / ``LABEL_GT_DATASET``, read by no training):
  ``wei_demo_val_image_labels``, the image-level labels of the same 48 validation images, and
  ``wei_demo_train_sem_seg``, label maps of the 143 training images from their instance masks.
"""

import os
from functools import partial
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from weaksup.data.datasets.image_labels import register_image_label_union
from weaksup.data.datasets.mask_subset import register_instance_sem_seg
from weaksup.paths import cache_dir

__all__ = ["WEI_DEMO_CLASSES", "register_wei_demo"]

# Every class with an image in the demo data; the segmentation networks add background first.
WEI_DEMO_CLASSES = ["person", "date", "fig", "hazelnut", "bottle", "bus", "car", "chair", "sofa"]


def _union_instances(base_names: Sequence[str], classes: Sequence[str]) -> List[Dict]:
    """Instance records of ``base_names`` with category ids mapped by name onto ``classes``."""
    index = {n: i for i, n in enumerate(classes)}
    out = []
    for base in base_names:
        names = MetadataCatalog.get(base).thing_classes
        for r in DatasetCatalog.get(base):
            anns = [{**a, "category_id": index[names[a["category_id"]]]} for a in r["annotations"]]
            out.append({**r, "image_id": f"{base}:{r['image_id']}", "annotations": anns})
    return out


def register_wei_demo() -> None:
    """Register the demo datasets (module docstring) on the builtin ``pennfudan_*``,
    ``nuts_coco_*`` and ``labelme_voc3`` datasets."""
    label_bases = ["pennfudan_train_boxonly", "nuts_coco_train", "labelme_voc3"]
    register_image_label_union("wei_demo_train", label_bases, WEI_DEMO_CLASSES)
    register_image_label_union(
        "wei_demo_train_box_free",
        label_bases + ["pennfudan_train_box_free"],
        WEI_DEMO_CLASSES,
        keep_unlabelled=True,
    )
    val_bases = ["pennfudan_val", "nuts_coco_val"]
    train_bases = ["pennfudan_train", "nuts_coco_train", "labelme_voc3"]
    register_image_label_union("wei_demo_val_image_labels", val_bases, WEI_DEMO_CLASSES)
    for name, bases in (("wei_demo_val", val_bases), ("wei_demo_train_instances", train_bases)):
        DatasetCatalog.register(name, partial(_union_instances, bases, WEI_DEMO_CLASSES))
        MetadataCatalog.get(name).set(thing_classes=list(WEI_DEMO_CLASSES))
    for name in ("wei_demo_val", "wei_demo_train"):
        base = name if name == "wei_demo_val" else "wei_demo_train_instances"
        register_instance_sem_seg(
            f"{name}_sem_seg", base, os.path.join(cache_dir(), "sem_seg", name)
        )


register_wei_demo()
