"""Issue 29 finding 9: the pseudo-json mask source keeps its masks on disk (one copy per rank
and loader worker must stay small)."""

import gc
import json
import pickle
import tracemalloc

import numpy as np
import pytest

from weaksup.data.mask_sources import PseudoJsonMaskSource
from weaksup.utils.rle import encode_mask


def _ellipse(h, w, cy, cx, ry, rx):
    y, x = np.ogrid[:h, :w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def _pseudo_json(path, num_images, per_image, size, rng):
    h = w = size
    images, annotations = [], []
    for i in range(num_images):
        images.append({"id": i, "file_name": f"{i}.jpg", "height": h, "width": w})
        for j in range(per_image):
            cy, cx = (int(v) for v in rng.randint(10, size - 10, 2))
            mask = _ellipse(h, w, cy, cx, rng.randint(4, 10), rng.randint(4, 10))
            annotations.append(
                {
                    "id": 7 * (i * per_image + j) + 3,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": [cx - 10, cy - 10, 20, 20],
                    "iscrowd": 0,
                    "segmentation": encode_mask(mask),
                    "area": int(mask.sum()),
                    "mask_valid": bool(j % 2),
                    "box_agreement": 0.5,
                    "pseudo_method": "test",
                    "fallback": None,
                }
            )
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}
    path.write_text(json.dumps(data))
    return data


def test_pseudo_json_mask_source_holds_no_copy_of_the_masks(tmp_path, monkeypatch):
    """10,000 annotations: the source used to keep every RLE (about 5 MB of Python objects
    here, 1.5-2 GB at COCO's 860k boxes) in each mapper copy; the on-disk index keeps under
    10 bytes per annotation in the process (COCO: under 9 MB per copy) and pickles small."""
    monkeypatch.setenv("WEAKSUP_CACHE", str(tmp_path / "cache"))
    data = _pseudo_json(tmp_path / "pseudo.json", 200, 50, 64, np.random.RandomState(0))
    n = len(data["annotations"])
    for build in (True, False):  # building the index, then reading the one built
        gc.collect()
        tracemalloc.start()
        try:
            source = PseudoJsonMaskSource(str(tmp_path / "pseudo.json"))
            gc.collect()
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert kept < 10 * n, f"the source keeps {kept} bytes for {n} annotations"
        if not build:
            assert peak < 10 * n, f"reading a built index peaked at {peak} bytes"
    assert len(pickle.dumps(source)) < 1000
    copy = pickle.loads(pickle.dumps(source))
    for a in data["annotations"][::997] + data["annotations"][-1:]:
        got = copy({"id": a["id"], "bbox": a["bbox"], "segmentation": [[0, 0, 1, 1, 2, 2]]})
        assert got["segmentation"] == a["segmentation"]
        assert got["mask_valid"] == a["mask_valid"] and got["pseudo_method"] == "test"
    with pytest.raises(KeyError, match="no annotation with id 4"):
        source({"id": 4, "bbox": [0, 0, 1, 1]})


def test_pseudo_json_mask_source_bad_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("WEAKSUP_CACHE", str(tmp_path / "cache"))
    data = _pseudo_json(tmp_path / "p.json", 2, 2, 32, np.random.RandomState(1))
    data["annotations"][1]["id"] = data["annotations"][0]["id"]
    (tmp_path / "dup.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"dup\.json: duplicate annotation ids"):
        PseudoJsonMaskSource(str(tmp_path / "dup.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json: not a valid json"):
        PseudoJsonMaskSource(str(tmp_path / "broken.json"))
