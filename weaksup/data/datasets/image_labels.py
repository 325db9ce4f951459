"""Image-level label datasets (Wei et al.): the class set of each image, nothing else.

A view of any registered dataset where each record keeps only ``file_name``, ``height``,
``width``, ``image_id`` and ``image_labels`` (sorted class indices, from the ``category_id`` of
its annotations, crowd ones included). Boxes, masks and label maps are never read: the only
annotation field accessed is ``category_id`` (tested with annotations that raise on any other
access), and the records given to the method carry no ``annotations`` at all.

* :func:`register_image_labels`: one dataset, its own classes (``<name>_image_labels``);
* :func:`register_image_label_union`: several datasets mapped by class name onto one class list
  (the CPU demo joins PennFudan, nuts_coco and labelme_voc3); image ids become
  ``"<base_name>:<image_id>"`` so they stay unique.
"""

import logging
from typing import Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .image_sets import declare_image_sources

__all__ = [
    "IMAGE_LEVEL_KEYS",
    "image_level_record",
    "load_image_labels",
    "register_image_label_union",
    "register_image_labels",
    "single_label_records",
]

logger = logging.getLogger(__name__)

# The only per-image keys an image-level record has.
IMAGE_LEVEL_KEYS = ("file_name", "height", "width", "image_id", "image_labels")


def image_level_record(
    record: Dict, class_map: Optional[Dict[int, int]] = None, id_prefix: str = ""
) -> Dict:
    """The image-level view of one dataset record (module docstring).

    Args:
        class_map: the base dataset's class index -> the view's; None: the identity. A class
            missing from it is an error naming the image.
        id_prefix: prepended to the image id (``"<prefix>:<id>"``).
    """
    labels = set()
    for ann in record.get("annotations", []):
        c = ann["category_id"]  # the only annotation field read
        if class_map is not None:
            if c not in class_map:
                raise ValueError(
                    f"image {record.get('file_name')!r}: class {c} has no place in the "
                    f"image-level class list (mapped classes: {sorted(class_map)})"
                )
            c = class_map[c]
        labels.add(int(c))
    image_id = record["image_id"]
    return {
        "file_name": record["file_name"],
        "height": record["height"],
        "width": record["width"],
        "image_id": f"{id_prefix}:{image_id}" if id_prefix else image_id,
        "image_labels": sorted(labels),
    }


def load_image_labels(
    base_names: Sequence[str],
    classes: Optional[Sequence[str]] = None,
    keep_unlabelled: bool = False,
) -> List[Dict]:
    """Image-level records of ``base_names`` (one: own class indices unless ``classes`` is given;
    several: ``classes`` required, mapped by name, ids prefixed by the base name). Images without
    any label are dropped (they say nothing to an image-level method) unless ``keep_unlabelled``.
    """
    if len(base_names) > 1 and classes is None:
        raise ValueError("several base datasets need one class list to map their classes onto")
    out = []
    for base in base_names:
        class_map = None
        if classes is not None:
            base_classes = MetadataCatalog.get(base).thing_classes
            index = {name: i for i, name in enumerate(classes)}
            class_map = {i: index[n] for i, n in enumerate(base_classes) if n in index}
        prefix = base if len(base_names) > 1 else ""
        out += [image_level_record(r, class_map, prefix) for r in DatasetCatalog.get(base)]
    kept = [r for r in out if r["image_labels"] or keep_unlabelled]
    if len(kept) < len(out):
        logger.info(
            f"image labels of {list(base_names)}: {len(out) - len(kept)} unlabelled images dropped"
        )
    if not kept:
        raise ValueError(f"image labels of {list(base_names)}: no labelled image")
    return kept


def single_label_records(records: Sequence[Dict]) -> List[Dict]:
    """The images with exactly one label (Wei et al. Sec. 4.2: SN_A / SN_B train on them)."""
    return [r for r in records if len(r["image_labels"]) == 1]


def register_image_labels(name: str, base_name: str) -> None:
    """Register the image-level view ``name`` of ``base_name`` (same classes)."""
    DatasetCatalog.register(name, lambda: load_image_labels([base_name]))
    MetadataCatalog.get(name).set(
        thing_classes=list(MetadataCatalog.get(base_name).thing_classes),
        image_level_base=[base_name],
    )
    declare_image_sources(name, [base_name])


def register_image_label_union(
    name: str, base_names: Sequence[str], classes: Sequence[str], keep_unlabelled: bool = False
) -> None:
    """Register the image-level union ``name`` of ``base_names`` on the class list ``classes``
    (every class that occurs must be in it; base classes that never occur, such as labelme's
    ``_background_``, need not). ``keep_unlabelled``: keep images without any label (negative
    images, e.g. :mod:`.box_free_crops`, for a classifier with a background class)."""
    DatasetCatalog.register(
        name, lambda: load_image_labels(list(base_names), list(classes), keep_unlabelled)
    )
    MetadataCatalog.get(name).set(thing_classes=list(classes), image_level_base=list(base_names))
    declare_image_sources(name, base_names)
