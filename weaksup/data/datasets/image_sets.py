"""
Which photographs a dataset holds, for checking that no evaluation image is trained on.

A dataset registration may declare the public image lists its images come from
(:func:`declare_image_split`: a collection, the lists it takes, the lists it removes), or the
registered datasets it is a view of (:func:`declare_image_sources`: mask subsets, image-level
views, label-map views). :func:`image_splits` resolves a name to its declared lists and
:func:`may_share_images` decides from them alone whether two datasets can hold a common photo;
where the images are on disk, :func:`photo_keys` names the real photographs.

Facts the declarations rely on (:data:`DISJOINT_LISTS` and :func:`photo_key`):

* the VOC 2012 images named ``2007_NNNNNN`` are the VOC 2007 photos ``NNNNNN`` (their VOC 2012
  annotation files say ``<database>The VOC2007 Database</database>``), so VOC 2007 trainval and
  test share photos with the VOC 2012 segmentation lists;
* VOC 2012 Main trainval holds every VOC 2012 segmentation image (Segmentation val is a subset);
  SBD train / val overlap VOC 2012 Segmentation val (``train_aug`` removes it);
* lists of one collection are disjoint only where the table says so (train vs val); different
  collections (COCO, VOC, DUTS, ECSSD, PennFudan, nuts) share no photo.
"""

import os
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = [
    "DISJOINT_LISTS",
    "ImageSplit",
    "declare_image_split",
    "declare_image_sources",
    "exclude_voc_photos",
    "image_splits",
    "may_share_images",
    "photo_key",
    "photo_keys",
    "read_voc_list",
]


@dataclass(frozen=True)
class ImageSplit:
    """Images of public lists ``includes`` of ``collection``, less those of lists ``excludes``."""

    collection: str
    includes: Tuple[str, ...]
    excludes: Tuple[str, ...] = field(default=())


# Pairs of lists of one collection known to share no image (the lists' own definitions).
DISJOINT_LISTS: Dict[str, Set[FrozenSet[str]]] = {
    "voc": {
        frozenset({"2012/Segmentation/train", "2012/Segmentation/val"}),
        frozenset({"2007/Main/trainval", "2007/Main/test"}),
    },
    "coco": {frozenset({"train2017", "val2017"})},
    "pennfudan": {frozenset({"train", "val"})},
    "nuts_coco": {frozenset({"train", "val"})},
    "ecssd": {frozenset({"train", "heldout"})},  # weaksup's own split (datasets/salient.py)
}


def declare_image_split(
    name: str, collection: str, includes: Sequence[str], excludes: Sequence[str] = ()
) -> None:
    """Declare that dataset ``name`` holds images of ``includes`` less those of ``excludes``."""
    MetadataCatalog.get(name).set(
        image_split=ImageSplit(collection, tuple(includes), tuple(excludes))
    )


def declare_image_sources(name: str, base_names: Sequence[str]) -> None:
    """Declare that dataset ``name`` holds only images of the datasets ``base_names``."""
    MetadataCatalog.get(name).set(image_sources=list(base_names))


def image_splits(name: str) -> Optional[List[ImageSplit]]:
    """The declared lists of ``name`` (through its sources), or None where any is undeclared."""
    meta = MetadataCatalog.get(name)
    if "image_split" in meta.as_dict():
        return [meta.image_split]
    if "image_sources" not in meta.as_dict():
        return None
    out: List[ImageSplit] = []
    for base in meta.image_sources:
        splits = image_splits(base)
        if splits is None:
            return None
        out += splits
    return out


def _lists_disjoint(a: ImageSplit, b: ImageSplit) -> bool:
    if a.collection != b.collection:
        return True
    known = DISJOINT_LISTS.get(a.collection, set())
    return all(
        frozenset({x, y}) in known or y in a.excludes or x in b.excludes
        for x in a.includes
        for y in b.includes
    )


def may_share_images(name_a: str, name_b: str) -> Optional[bool]:
    """Whether the declarations allow a common image of ``name_a`` and ``name_b``; None where one
    of them declares nothing."""
    a, b = image_splits(name_a), image_splits(name_b)
    if a is None or b is None:
        return None
    return not all(_lists_disjoint(x, y) for x in a for y in b)


def photo_key(file_name: str) -> str:
    """A name of the photograph in ``file_name``, the same for every copy of it that weaksup reads:
    VOC ``VOC2012/JPEGImages/2007_000033.jpg`` and ``VOC2007/JPEGImages/000033.jpg`` are
    ``voc2007/000033``; any other file is its real path."""
    path = os.path.realpath(file_name)
    folder = os.path.basename(os.path.dirname(os.path.dirname(path)))
    stem = os.path.splitext(os.path.basename(path))[0]
    if folder == "VOC2012" and stem.startswith("2007_"):
        return "voc2007/" + stem[len("2007_") :]
    if folder in ("VOC2007", "VOC2012"):
        return folder.lower() + "/" + stem
    return path


def photo_keys(records: Iterable[Dict]) -> Set[str]:
    """:func:`photo_key` of every record's ``file_name``."""
    return {photo_key(r["file_name"]) for r in records}


def read_voc_list(path: str, year: str = "2012") -> Set[str]:
    """Photo keys of a VOC ``ImageSets`` list of ``year``'s folder; the error names the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VOC image list not found: {path}")
    with open(path) as f:
        stems = [line.split()[0] for line in f if line.strip()]
    return {photo_key(os.path.join(f"VOC{year}", "JPEGImages", s + ".jpg")) for s in stems}


def exclude_voc_photos(base_names: Sequence[str], list_file: str) -> List[Dict]:
    """The records of ``base_names`` (VOC detection splits) whose photo is not in the VOC 2012
    list ``list_file`` (e.g. ``ImageSets/Segmentation/val.txt``), VOC 2007 copies included."""
    excluded = read_voc_list(list_file)
    return [
        r
        for base in base_names
        for r in DatasetCatalog.get(base)
        if photo_key(r["file_name"]) not in excluded
    ]
