#!/usr/bin/env python
"""
Convert PASCAL VOC 2012 + SBD segmentation annotations for weaksup.

Instance segmentation -> COCO json (one annotation per object id, RLE masks with str counts);
semantic segmentation -> PNG label maps (VOC class index, 0 = background, 255 = ignore)::

    python datasets/prepare_voc_sbd.py \\
        --voc-root $DETECTRON2_DATASETS/VOC2012 --sbd-root $DETECTRON2_DATASETS/benchmark_RELEASE

writes ``<output-dir>`` (default ``<voc-root>/weaksup``)::

    instances_<split>.json   COCO json; file_name relative to <voc-root>/JPEGImages
    sem_seg_<split>.json     {"images": [{image_id, file_name, sem_seg_file_name, height, width}]}
    SegmentationClassAug/<id>.png   label maps (mode "L")

Splits (``--splits``): ``train``, ``val``, ``trainval`` from VOC ``ImageSets/Segmentation``;
``train_aug`` = (VOC train + SBD train + SBD val) - VOC val (10,582 images with the full sets,
as in the papers; val has 1,449); ``all`` = every ``SegmentationObject`` PNG. Default: train_aug
and val with ``--sbd-root``, else train and val when ``ImageSets/Segmentation`` exists, else all.

Decisions:
* An image with VOC PNGs uses them (finer, with 255 boundaries); otherwise SBD's ``inst/<id>.mat``
  (``GTinst.Segmentation``, ``GTinst.Categories``) and ``cls/<id>.mat`` (``GTcls.Segmentation``).
* VOC object category = the most frequent class of the class map under the object's pixels
  (0 and 255 not counted); 255 (boundary) pixels belong to no object. All objects get iscrowd 0.
* bbox = tight box of the mask, COCO XYWH in pixel-edge coordinates; image ids are 1-based
  positions in the sorted split.
* Palette PNGs are read as indices (PIL mode "P"), never converted to RGB.
* ``--voc-root`` may also be a plain VOC-layout folder (``JPEGImages/``, ``SegmentationObject/``,
  ``SegmentationClass/``, optional ``class_names.txt`` whose line i names class i, line 0 the
  background), or a folder holding exactly one such folder (e.g. ``../shared/data/labelme_voc3``).
"""

import argparse
import json
import os
from multiprocessing import Pool
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import scipy.io
from detectron2.data.datasets.pascal_voc import CLASS_NAMES
from PIL import Image
from tqdm import tqdm

VOC_CLASSES = list(CLASS_NAMES)  # index + 1 = VOC class index
IGNORE = 255
SEM_SEG_DIR = "SegmentationClassAug"
STANDARD_SIZES = {"train_aug": 10582, "val": 1449}


def find_voc_root(root: str) -> str:
    """``root`` if it holds ``SegmentationObject/``, else the single folder below it that does."""
    if os.path.isdir(os.path.join(root, "SegmentationObject")):
        return root
    found = sorted(d for d, subdirs, _ in os.walk(root) if "SegmentationObject" in subdirs)
    if len(found) != 1:
        raise FileNotFoundError(
            f"{root}: expected one VOC-layout folder with SegmentationObject/, found {found}"
        )
    return found[0]


def read_class_names(voc_root: str) -> List[str]:
    """Object class names, index + 1 = class index (``class_names.txt`` if present, else VOC's)."""
    path = os.path.join(voc_root, "class_names.txt")
    if not os.path.isfile(path):
        return list(VOC_CLASSES)
    with open(path) as f:
        names = [line.strip() for line in f if line.strip() and line.strip() != "__ignore__"]
    if len(names) < 2:
        raise ValueError(f"{path}: needs the background and at least one class, one name per line")
    return names[1:]


