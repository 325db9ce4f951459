"""Wei et al.'s scores against ground truth (weaksup.methods.wei.scoring,
weaksup.pseudo.label_metrics): exact values on hand-built inputs and on real PennFudan images with their instance masks.
"""

import numpy as np
import pytest

from conftest import pennfudan_records, shared_path

from weaksup.methods.wei.localization import localization_maps
from weaksup.methods.wei.scoring import (
    average_precision,
    format_label_quality_table,
    localization_label_map,
    multilabel_average_precision,
    score_label_maps,
)
from weaksup.pseudo import candidate_segments
from weaksup.pseudo.label_metrics import (
    background_only_confusion,
    iou_from_confusion,
    label_confusion,
    miou_from_confusion,
)


def test_average_precision_exact():
    # ranks 1..4: hit, miss, hit, miss -> (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(100 * 5 / 6)
    assert average_precision([0.1, 0.2], [1, 1]) == pytest.approx(100.0)
    assert np.isnan(average_precision([0.3, 0.2], [0, 0]))
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([[1, 0], [0, 0], [0, 0]], dtype=bool)
    ap = multilabel_average_precision(scores, labels)
    assert ap[0] == pytest.approx(100.0) and np.isnan(ap[1])
    with pytest.raises(ValueError, match="differ in shape"):
        multilabel_average_precision(scores, labels[:2])


def test_confusion_iou_and_background_floor():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 2]], dtype=np.uint8)
    conf = label_confusion(pred, gt, 3)
    assert conf.sum() == 7  # the ignore pixel left out
    iou = iou_from_confusion(conf)
    np.testing.assert_allclose(iou[:2], [100 * 3 / 5, 100 * 2 / 4])
    assert np.isnan(iou[2])  # class 2 only predicted on an ignored pixel
    assert miou_from_confusion(conf) == pytest.approx((60 + 50) / 2)
    floor = background_only_confusion(conf)
    assert floor.sum() == conf.sum() and (floor[:, 1:] == 0).all()
    assert miou_from_confusion(floor) == pytest.approx(100 * 4 / 7 / 2)


def test_localization_label_map_is_the_argmax():
    maps = np.zeros((3, 2, 2), np.float32)
    maps[0] = [[1, 0.2], [0.5, 0.0]]
    maps[1] = [[0, 0.8], [0.5, 0.3]]
    maps[2] = [[0, 0.0], [0.0, 0.7]]
    out = localization_label_map(maps, [4, 0])
    np.testing.assert_array_equal(out, [[0, 5], [0, 1]])  # tie at (1, 0): background
    with pytest.raises(ValueError, match="background first"):
        localization_label_map(maps, [4])


@pytest.fixture(scope="module")
def pennfudan_two():
    import cv2

    records, masks = pennfudan_records(2)
    images = [cv2.imread(r["file_name"]) for r in records]
    gts = []
    for r, ms in zip(records, masks):
        gt = np.zeros((r["height"], r["width"]), np.uint8)
        for m in ms:
            gt[m] = 1
        gts.append(gt)
    return records, images, gts


def test_label_scores_on_real_pennfudan(pennfudan_two):
    records, images, gts = pennfudan_two
    shared_path("PennFudanPed")
    by_file = {r["file_name"]: g for r, g in zip(records, gts)}
    truth = lambda r: by_file[r["file_name"]]  # noqa: E731
    # Eq. 2 map of the real candidates of each image, one label (person, class 0)
    maps = {}
    for r, image in zip(records, images):
        cs = candidate_segments(image, num_candidates=20, max_side=64)
        maps[r["file_name"]] = localization_maps([cs.masks()], r["height"], r["width"])
    argmax = lambda r: localization_label_map(maps[r["file_name"]], [0])  # noqa: E731
    q = score_label_maps(records, truth, {"gt": truth, "maps": argmax}, num_classes=2)
    assert q["gt"]["mIoU"] == pytest.approx(100.0)
    # background-only: background IoU is the background share of the pixels, person 0
    bg = sum(int((g == 0).sum()) for g in gts) / sum(g.size for g in gts)
    np.testing.assert_allclose(q["background-only"]["IoU"], [100 * bg, 0.0])
    assert q["background-only"]["mIoU"] == pytest.approx(50 * bg)
    # the argmax of one label's map is "person" exactly where over half of its candidates cover
    conf = np.zeros((2, 2), np.int64)
    for r, g in zip(records, gts):
        m = maps[r["file_name"]]
        np.testing.assert_array_equal(argmax(r), (m[1] > m[0]).astype(np.uint8))
        conf += label_confusion((m[1] > 0.5).astype(np.uint8), g, 2)
    assert q["maps"]["mIoU"] == pytest.approx(miou_from_confusion(conf))
    assert q["maps"]["images"] == 2
    table = format_label_quality_table(q, ["background", "person"])
    assert "| mIoU | 100.0 |" in table and "(2 training images" in table
