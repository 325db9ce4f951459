#!/usr/bin/env python
"""
Convert Penn-Fudan pedestrians to COCO instances jsons (the input of ``tools/make_pseudo_masks.py``
and of any COCO-json tool).

Images and annotations are weaksup's own loader's (:func:`load_pennfudan`: the train/val split,
boxes, masks from ``PedMasks`` as RLE) converted by Detectron2's ``convert_to_coco_dict``. Choices:
category ``person`` has id 1; image ids are the loader's (index of the file name among all images);
annotation ``k`` (0-based, file order) of image ``i`` has id ``1000 * i + k + 1``, unique across splits
and computable from one record (:func:`pennfudan_annotation_id`); ``file_name`` is relative to
``PNGImages``::

    python datasets/prepare_pennfudan.py --root $DETECTRON2_DATASETS/PennFudanPed \\
        --output-dir $DETECTRON2_DATASETS/PennFudanPed/weaksup

writes ``instances_{train,val}.json`` (``--splits`` picks others, e.g. ``all``), atomically.
"""

import argparse
import os
from typing import Any, Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_dict

from weaksup.data.datasets import PENNFUDAN_CLASSES, load_pennfudan
from weaksup.utils.file_io import write_json_atomic

_TMP_NAME = "_prepare_pennfudan_all"


def pennfudan_coco(root: str, splits: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """COCO dicts of the given splits of the PennFudan folder ``root`` (see module docstring)."""
    DatasetCatalog.register(_TMP_NAME, lambda: load_pennfudan(root, "all"))
    MetadataCatalog.get(_TMP_NAME).set(
        thing_classes=list(PENNFUDAN_CLASSES), thing_dataset_id_to_contiguous_id={1: 0}
    )
    try:
        coco = convert_to_coco_dict(_TMP_NAME)
    finally:
        DatasetCatalog.remove(_TMP_NAME)
        MetadataCatalog.remove(_TMP_NAME)
    image_root = os.path.join(root, "PNGImages")
    for img in coco["images"]:
        img["file_name"] = os.path.relpath(img["file_name"], image_root)
    # Detectron2 numbers annotations 1..N; keep the loader's ids (pennfudan_annotation_id), which
    # pseudo-mask files and training are matched by. Both list annotations in record order.
    loader_ids = [
        a["id"] for r in load_pennfudan(root, "all", with_masks=False) for a in r["annotations"]
    ]
    if len(loader_ids) != len(coco["annotations"]):
        raise RuntimeError(
            f"{root}: {len(coco['annotations'])} converted vs {len(loader_ids)} loaded"
        )
    for ann, ann_id in zip(coco["annotations"], loader_ids):
        ann["id"] = ann_id
    out = {}
    for split in splits:
        ids = {r["image_id"] for r in load_pennfudan(root, split, with_masks=False)}
        out[split] = {
            "info": {
                "description": f"PennFudanPed {split} (weaksup datasets/prepare_pennfudan.py)"
            },
            "images": [img for img in coco["images"] if img["id"] in ids],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in ids],
            "categories": coco["categories"],
        }
    return out


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--root", required=True, help="the PennFudanPed folder")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    args = parser.parse_args(argv)
    for split, coco in pennfudan_coco(args.root, args.splits).items():
        path = os.path.join(args.output_dir, f"instances_{split}.json")
        write_json_atomic(coco, path)
        print(f"{path}: {len(coco['images'])} images, {len(coco['annotations'])} instances")


if __name__ == "__main__":
    main()