def read_index_png(path: str) -> np.ndarray:
    """Palette (or grey) PNG as its index array; errors name the file."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"mode {im.mode}, expected an indexed (P) or grey (L) PNG")
            return np.asarray(im)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read label PNG {path}: {e}") from e


def read_sbd_mat(path: str, key: str):
    """The ``GTinst`` / ``GTcls`` struct of an SBD .mat file; errors name the file."""
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)[key]
    except (OSError, ValueError, KeyError, NotImplementedError) as e:
        raise ValueError(f"cannot read {key} from SBD file {path}: {e!r}") from e


def voc_object_categories(objects: np.ndarray, classes: np.ndarray, source: str) -> Dict[int, int]:
    """Category of each object id: its most frequent class (0 and 255 not counted)."""
    categories = {}
    for k in np.unique(objects):
        if k in (0, IGNORE):
            continue
        votes = np.bincount(classes[objects == k], minlength=256)
        votes[[0, IGNORE]] = 0
        if votes.sum() == 0:
            raise ValueError(f"{source}: object {k} covers no class pixel in the class map")
        categories[int(k)] = int(votes.argmax())
    return categories


def instance_annotations(
    objects: np.ndarray, categories: Dict[int, int], num_classes: int, source: str
) -> List[Dict]:
    """COCO annotations (without ids) of each object id of ``objects``, in id order."""
    annotations = []
    for k, category in sorted(categories.items()):
        if not 1 <= category <= num_classes:
            raise ValueError(
                f"{source}: object {k}: unknown class index {category} (1..{num_classes})"
            )
        mask = objects == k
        if not mask.any():
            raise ValueError(f"{source}: object {k} has a category but no pixel")
        ys, xs = np.nonzero(mask)
        rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0 = int(xs.min()), int(ys.min())
        annotations.append(
            {
                "category_id": category,
                "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                "area": int(mask.sum()),
                "segmentation": rle,
                "iscrowd": 0,
            }
        )
    return annotations


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


class Converter:
    """Converts one image id (picklable, for ``--workers``)."""

    def __init__(self, voc_root: str, sbd_root: Optional[str], output_dir: str, num_classes: int):
        self.voc_root, self.sbd_root = voc_root, sbd_root
        self.output_dir, self.num_classes = output_dir, num_classes

    def maps(self, image_id: str) -> Tuple[np.ndarray, np.ndarray, Dict[int, int], str]:
        """(object map, class map, object categories, source) from VOC PNGs, else SBD .mat files."""
        obj_png = os.path.join(self.voc_root, "SegmentationObject", image_id + ".png")
        if os.path.isfile(obj_png):
            cls_png = os.path.join(self.voc_root, "SegmentationClass", image_id + ".png")
            objects, classes = read_index_png(obj_png), read_index_png(cls_png)
            if objects.shape != classes.shape:
                raise ValueError(
                    f"{obj_png}: size {objects.shape} differs from {cls_png} {classes.shape}"
                )
            return objects, classes, voc_object_categories(objects, classes, obj_png), obj_png
        if self.sbd_root is None:
            raise FileNotFoundError(f"{obj_png} not found (and no --sbd-root given)")
        inst_mat = os.path.join(self.sbd_root, "dataset", "inst", image_id + ".mat")
        cls_mat = os.path.join(self.sbd_root, "dataset", "cls", image_id + ".mat")
        for path in (inst_mat, cls_mat):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"image {image_id}: neither {obj_png} nor SBD file {path} exists"
                )
        inst = read_sbd_mat(inst_mat, "GTinst")
        objects = np.asarray(inst.Segmentation)
        classes = np.asarray(read_sbd_mat(cls_mat, "GTcls").Segmentation)
        if objects.shape != classes.shape:
            raise ValueError(
                f"{inst_mat}: size {objects.shape} differs from {cls_mat} {classes.shape}"
            )
        cats = np.atleast_1d(inst.Categories).astype(int)
        present = [int(k) for k in np.unique(objects) if k not in (0, IGNORE)]
        if present and max(present) > len(cats):
            raise ValueError(
                f"{inst_mat}: object {max(present)} has no entry in GTinst.Categories ({len(cats)})"
            )
        return objects, classes, {k: int(cats[k - 1]) for k in present}, inst_mat

    def __call__(self, image_id: str) -> Dict:
        objects, classes, categories, source = self.maps(image_id)
        height, width = objects.shape
        image_file = os.path.join(self.voc_root, "JPEGImages", image_id + ".jpg")
        if not os.path.isfile(image_file):
            raise FileNotFoundError(f"{source}: image not found: {image_file}")
        with Image.open(image_file) as im:
            if im.size != (width, height):
                raise ValueError(
                    f"{image_file}: size {im.size} differs from {source} {(width, height)}"
                )
        bad = np.setdiff1d(np.unique(classes), [*range(self.num_classes + 1), IGNORE])
        if bad.size:
            raise ValueError(f"{source}: unknown class indices {bad.tolist()} in the class map")
        sem_file = os.path.join(SEM_SEG_DIR, image_id + ".png")
        _atomic_write(
            os.path.join(self.output_dir, sem_file),
            lambda tmp: Image.fromarray(classes.astype(np.uint8), mode="L").save(tmp, format="PNG"),
        )
        return {
            "image": {"file_name": image_id + ".jpg", "height": height, "width": width},
            "sem_seg_file_name": sem_file,
            "annotations": instance_annotations(objects, categories, self.num_classes, source),
        }


def _read_ids(path: str) -> List[str]:
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def split_ids(voc_root: str, sbd_root: Optional[str], split: str) -> List[str]:
    """Sorted image ids of ``split`` (see the module docstring)."""

    def voc(name: str) -> List[str]:
        path = os.path.join(voc_root, "ImageSets", "Segmentation", name + ".txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"split {split!r} needs {path}")
        return _read_ids(path)

    if split == "all":
        folder = os.path.join(voc_root, "SegmentationObject")
        ids = [f[: -len(".png")] for f in os.listdir(folder) if f.endswith(".png")]
    elif split in ("train", "val", "trainval"):
        ids = voc(split)
    elif split == "train_aug":
        if sbd_root is None:
            raise ValueError("split 'train_aug' needs --sbd-root")
        sbd = [
            i
            for s in ("train", "val")
            for i in _read_ids(os.path.join(sbd_root, "dataset", s + ".txt"))
        ]
        ids = list(set(voc("train") + sbd) - set(voc("val")))
    else:
        raise ValueError(
            f"unknown split {split!r}; expected train, val, trainval, train_aug or all"
        )
    if not ids:
        raise ValueError(f"split {split!r} of {voc_root} has no images")
    return sorted(set(ids))


def write_split(
    output_dir: str,
    split: str,
    ids: Sequence[str],
    converted: Dict[str, Dict],
    class_names: List[str],
) -> None:
    """Write ``instances_<split>.json`` and ``sem_seg_<split>.json``."""
    images, annotations, sem_seg = [], [], []
    for image_id, name in enumerate(ids, 1):
        item = converted[name]
        images.append({"id": image_id, **item["image"]})
        sem_seg.append(
            {"image_id": image_id, **item["image"], "sem_seg_file_name": item["sem_seg_file_name"]}
        )
        for ann in item["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    categories = [
        {"id": i, "name": n, "supercategory": "none"} for i, n in enumerate(class_names, 1)
    ]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    for name, data in (
        (f"instances_{split}.json", coco),
        (f"sem_seg_{split}.json", {"images": sem_seg}),
    ):

        def dump(tmp: str, data=data) -> None:
            with open(tmp, "w") as f:
                json.dump(data, f)

        _atomic_write(os.path.join(output_dir, name), dump)
    expected = STANDARD_SIZES.get(split)
    note = f" (the standard split has {expected})" if expected and expected != len(ids) else ""
    print(f"{split}: {len(ids)} images, {len(annotations)} instances{note}")


def convert(
    voc_root: str, sbd_root: Optional[str], output_dir: str, splits: Sequence[str], workers: int = 0
) -> None:
    """Convert ``splits`` of ``voc_root`` (+ ``sbd_root``) into ``output_dir``."""
    class_names = read_class_names(voc_root)
    os.makedirs(os.path.join(output_dir, SEM_SEG_DIR), exist_ok=True)
    ids = {split: split_ids(voc_root, sbd_root, split) for split in splits}
    todo = sorted(set().union(*ids.values()))
    converter = Converter(voc_root, sbd_root, output_dir, len(class_names))
    if workers > 0:
        with Pool(workers) as pool:
            results = list(
                tqdm(pool.imap(converter, todo, chunksize=16), total=len(todo), desc="convert")
            )
    else:
        results = [converter(i) for i in tqdm(todo, desc="convert")]
    converted = dict(zip(todo, results))
    for split in splits:
        write_split(output_dir, split, ids[split], converted, class_names)


def default_splits(voc_root: str, sbd_root: Optional[str]) -> List[str]:
    if sbd_root is not None:
        return ["train_aug", "val"]
    if os.path.isdir(os.path.join(voc_root, "ImageSets", "Segmentation")):
        return ["train", "val"]
    return ["all"]


def main(argv: Optional[List[str]] = None) -> None:
    root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voc-root", default=os.path.join(root, "VOC2012"))
    parser.add_argument(
        "--sbd-root", help="SBD benchmark_RELEASE folder (holds dataset/inst, dataset/cls)"
    )
    parser.add_argument("--output-dir", help="default: <voc-root>/weaksup")
    parser.add_argument("--splits", nargs="+", help="train, val, trainval, train_aug, all")
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes (0: convert in-process)"
    )
    args = parser.parse_args(argv)
    voc_root = find_voc_root(args.voc_root)
    output_dir = args.output_dir or os.path.join(voc_root, "weaksup")
    convert(
        voc_root,
        args.sbd_root,
        output_dir,
        args.splits or default_splits(voc_root, args.sbd_root),
        args.workers,
    )


if __name__ == "__main__":
    main()
