"""The Wei et al. CPU demo's datasets: image-level labels from PennFudan, nuts_coco and
labelme_voc3 on one class list, and a semantic validation set with derived label maps.

* ``wei_demo_train``: image-level labels (:mod:`weaksup.data.datasets.image_labels`) of
  PennFudan train (128 images, ``person``), nuts_coco train (12 images: dates, figs, hazelnuts)
  and the 3 labelme_voc3 images (VOC classes; :mod:`weaksup.data.datasets.nuts_labelme`);
* ``wei_demo_val_sem_seg``: PennFudan val (42) + nuts_coco val (6, every third image by id),
  label maps derived once from their instance masks (``$WEAKSUP_CACHE/sem_seg/wei_demo_val``,
  :func:`~weaksup.data.mask_subset.register_instance_sem_seg`), for the ``sem_seg`` evaluator.
"""

import os
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from weaksup.data.datasets.image_labels import register_image_label_union
from weaksup.data.mask_subset import register_instance_sem_seg
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
    register_image_label_union(
        "wei_demo_train",
        ["pennfudan_train_boxonly", "nuts_coco_train", "labelme_voc3"],
        WEI_DEMO_CLASSES,
    )
    val_bases = ["pennfudan_val", "nuts_coco_val"]
    DatasetCatalog.register("wei_demo_val", lambda: _union_instances(val_bases, WEI_DEMO_CLASSES))
    MetadataCatalog.get("wei_demo_val").set(thing_classes=list(WEI_DEMO_CLASSES))
    register_instance_sem_seg(
        "wei_demo_val_sem_seg", "wei_demo_val", os.path.join(cache_dir(), "sem_seg", "wei_demo_val")
    )


register_wei_demo()
