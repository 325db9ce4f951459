#!/usr/bin/env python
"""
Mini datasets in the real on-disk layouts, for rehearsing the README's paper commands (issue 29)
and for ``benchmarks/gpu_check.py``: one ``$DETECTRON2_DATASETS`` folder made from the real
photographs of ``../shared/data``, tens of images in all::

    python datasets/make_rehearsal_data.py --output /tmp/rehearsal_datasets

writes, as COCO, VOC and DUTS ship them (then runs ``prepare_voc_sbd.py`` and
``prepare_duts_single.py`` on them, as a user does)::

    coco/annotations/instances_{train,val}2017.json  coco/{train,val}2017/*.jpg
        PennFudan pedestrians as COCO "person" with polygon masks; the 80 COCO categories
    VOC2012/{JPEGImages,SegmentationObject,SegmentationClass,Annotations}/
    VOC2012/ImageSets/{Segmentation,Main}/{train,val,trainval}.txt
        PennFudan pedestrians (VOC "person", palette PNGs) and the three real VOC 2011 photos of
        labelme_voc3 (several classes)
    benchmark_RELEASE/dataset/{img,inst,cls}/ + {train,val}.txt
        SBD's .mat files of further PennFudan images (train_aug = VOC train + SBD)
    VOC2007/{JPEGImages,Annotations}/ + ImageSets/Main/{trainval,test}.txt
    DUTS/DUTS-TR/{DUTS-TR-Image,DUTS-TR-Mask}/    ECSSD photos and masks

Image ids follow no official naming; the splits are disjoint. Sizes are kept small
(``--max-side``, default 320) so a rehearsal trains in seconds per iteration on a CPU.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import scipy.io
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from detectron2.data.datasets.pascal_voc import CLASS_NAMES
from PIL import Image

from weaksup.pseudo.geometry import tight_box

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
PERSON_VOC = CLASS_NAMES.index("person") + 1  # VOC class index (0 = background)


def _voc_palette() -> List[int]:
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _save_png(array: np.ndarray, path: str, palette: bool = True) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(array.astype(np.uint8), mode="P" if palette else "L")
    if palette:
        img.putpalette(_voc_palette())
    img.save(path)


def _save_jpg(image: np.ndarray, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f"cannot write {path}")


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def pennfudan(shared: str, max_side: int) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """``(name, BGR image, instance map)`` of every PennFudan photo, shrunk to ``max_side``."""
    root = os.path.join(shared, "PennFudanPed")
    out = []
    for f in sorted(os.listdir(os.path.join(root, "PNGImages"))):
        name = os.path.splitext(f)[0]
        image = cv2.imread(os.path.join(root, "PNGImages", f), cv2.IMREAD_COLOR)
        inst = np.array(Image.open(os.path.join(root, "PedMasks", name + "_mask.png")))
        s = min(1.0, max_side / max(image.shape[:2]))
        if s < 1:
            size = (round(image.shape[1] * s), round(image.shape[0] * s))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            inst = cv2.resize(inst, size, interpolation=cv2.INTER_NEAREST)
        out.append((name, image, inst))
    return out


def _objects(inst: np.ndarray) -> List[np.ndarray]:
    return [inst == k for k in np.unique(inst) if k and (inst == k).sum() >= 16]


def _box(mask: np.ndarray) -> List[int]:
    return [int(v) for v in tight_box(mask)]


def make_coco(root: str, photos: Sequence, splits: Dict[str, slice]) -> None:
    categories = [
        {"id": c["id"], "name": c["name"], "supercategory": "thing"}
        for c in COCO_CATEGORIES
        if c["isthing"]
    ]
    ann_id = 0
    for split, part in splits.items():
        images, annotations = [], []
        for image_id, (name, image, inst) in enumerate(photos[part], 1):
            file_name = f"{image_id + (0 if split == 'train' else 500000):012d}.jpg"
            _save_jpg(image, os.path.join(root, "coco", f"{split}2017", file_name))
            h, w = image.shape[:2]
            images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
            for mask in _objects(inst):
                contours, _ = cv2.findContours(
                    mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
                )
                polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
                if not polygons:
                    continue
                x0, y0, x1, y1 = _box(mask)
                ann_id += 1
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": 1,  # person
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": int(mask.sum()),
                        "iscrowd": 0,
                        "segmentation": polygons,
                    }
                )
        _write(
            os.path.join(root, "coco", "annotations", f"instances_{split}2017.json"),
            json.dumps({"images": images, "annotations": annotations, "categories": categories}),
        )


def _voc_xml(name: str, shape: Tuple[int, ...], objects: List[Tuple[str, List[int]]]) -> str:
    objs = "".join(
        f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for c, (x0, y0, x1, y1) in objects
    )
    return (
        f"<annotation><folder>VOC</folder><filename>{name}.jpg</filename><size>"
        f"<width>{shape[1]}</width><height>{shape[0]}</height><depth>3</depth></size>"
        f"<segmented>1</segmented>{objs}</annotation>"
    )


def make_voc(root: str, shared: str, photos: Sequence, parts: Dict[str, slice]) -> None:
    voc = os.path.join(root, "VOC2012")
    seg_sets: Dict[str, List[str]] = {"train": [], "val": []}
    # the three real VOC photos: their own PNGs (several classes, 255 boundaries)
    src = os.path.join(shared, "labelme_voc3", "examples", "instance_segmentation")
    src = os.path.join(src, "data_dataset_voc")
    real = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(src, "JPEGImages")))
    for i, name in enumerate(real):
        shutil.copy(
            os.path.join(src, "JPEGImages", name + ".jpg"), _mk(voc, "JPEGImages", name + ".jpg")
        )
        for kind in ("SegmentationObject", "SegmentationClass"):
            shutil.copy(os.path.join(src, kind, name + ".png"), _mk(voc, kind, name + ".png"))
        seg_sets["train" if i < 2 else "val"].append(name)
    names = {}
    for split in ("train", "val", "sbd"):
        names[split] = []
        for name, image, inst in photos[parts[split]]:
            objects = _objects(inst)
            obj_map = np.zeros(inst.shape, np.uint8)
            for k, m in enumerate(objects, 1):
                obj_map[m] = k
            cls_map = np.where(obj_map > 0, PERSON_VOC, 0).astype(np.uint8)
            names[split].append(name)
            if split == "sbd":  # SBD's .mat files (no 255 boundaries)
                ds = os.path.join(root, "benchmark_RELEASE", "dataset")
                _save_jpg(image, _mk(ds, "img", name + ".jpg"))
                _save_jpg(image, _mk(voc, "JPEGImages", name + ".jpg"))
                scipy.io.savemat(
                    _mk(ds, "inst", name + ".mat"),
                    {
                        "GTinst": {
                            "Segmentation": obj_map,
                            "Boundaries": np.zeros((len(objects), 1), dtype=object),
                            "Categories": np.full((len(objects), 1), PERSON_VOC, np.uint8),
                        }
                    },
                )
                scipy.io.savemat(
                    _mk(ds, "cls", name + ".mat"),
                    {
                        "GTcls": {
                            "Segmentation": cls_map,
                            "Boundaries": np.zeros((20, 1), dtype=object),
                            "CategoriesPresent": np.array([[PERSON_VOC]]),
                        }
                    },
                )
            else:
                _save_jpg(image, _mk(voc, "JPEGImages", name + ".jpg"))
                _save_png(obj_map, _mk(voc, "SegmentationObject", name + ".png"))
                _save_png(cls_map, _mk(voc, "SegmentationClass", name + ".png"))
                seg_sets[split].append(name)
            _write(
                _mk(voc, "Annotations", name + ".xml"),
                _voc_xml(name, image.shape, [("person", _box(m)) for m in objects]),
            )
    for name in real:  # boxes of the real VOC photos, from their object PNGs
        obj = np.array(Image.open(os.path.join(voc, "SegmentationObject", name + ".png")))
        cls = np.array(Image.open(os.path.join(voc, "SegmentationClass", name + ".png")))
        objs = [
            (CLASS_NAMES[np.bincount(cls[obj == k]).argmax() - 1], _box(obj == k))
            for k in np.unique(obj)
            if k not in (0, 255)
        ]
        _write(_mk(voc, "Annotations", name + ".xml"), _voc_xml(name, obj.shape, objs))
    for split, items in seg_sets.items():
        _write(_mk(voc, "ImageSets", "Segmentation", split + ".txt"), "\n".join(items) + "\n")
    seg_trainval = seg_sets["train"] + seg_sets["val"]
    _write(_mk(voc, "ImageSets", "Segmentation", "trainval.txt"), "\n".join(seg_trainval) + "\n")
    main_sets = {
        "train": seg_sets["train"] + names["sbd"],
        "val": seg_sets["val"],
    }
    for split, items in {**main_sets, "trainval": main_sets["train"] + main_sets["val"]}.items():
        _write(_mk(voc, "ImageSets", "Main", split + ".txt"), "\n".join(items) + "\n")
    ds = os.path.join(root, "benchmark_RELEASE", "dataset")
    _write(os.path.join(ds, "train.txt"), "\n".join(names["sbd"][:-1]) + "\n")
    _write(os.path.join(ds, "val.txt"), "\n".join(names["sbd"][-1:]) + "\n")


def make_voc2007(root: str, photos: Sequence) -> None:
    voc = os.path.join(root, "VOC2007")
    sets: Dict[str, List[str]] = {"trainval": [], "test": []}
    for i, (name, image, inst) in enumerate(photos):
        name = "07_" + name
        _save_jpg(image, _mk(voc, "JPEGImages", name + ".jpg"))
        objects = [("person", _box(m)) for m in _objects(inst)]
        _write(_mk(voc, "Annotations", name + ".xml"), _voc_xml(name, image.shape, objects))
        sets["trainval" if i < len(photos) - 2 else "test"].append(name)
    for split, items in sets.items():
        _write(_mk(voc, "ImageSets", "Main", split + ".txt"), "\n".join(items) + "\n")


def make_duts(root: str, shared: str, count: int, max_side: int) -> None:
    src = os.path.join(shared, "ECSSD")
    duts = os.path.join(root, "DUTS", "DUTS-TR")
    for f in sorted(os.listdir(os.path.join(src, "images")))[:count]:
        name = os.path.splitext(f)[0]
        image = cv2.imread(os.path.join(src, "images", f), cv2.IMREAD_COLOR)
        mask = cv2.imread(
            os.path.join(src, "ground_truth_mask", name + ".png"), cv2.IMREAD_GRAYSCALE
        )
        s = min(1.0, max_side / max(image.shape[:2]))
        size = (round(image.shape[1] * s), round(image.shape[0] * s))
        _save_jpg(
            cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            _mk(duts, "DUTS-TR-Image", f"d_{name}.jpg"),
        )
        _save_png(
            cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST),
            _mk(duts, "DUTS-TR-Mask", f"d_{name}.png"),
            palette=False,
        )


def _mk(*parts: str) -> str:
    path = os.path.join(*parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="the DETECTRON2_DATASETS folder to fill")
    parser.add_argument("--shared-data", default=os.environ.get("WEAKSUP_SHARED_DATA", SHARED))
    parser.add_argument("--max-side", type=int, default=320, help="longest image side")
    parser.add_argument("--no-prepare", action="store_true", help="skip prepare_voc_sbd/duts")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.output)
    if os.path.exists(root):
        raise FileExistsError(f"{root} exists: give a new folder (or remove it)")
    photos = pennfudan(args.shared_data, args.max_side)
    # disjoint PennFudan photos per split: COCO 8 + 4, VOC seg 6 + 4, SBD 6, VOC 2007 6
    make_coco(root, photos, {"train": slice(0, 8), "val": slice(8, 12)})
    make_voc(
        root,
        args.shared_data,
        photos,
        {"train": slice(12, 18), "val": slice(18, 22), "sbd": slice(22, 28)},
    )
    make_voc2007(root, photos[28:34])
    make_duts(root, args.shared_data, 8, args.max_side)
    if not args.no_prepare:
        here = os.path.dirname(os.path.abspath(__file__))
        voc, sbd = os.path.join(root, "VOC2012"), os.path.join(root, "benchmark_RELEASE")
        for cmd in (
            ["prepare_voc_sbd.py", "--voc-root", voc, "--sbd-root", sbd],
            ["prepare_duts_single.py", "--duts-root", os.path.join(root, "DUTS")],
        ):
            subprocess.run([sys.executable, os.path.join(here, cmd[0])] + cmd[1:], check=True)
    print(f"rehearsal datasets in {root}: DETECTRON2_DATASETS={root}")


if __name__ == "__main__":
    main()
