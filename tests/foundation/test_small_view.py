"""Small-object views (weaksup.data.datasets.small_view) on real PennFudan images."""

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from conftest import pennfudan_records, shared_path
from weaksup.data.datasets.image_sets import may_share_images
from weaksup.data.datasets.small_view import small_object_record
from weaksup.evaluation.ground_truth import segmentation_to_bitmask


def _mask_areas(dataset: str) -> np.ndarray:
    """Pixel area of every instance mask of a registered dataset (PennFudan's: skipped without
    the shared data)."""
    shared_path("PennFudanPed")
    return np.array(
        [
            segmentation_to_bitmask(a["segmentation"], r["height"], r["width"]).sum()
            for r in DatasetCatalog.get(dataset)
            for a in r["annotations"]
        ]
    )


def test_small_object_record_moves_image_boxes_and_masks(tmp_path):
    (record,), (masks,) = pennfudan_records(1)  # FudanPed00001: 559 x 536, two pedestrians
    H, W = record["height"], record["width"]
    view = small_object_record(record, 0.25, str(tmp_path))
    image, original = cv2.imread(view["file_name"]), cv2.imread(record["file_name"])
    assert image.shape == original.shape  # the canvas keeps the size
    h, w, top, left = round(H / 4), round(W / 4), (H - round(H / 4)) // 2, (W - round(W / 4)) // 2
    np.testing.assert_array_equal(
        image[top : top + h, left : left + w],
        cv2.resize(original, (w, h), interpolation=cv2.INTER_AREA),
    )
    fill = original.reshape(-1, 3).mean(0).round()
    assert (image[0, 0] == fill).all() and (image[-1, -1] == fill).all()
    for ann, old, mask in zip(view["annotations"], record["annotations"], masks):
        x0, y0, x1, y1 = old["bbox"]
        np.testing.assert_allclose(
            ann["bbox"], [left + x0 * w / W, top + y0 * h / H, left + x1 * w / W, top + y1 * h / H]
        )
        small = segmentation_to_bitmask(ann["segmentation"], H, W)
        assert not small[:top].any() and not small[:, :left].any()
        assert abs(small.sum() / mask.sum() - 1 / 16) < 0.01  # area scales by 1/16
        ys, xs = np.nonzero(small)
        assert x0 * w / W + left - 1 <= xs.min() and xs.max() <= left + x1 * w / W + 1
    again = small_object_record(record, 0.25, str(tmp_path))  # the written image is reused
    assert again == view
    with pytest.raises(ValueError, match=r"scale must be in \(0, 1\], got 1.5"):
        small_object_record(record, 1.5, str(tmp_path))


def test_pennfudan_val_small_is_small_and_declared():
    shared_path("PennFudanPed")
    num_images = len(DatasetCatalog.get("pennfudan_val_small"))
    assert num_images == len(DatasetCatalog.get("pennfudan_val")) == 42
    areas = _mask_areas("pennfudan_val_small")
    assert len(areas) == 111 and max(areas) < 64 * 64 and np.median(areas) < 32 * 32
    assert MetadataCatalog.get("pennfudan_val_small").thing_classes == ["person"]
    assert may_share_images("pennfudan_val_small", "pennfudan_val") is True
    assert may_share_images("pennfudan_val_small", "pennfudan_train_boxonly") is False


def test_pennfudan_val_half_puts_most_masks_under_the_fusion_area():
    areas, full = _mask_areas("pennfudan_val_half"), _mask_areas("pennfudan_val")
    assert len(areas) == 111 and (areas < 64 * 64).sum() == 82 and (full < 64 * 64).sum() == 3
    assert abs(areas.sum() / full.sum() - 1 / 4) < 0.01  # area scales by 1/4
