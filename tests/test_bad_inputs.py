"""Bad input to the pseudo-mask tool, training and the evaluation tools: each case either stops
with a message naming the file and the record, or is handled correctly; never a silent wrong
result. Inputs are small copies of real images (nuts_coco JPEGs, PennFudan PNGs) in tmp_path."""

import copy
import importlib.util
import json
import os
import re
import shutil

import pytest

from conftest import REPO_ROOT, shared_path


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_pseudo_masks = _load_tool("make_pseudo_masks")
eval_pseudo_masks = _load_tool("eval_pseudo_masks")


def _nuts(tmp_path, num_images=2):
    """The first ``num_images`` nuts_coco images (JPEG, 800x600) copied to ``tmp_path/images``,
    their COCO json (polygon masks) written to ``tmp_path/in.json``."""
    src = shared_path("nuts_coco", "data")
    with open(src / "trainval.json") as f:
        coco = json.load(f)
    coco["images"] = coco["images"][:num_images]
    ids = {i["id"] for i in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    for image in coco["images"]:
        shutil.copy(src / "images" / image["file_name"], root / image["file_name"])
    _write_json(tmp_path / "in.json", coco)
    return coco, root


def _write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _pseudo(tmp_path, root, method="ellipse", in_json=None, output=None):
    """Run the pseudo-mask tool on ``in_json`` (default ``tmp_path/in.json``); the output's path."""
    output = tmp_path / "out.json" if output is None else output
    make_pseudo_masks.main(
        [
            "--input-json",
            str(in_json or tmp_path / "in.json"),
            "--image-root",
            str(root),
            "--method",
            method,
            "--output",
            str(output),
            "--no-progress",
        ]
    )
    return output


# ------------------------------------------------------------------------------------------------
# images


def test_pseudo_tool_truncated_jpeg(tmp_path):
    """cv2 decodes a truncated JPEG as a half-grey image: the tool must stop, not write masks."""
    coco, root = _nuts(tmp_path)
    _truncate(root / "1.jpg")
    with pytest.raises(ValueError, match=r"'[^']*1\.jpg' \(image_id=1\): truncated"):
        _pseudo(tmp_path, root)
    assert not (tmp_path / "out.json").exists()
