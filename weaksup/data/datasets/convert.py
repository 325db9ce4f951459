"""
Box annotations in the formats people label in -> COCO instances json (``datasets/convert_to_coco.py``).

* **Pascal VOC XML** (one ``<annotation>`` file per image, as LabelImg and CVAT write):
  ``<filename>``, ``<size>``, ``<object><name>``, ``<bndbox>`` with 1-based inclusive pixel
  coordinates (converted as Detectron2's VOC loader does: ``xmin - 1, ymin - 1, xmax, ymax``);
  ``<difficult>1`` objects become ``iscrowd: 1`` (COCOeval ignores them, as the VOC protocol
  ignores difficult objects, and Detectron2 does not train on them).
* **labelme** (one json per image): ``rectangle`` shapes give boxes; ``polygon`` shapes also
  keep their polygon as ``segmentation`` (register the json as ``boxonly`` to train on the boxes
  alone). Shapes with the same label and ``group_id`` are one instance, as in labelme's own
  ``labelme2coco``; the label ``__ignore__`` is skipped.
* **COCO** itself (``coco_to_coco``: the json as it is, to drop its masks with ``boxes_only``).
* **VIA 2** (the VGG Image Annotator's project or annotation export): ``rect`` and ``polygon``
  regions; the class is the region attribute ``class_attribute`` (default: the only one).

Categories get ids ``1..K`` in the order of ``classes`` (default: the sorted names found).
Images get ids ``0..N-1`` in sorted file order, annotations ``1..M``; ``file_name`` is relative
to the image root. A missing file, malformed record or unknown class raises ``ValueError``
naming the file and the record; so do an image size that differs from the image file's (when
the file is there) and a box reaching more than :data:`BOX_TOLERANCE` pixels outside the image
(boxes within it are clipped to the image: clicks on the border).
"""

import glob
import json
import os
import xml.etree.ElementTree as ET
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ...utils.coco_json import json_excerpt
from ...utils.image_io import image_size
from .sanitize import check_annotation_file, unknown_class_error

__all__ = [
    "CONVERTERS",
    "coco_to_coco",
    "drop_segmentations",
    "labelme_to_coco",
    "via_to_coco",
    "voc_xml_to_coco",
]

IGNORE_LABEL = "__ignore__"
# Pixels a box may reach outside the image (then clipped): labelling tools let clicks land on or
# just past the border, and 1-based VOC boxes written 0-based start at -1.
BOX_TOLERANCE = 1.0

# (image file relative to the image root, height, width, [(class name, box XYXY, polygons or
# None, iscrowd)]) for one image; polygons are flat [x0, y0, x1, y1, ...] lists.
_Image = Tuple[str, int, int, List[Tuple[str, List[float], Optional[List[List[float]]], int]]]


def _files(folder: str, ext: str) -> List[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"annotation folder not found: {folder}")
    files = sorted(glob.glob(os.path.join(folder, f"*{ext}")))
    if not files:
        raise ValueError(f"{folder}: no *{ext} annotation files")
    return files


def _load_json(path: str) -> Any:
    check_annotation_file(path)
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid json file ({e})") from e


def _image_size(path: str, source: str) -> Tuple[int, int]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{source}: image file not found: {path}")
    return image_size(path)


def _check_size(path: str, height: int, width: int, source: str) -> None:
    """A declared image size must be the image file's (when the file is there)."""
    if not os.path.isfile(path):
        return
    h, w = image_size(path)
    if (h, w) != (height, width):
        raise ValueError(f"{source}: image size {width}x{height} but {path} is {w}x{h}")


def _points_box(points: Sequence[Sequence[float]]) -> List[float]:
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def _inside(box: List[float], height: int, width: int, record: str) -> List[float]:
    """``box`` (XYXY) clipped to the image; raises when it reaches beyond :data:`BOX_TOLERANCE`."""
    x0, y0, x1, y1 = box
    t = BOX_TOLERANCE
    if not (-t <= x0 <= x1 <= width + t and -t <= y0 <= y1 <= height + t):
        raise ValueError(
            f"{record}: box (x0, y0, x1, y1) {[round(v, 2) for v in box]} is not inside the "
            f"{width}x{height} image"
        )
    return [max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))]


