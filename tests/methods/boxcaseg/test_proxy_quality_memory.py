"""Issue 29 finding 9: BoxCaseg's proxy quality never holds every mask at full resolution."""

import gc
import json
import tracemalloc

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from weaksup.methods.boxcaseg.proxy_masks import proxy_mask_quality
from weaksup.utils.rle import encode_mask


def test_proxy_mask_quality_holds_one_image_of_masks(tmp_path):
    """600 proxy masks of 200 x 200: 24 MB as bool masks, twice with their GT masks, which the
    quality used to keep all at once (COCO: ~500 GB); now IoUs of the RLEs, image by image."""
    rng = np.random.RandomState(2)
    images, annotations, records = [], [], []
    for i in range(100):
        images.append({"id": i, "file_name": f"{i}.jpg", "height": 200, "width": 200})
        gts = []
        for j in range(6):
            y, x = (int(v) for v in rng.randint(0, 150, 2))
            gt = np.zeros((200, 200), bool)
            gt[y : y + 40, x : x + 30] = True
            proxy = gt.copy()
            proxy[y : y + 10] = False  # IoU 0.75
            annotations.append({"id": 6 * i + j, "image_id": i, "segmentation": encode_mask(proxy)})
            annotations[-1]["mask_valid"] = bool(j % 2)
            gts.append({"category_id": 0, "iscrowd": 0, "segmentation": encode_mask(gt)})
        records.append(
            {
                "image_id": i,
                "file_name": f"{i}.jpg",
                "height": 200,
                "width": 200,
                "annotations": gts,
            }
        )
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    name = "test_proxy_quality_memory"
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).thing_classes = ["a"]
    try:
        gc.collect()
        tracemalloc.start()
        try:
            report = proxy_mask_quality(str(path), name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert peak < 8e6, f"proxy quality peaked at {peak / 1e6:.1f} MB"
    assert report["mIoU*"] == pytest.approx(75.0) and report["IoU@50"] == pytest.approx(100.0)
    assert report["IoU@75"] == pytest.approx(0.0)  # strictly larger than 0.75
    assert report["drop rate"] == pytest.approx(50.0) and report["instances"] == 600
    assert report["kept mIoU*"] == pytest.approx(75.0)
