"""COCO-format json files read with checks that name the file and the record.

``json.load`` of a bare number, or a COCO dict whose box is ``null``, fails later with a traceback
that names neither (``TypeError: argument of type 'int' is not iterable``); pycocotools keeps one of
two images with the same id without a word. :func:`load_json_file` and :func:`check_coco_dict`
stop first, naming the file and the image / annotation. Plain Python.
"""

import json
import numbers
import os
from typing import Any, Dict

__all__ = [
    "check_coco_dict",
    "check_coco_file",
    "is_box",
    "json_excerpt",
    "load_coco_file",
    "load_json_file",
]

_CHECKED = set()  # (path, size, mtime, require_categories) of files check_coco_file passed


def load_json_file(path: str, what: str = "json file") -> Any:
    """The parsed json of ``path``; ``FileNotFoundError`` / ``ValueError`` naming it when it is
    missing, empty or not valid json."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file, not a {what}")
    with open(path, "rb") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a valid json file ({e})") from e


def json_excerpt(value: Any, limit: int = 60) -> str:
    """``value`` as json (anything else as its ``str``), cut to ``limit`` characters: how an
    error message quotes a record's value."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_box(bbox: Any) -> bool:
    """Whether ``bbox`` is 4 numbers (a list, tuple or array; NaN and inf count as numbers)."""
    if isinstance(bbox, (str, bytes, dict)):
        return False
    try:
        values = list(bbox)
    except TypeError:
        return False
    return len(values) == 4 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values
    )


def _image_problem(image: Any) -> str:
    if not isinstance(image, dict):
        return f"an image entry that is not an object: {str(image)[:80]}"
    missing = [k for k in ("id", "file_name", "height", "width") if k not in image]
    if missing:
        return f"image {image.get('id')!r} without {missing}"
    if not all(isinstance(image[k], int) and image[k] > 0 for k in ("height", "width")):
        return f"image {image['id']!r}: invalid size {image['width']!r}x{image['height']!r}"
    return ""


def _annotation_problem(ann: Any, images: Dict, categories: Any) -> str:
    if not isinstance(ann, dict):
        return f"an annotation that is not an object: {str(ann)[:80]}"
    where = f"image {ann.get('image_id')!r} annotation id {ann.get('id')!r}"
    if ann.get("image_id") not in images:
        return f"{where}: no image with this id in 'images'"
    if not is_box(ann.get("bbox")):
        return f"{where}: box {ann.get('bbox')!r} is not a list of 4 numbers"
    if categories is not None and ann.get("category_id") not in categories:
        shown = ", ".join(map(repr, sorted(categories)))
        return f"{where}: unknown class {ann.get('category_id')!r} (known: {shown})"
    return ""


def check_coco_dict(data: Any, source: str, require_categories: bool = True) -> Dict[str, Any]:
    """Check that ``data`` (read from ``source``) is a COCO instances dict: an object with lists
    ``images`` (unique ids, positive sizes), ``annotations`` (unique ids when given, a known
    image, a box of 4 numbers, a known category) and ``categories``; return it.

    Raises ``ValueError`` naming ``source`` and the first bad image or annotation.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a COCO json: a json {type(data).__name__}, not an object")
    keys = ("images", "annotations") + (("categories",) if require_categories else ())
    for key in keys:
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}: no {key!r} list: not a COCO instances json")
    images: Dict[Any, Any] = {}
    for image in data["images"]:
        problem = _image_problem(image)
        if not problem and image["id"] in images:
            problem = (
                f"image id {image['id']!r} twice ({images[image['id']]!r}, {image['file_name']!r})"
            )
        if problem:
            raise ValueError(f"{source}: {problem}")
        images[image["id"]] = image["file_name"]
    categories = None
    if "categories" in data:
        if not all(isinstance(c, dict) and "id" in c for c in data["categories"]):
            raise ValueError(f"{source}: 'categories' entries without an 'id'")
        categories = {c["id"] for c in data["categories"]}
    seen = set()
    for ann in data["annotations"]:
        problem = _annotation_problem(ann, images, categories)
        if not problem and "id" in ann:
            if ann["id"] in seen:
                problem = f"annotation id {ann['id']!r} twice"
            seen.add(ann["id"])
        if problem:
            raise ValueError(f"{source}: {problem}")
    return data


def load_coco_file(path: str, require_categories: bool = True) -> Dict[str, Any]:
    """:func:`load_json_file` + :func:`check_coco_dict`."""
    return check_coco_dict(load_json_file(path, "COCO json"), path, require_categories)


def check_coco_file(path: str, require_categories: bool = True) -> None:
    """:func:`load_coco_file` once per version of the file (path, size, modification time): a
    dataset loaded again and again (each ``DatasetCatalog.get``) is parsed for the check once."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, require_categories)
    if key not in _CHECKED:
        load_coco_file(path, require_categories)
        _CHECKED.add(key)