def _coco(images: Iterable[_Image], classes: Optional[Sequence[str]], source: str) -> Dict:
    images = list(images)
    found = sorted({obj[0] for _, _, _, objs in images for obj in objs})
    classes = list(classes) if classes else found
    ids = {name: i + 1 for i, name in enumerate(classes)}
    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": n, "supercategory": n} for n, i in ids.items()],
    }
    for image_id, (file_name, height, width, objs) in enumerate(images):
        coco["images"].append(
            {"id": image_id, "file_name": file_name, "height": height, "width": width}
        )
        for k, (name, box, polygons, iscrowd) in enumerate(objs):
            record = f"image {file_name!r} object {k}"
            if name not in ids:
                raise unknown_class_error(source, record, name, classes)
            x0, y0, x1, y1 = _inside(box, height, width, f"{source}: {record}")
            ann = {
                "id": len(coco["annotations"]) + 1,
                "image_id": image_id,
                "category_id": ids[name],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": iscrowd,
            }
            if polygons:
                ann["segmentation"] = polygons
            coco["annotations"].append(ann)
    return coco


def _voc_image(path: str, image_root: str) -> _Image:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not a valid XML file ({e})") from e
    try:
        file_name = root.findtext("filename").strip()
        size = root.find("size")
        height, width = int(size.findtext("height")), int(size.findtext("width"))
    except (AttributeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: no <filename> or <size><width>/<height> ({e!r})") from e
    if not (height > 0 and width > 0):  # some tools write 0 when they did not know the size
        height, width = _image_size(os.path.join(image_root, file_name), path)
    _check_size(os.path.join(image_root, file_name), height, width, path)
    objs = []
    for k, obj in enumerate(root.iter("object")):
        try:
            name = obj.findtext("name").strip()
            box = obj.find("bndbox")
            x0, y0, x1, y1 = (float(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(
                f"{path}: object {k}: no <name> or <bndbox> coordinates ({e!r})"
            ) from e
        difficult = int(float(obj.findtext("difficult") or 0))
        objs.append((name, [x0 - 1.0, y0 - 1.0, x1, y1], None, difficult))
    return file_name, height, width, objs


def voc_xml_to_coco(
    annotation_dir: str, image_root: str, classes: Optional[Sequence[str]] = None
) -> Dict:
    """COCO dict of a folder of Pascal VOC XML files (see the module docstring)."""
    return _coco(
        (_voc_image(p, image_root) for p in _files(annotation_dir, ".xml")), classes, annotation_dir
    )


def _labelme_image(path: str, image_root: str) -> _Image:
    data = _load_json(path)
    try:
        shapes = data["shapes"]
        file_name = data["imagePath"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a labelme json (no {e})") from e
    file_name = os.path.relpath(
        os.path.normpath(os.path.join(os.path.dirname(path), file_name)), image_root
    )
    if data.get("imageHeight") and data.get("imageWidth"):
        height, width = int(data["imageHeight"]), int(data["imageWidth"])
        _check_size(os.path.join(image_root, file_name), height, width, path)
    else:
        height, width = _image_size(os.path.join(image_root, file_name), path)
    groups: Dict[Tuple, List] = {}
    for k, shape in enumerate(shapes):
        try:
            label, kind, points = (
                shape["label"],
                shape.get("shape_type", "polygon"),
                shape["points"],
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: shape {k}: no {e}") from e
        if label == IGNORE_LABEL:
            continue
        if label is None or not str(label).strip():
            raise ValueError(f"{path}: shape {k}: empty label; give every shape a class")
        _check_points(points, f"{path}: shape {k} ({label!r})")
        if kind not in ("rectangle", "polygon") or len(points) < (2 if kind == "rectangle" else 3):
            raise ValueError(
                f"{path}: shape {k} ({label!r}): a {kind!r} with {len(points)} point(s); "
                "boxes need a rectangle (2 points) or a polygon (3 or more)"
            )
        group = shape.get("group_id")
        key = (label, group) if group is not None else (label, "shape", k)
        groups.setdefault(key, []).append((kind, points))
    objs = []
    for (label, *_), parts in groups.items():
        box = _points_box([p for _, points in parts for p in points])
        polygons = [[float(c) for p in points for c in p] for kind, points in parts]
        keep = all(kind == "polygon" for kind, _ in parts)
        objs.append((label, box, polygons if keep else None, 0))
    return file_name, height, width, objs


def _check_points(points: Any, record: str) -> None:
    """labelme ``points`` must be a list of ``[x, y]`` number pairs."""
    if not isinstance(points, list) or not all(
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
        for p in points
    ):
        raise ValueError(
            f"{record}: points {json_excerpt(points)} are not a list of [x, y] numbers"
        )


def labelme_to_coco(
    json_dir: str, image_root: Optional[str] = None, classes: Optional[Sequence[str]] = None
) -> Dict:
    """COCO dict of a folder of labelme jsons (image root: the json folder by default)."""
    image_root = image_root or json_dir
    return _coco(
        (_labelme_image(p, image_root) for p in _files(json_dir, ".json")), classes, json_dir
    )


def via_to_coco(
    json_file: str,
    image_root: str,
    classes: Optional[Sequence[str]] = None,
    class_attribute: Optional[str] = None,
) -> Dict:
    """COCO dict of a VIA 2 project or annotation json (see the module docstring)."""
    data = _load_json(json_file)
    if isinstance(data, dict) and "_via_img_metadata" in data:  # a whole project file
        data = data["_via_img_metadata"]
    if not isinstance(data, dict):
        raise ValueError(f"{json_file}: not a VIA 2 json (expected an object of images)")
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("regions", []), (list, dict)):
            raise ValueError(
                f"{json_file}: image {key!r}: {json_excerpt(entry)} is not a VIA image entry (an object "
                "with 'filename' and a list of 'regions')"
            )
    images = []
    for key, entry in sorted(data.items(), key=lambda kv: str(kv[1].get("filename", kv[0]))):
        try:
            file_name, regions = entry["filename"], entry["regions"]
        except KeyError as e:
            raise ValueError(f"{json_file}: image {key!r}: no {e}") from e
        if isinstance(regions, dict):  # VIA 1 exports regions keyed by index
            regions = list(regions.values())
        height, width = _image_size(os.path.join(image_root, file_name), f"{json_file}: {key!r}")
        objs = []
        for k, region in enumerate(regions):
            record = f"{json_file}: image {file_name!r} region {k}"
            if not isinstance(region, dict):
                raise ValueError(
                    f"{record}: {json_excerpt(region)} is not a VIA region (an object)"
                )
            attributes = region.get("region_attributes", {})
            attribute = class_attribute or (
                next(iter(attributes)) if len(attributes) == 1 else None
            )
            if attribute not in attributes:
                raise ValueError(
                    f"{record}: class attribute {attribute!r} not among {sorted(attributes)} "
                    "(give --via-class-attribute)"
                )
            label = _via_label(attributes[attribute], f"{record}: class {attribute!r}")
            shape = region.get("shape_attributes", {})
            kind = shape.get("name")
            try:
                if kind == "rect":
                    x, y, w, h = (float(shape[t]) for t in ("x", "y", "width", "height"))
                    objs.append((label, [x, y, x + w, y + h], None, 0))
                elif kind == "polygon":
                    xs, ys = shape["all_points_x"], shape["all_points_y"]
                    if len(xs) != len(ys) or len(xs) < 3:
                        raise ValueError(
                            f"{len(xs)} all_points_x but {len(ys)} all_points_y (a polygon "
                            "needs 3 or more points, as many x as y)"
                        )
                    polygon = [float(c) for xy in zip(xs, ys) for c in xy]
                    objs.append((label, _points_box(list(zip(xs, ys))), [polygon], 0))
                else:
                    raise ValueError(f"shape {kind!r} is neither 'rect' nor 'polygon'")
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{record}: bad shape_attributes ({e!r})") from e
        images.append((file_name, height, width, objs))
    if not images:
        raise ValueError(f"{json_file}: no images")
    return _coco(images, classes, json_file)


def _via_label(value: Any, record: str) -> str:
    """A region's class: the attribute's text, or the one ticked box of a checkbox attribute
    (``{"date": true}``); none ticked, several, or an empty text raise ``ValueError``."""
    if isinstance(value, dict):
        ticked = [name for name, on in value.items() if on]
        if len(ticked) != 1:
            raise ValueError(
                f"{record}: {len(ticked)} boxes ticked {sorted(ticked)} of a checkbox class; "
                "tick exactly one"
            )
        value = ticked[0]
    if value is None or not str(value).strip():
        raise ValueError(f"{record}: empty class name; give every region a class")
    return str(value)


def coco_to_coco(
    json_file: str, image_root: str = "", classes: Optional[Sequence[str]] = None
) -> Dict:
    """The COCO json itself (ids kept); ``image_root`` and ``classes`` are not used."""
    data = _load_json(json_file)
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise ValueError(
            f"{json_file}: not a COCO instances json (images, annotations, categories)"
        )
    return data


def drop_segmentations(coco: Dict) -> Dict:
    """``coco`` with no ``segmentation`` in any annotation (a box-only json), in place."""
    for ann in coco["annotations"]:
        ann.pop("segmentation", None)
    return coco


# format name -> converter, as chosen by ``datasets/convert_to_coco.py --format``
CONVERTERS = {
    "voc_xml": voc_xml_to_coco,
    "labelme": labelme_to_coco,
    "via": via_to_coco,
    "coco": coco_to_coco,
}
