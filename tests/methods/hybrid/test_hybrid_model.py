"""Hybrid networks: the validity split (Sec. 1) on hand-built masks, the fusion rule (Sec. 2) on
hand-built detections, the small branch's GrabCut / ellipse segmentation (Sec. 2.2) on real
PennFudan crops, and both meta-architectures on a real image."""

import json

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances

from conftest import REPO_ROOT, pennfudan_records, register_dataset
from weaksup.methods.hybrid.pipeline import format_ablation_table, register_validity_view
from weaksup.engine.pseudo_masks import dataset_coco, pseudo_mask_validity
from weaksup.methods.hybrid.meta_arch import fuse_detections, segment_detections
from weaksup.pseudo import PseudoMaskConfig, box_agreement, box_mask, ellipse_mask, grabcut_crop
from weaksup.pseudo.job import pseudo_mask_json
from weaksup.pseudo.validity import validity_statistics

H = W = 200


def _square(x0, y0, x1, y1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_validity_split_on_hand_built_masks(tmp_path):
    """Valid iff IoU(tight box of the mask, box) >= 0.5; the small branch's 'invalid' view keeps
    exactly the invalid instances and drops images left empty; Sec. 1's statistics."""
    boxes = {  # id: (image, box XYXY)
        1: (0, (10, 10, 110, 110)),  # large box, mask fills it: valid (agreement 1)
        2: (0, (120, 120, 150, 150)),  # small box, mask a 10x10 corner: agreement 1/9, invalid
        3: (1, (0, 0, 100, 60)),  # large box, mask its left half: agreement exactly 0.5, valid
        4: (1, (150, 150, 190, 190)),  # small box, empty mask: agreement 0, invalid
        5: (2, (20, 20, 60, 60)),  # small box, full mask: valid
    }
    masks = {
        1: _square(10, 10, 110, 110),
        2: _square(120, 120, 130, 130),
        3: _square(0, 0, 50, 60),
        4: np.zeros((H, W), dtype=bool),
        5: _square(20, 20, 60, 60),
    }
    agreement = {i: box_agreement(masks[i], boxes[i][1]) for i in boxes}
    assert agreement == pytest.approx({1: 1.0, 2: 1 / 9, 3: 0.5, 4: 0.0, 5: 1.0})
    valid = {i: a >= PseudoMaskConfig().valid_threshold for i, a in agreement.items()}
    assert valid == {1: True, 2: False, 3: True, 4: False, 5: True}

    import pycocotools.mask as mask_util

    records = []
    for image_id in range(3):
        anns = []
        for i, (img, (x0, y0, x1, y1)) in boxes.items():
            if img == image_id:
                anns.append({"id": i, "bbox": [x0, y0, x1, y1], "bbox_mode": 0, "category_id": 0})
        records.append(
            {"file_name": f"{image_id}.png", "image_id": image_id, "height": H, "width": W}
            | {"annotations": anns}
        )
    register_dataset("hybrid_unit_boxes", records, ["thing"])
    coco = dataset_coco("hybrid_unit_boxes")
    assert sorted(a["id"] for a in coco["annotations"]) == [1, 2, 3, 4, 5]
    results = []
    for i, m in masks.items():
        rle = mask_util.encode(np.asfortranarray(m, dtype=np.uint8))
        rle["counts"] = rle["counts"].decode()
        results.append(
            {"id": i, "segmentation": rle, "area": int(m.sum()), "box_agreement": agreement[i]}
            | {"mask_valid": valid[i], "fallback": None}
        )
    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(pseudo_mask_json(coco, results, "hand")))

    name = register_validity_view("hybrid_unit_boxes", str(path), keep_valid=False)
    view = DatasetCatalog.get(name)
    assert [r["image_id"] for r in view] == [0, 1]  # image 2 has no invalid instance
    assert [[a["id"] for a in r["annotations"]] for r in view] == [[2], [4]]
    valid_view = DatasetCatalog.get(register_validity_view("hybrid_unit_boxes", str(path), True))
    assert [[a["id"] for a in r["annotations"]] for r in valid_view] == [[1], [3], [5]]

    # Sec. 1 statistics: box areas 10000, 900, 6000, 1600, 1600 (small: < 4096)
    stats = pseudo_mask_validity(str(path))
    assert stats["invalid %"] == pytest.approx(40.0)
    assert stats["invalid among small boxes (< 64x64) %"] == pytest.approx(200 / 3)
    assert stats["invalid among large boxes (>= 64x64) %"] == 0.0
    assert stats["small among invalid %"] == 100.0
    assert stats == validity_statistics(
        [True, False, True, False, True], [1e4, 900, 6e3, 1600, 1600]
    )


def _inst(rows, size=(H, W)):
    """Instances from rows (box, score, class, mask square or area-defining box)."""
    inst = Instances(size)
    inst.pred_boxes = Boxes(torch.tensor([r[0] for r in rows], dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor([r[1] for r in rows], dtype=torch.float32)
    inst.pred_classes = torch.tensor([r[2] for r in rows], dtype=torch.int64)
    inst.pred_masks = torch.from_numpy(
        np.stack([_square(*r[3]) for r in rows]) if rows else np.zeros((0, *size), bool)
    )
    return inst


def test_fusion_rule_on_hand_built_detections():
    large = _inst(
        [
            ((0, 0, 100, 100), 0.9, 0, (0, 0, 80, 80)),  # L0: 6400 px, large -> kept
            ((10, 10, 20, 20), 0.6, 0, (10, 10, 20, 20)),  # L1: small, loses NMS to S0
            ((50, 50, 60, 60), 0.3, 0, (50, 50, 60, 60)),  # L2: small, kept (S3 other class)
            ((100, 100, 164, 164), 0.2, 0, (100, 100, 164, 164)),  # L3: 64x64 = 4096, large
        ]
    )
    small = _inst(
        [
            ((11, 10, 21, 20), 0.8, 0, (11, 10, 21, 20)),  # S0: small, wins over L1 (IoU .82)
            ((0, 0, 100, 100), 0.95, 0, (0, 0, 70, 70)),  # S1: 4900 px, large -> dropped
            ((30, 30, 40, 40), 0.5, 1, (30, 30, 40, 40)),  # S2: small, no overlap -> kept
            ((50, 50, 60, 60), 0.4, 1, (50, 50, 60, 60)),  # S3: same box as L2, other class
            ((31, 30, 41, 40), 0.1, 1, (31, 30, 41, 40)),  # S4: loses NMS to S2 (same branch)
        ]
    )
    fused = fuse_detections(large, small, small_area=64 * 64, nms_thresh=0.5, max_detections=100)
    assert fused.scores.tolist() == pytest.approx([0.9, 0.8, 0.5, 0.4, 0.3, 0.2])
    assert fused.pred_boxes.tensor[:, 0].tolist() == [0, 11, 30, 50, 50, 100]
    assert fused.pred_classes.tolist() == [0, 0, 1, 1, 0, 0]
    # a lower NMS threshold changes nothing here (no other pair overlaps); a cap keeps the best
    capped = fuse_detections(large, small, 64 * 64, 0.5, max_detections=2)
    assert capped.scores.tolist() == pytest.approx([0.9, 0.8])
    # everything small: the large branch's big output moves to the NMS pool, S1 comes back
    all_small = fuse_detections(large, small, small_area=10**6, nms_thresh=0.5, max_detections=100)
    assert all_small.scores.tolist() == pytest.approx([0.95, 0.8, 0.5, 0.4, 0.3, 0.2])
    # empty branches
    none = _inst([])
    assert len(fuse_detections(none, none, 4096, 0.5, 100)) == 0
    assert fuse_detections(large, none, 4096, 0.5, 100).scores.tolist() == pytest.approx(
        [0.9, 0.6, 0.3, 0.2]
    )


def test_segment_detections_grabcut_or_ellipse_on_real_images():
    """Each detected box gets the engine's GrabCut mask when it is valid w.r.t. the box, else
    the inscribed ellipse; rank k seeds GrabCut."""
    import cv2

    records, _ = pennfudan_records(3)
    n_grabcut = n_ellipse = 0
    for r in records:
        image = cv2.imread(r["file_name"])
        boxes = [a["bbox"] for a in r["annotations"]]
        x0, y0, x1, y1 = boxes[0]  # a shifted box over half background, and a tiny one
        boxes += [[x1 - 10, y0, x1 + (x1 - x0) * 0.6, y1], [5, 5, 14, 12]]
        h, w = image.shape[:2]  # detections are clipped to the image, as Detectron2's
        boxes = np.clip(np.array(boxes, dtype=np.float64), 0, [w, h, w, h])
        masks = segment_detections(image, boxes, 0.5)
        assert masks.shape == (len(boxes), *image.shape[:2]) and masks.dtype == bool
        # the detections segmented by 3 threads (evaluation): the same masks
        assert np.array_equal(segment_detections(image, boxes, 0.5, threads=3), masks)
        cfg = PseudoMaskConfig()
        for k, (box, mask) in enumerate(zip(boxes, masks)):
            assert not (mask & ~box_mask(box, *image.shape[:2])).any()
            gc = grabcut_crop(image, box, k, cfg)
            if gc is not None and gc.any() and box_agreement(gc, box) >= 0.5:
                assert np.array_equal(mask, gc)
                n_grabcut += 1
            else:
                assert np.array_equal(mask, ellipse_mask(box, *image.shape[:2]))
                n_ellipse += 1
            assert box_agreement(mask, box) >= 0.5
    assert n_grabcut > 0 and n_ellipse > 0
    assert segment_detections(image, np.zeros((0, 4)), 0.5).shape == (0, *image.shape[:2])


def _demo_cfg(path, *opts):
    from weaksup import load_config

    cfg = load_config(str(REPO_ROOT / path), list(opts))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def test_small_branch_and_fused_model_on_a_real_image():
    from detectron2.data import DatasetMapper
    from detectron2.modeling import build_model

    demo = "configs/Hybrid/demo/"
    small_opts = ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "5"]
    cfg = _demo_cfg(demo + "pennfudan_small_faster_rcnn_R18_FPN_GN.yaml", *small_opts)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 160, 256
    torch.manual_seed(0)
    small = build_model(cfg).eval()
    records, _ = pennfudan_records(1)
    x = DatasetMapper(cfg, is_train=False)(records[0])
    with torch.no_grad():
        inst = small([x])[0]["instances"]
    h, w = records[0]["height"], records[0]["width"]
    assert inst.image_size == (h, w) and len(inst) == 5
    assert inst.pred_masks.shape == (5, h, w) and inst.pred_masks.dtype == torch.bool
    for box, mask in zip(inst.pred_boxes.tensor.numpy(), inst.pred_masks.numpy()):
        assert box_agreement(mask, box) >= 0.5 and not (mask & ~box_mask(box, h, w)).any()

    with pytest.raises(ValueError, match="MASK_ON False"):
        build_model(
            _demo_cfg(demo + "pennfudan_small_faster_rcnn_R18_FPN_GN.yaml", "MODEL.MASK_ON", "True")
        )

    fused_cfg = _demo_cfg(
        "configs/Hybrid/demo_pennfudan_R18_FPN_GN.yaml",
        "WEAKSUP.HYBRID.SMALL_OPTS", repr(small_opts),
        "WEAKSUP.HYBRID.LARGE_OPTS", repr(["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]),
        "MODEL.HYBRID.SMALL_AREA", "20000",
    )  # fmt: skip
    fused = build_model(fused_cfg).eval()
    assert fused.small.__class__.__name__ == "HybridSmallBranch"
    assert fused.large.backbone.__class__.__name__ == "EnhancedFPN"
    with torch.no_grad():
        out = fused([x])[0]["instances"]
        a, b = fused.large([x])[0]["instances"], fused.small([x])[0]["instances"]
    expected = fuse_detections(a, b, 20000, 0.5, fused_cfg.TEST.DETECTIONS_PER_IMAGE)
    assert torch.equal(out.pred_boxes.tensor, expected.pred_boxes.tensor)
    big = out.pred_masks.flatten(1).sum(1) >= 20000
    large_boxes = {tuple(t.tolist()) for t in a.pred_boxes.tensor}
    assert all(tuple(t.tolist()) in large_boxes for t in out.pred_boxes.tensor[big])
    fused.train()
    with pytest.raises(RuntimeError, match="only fuses trained branches"):
        fused([x])


def test_fused_config_reads_images_as_its_branches_take_them():
    """The Lite0 branches take RGB; a fused config reading BGR would feed them swapped channels."""
    from detectron2.modeling import build_model

    cfg = _demo_cfg("configs/Hybrid/demo_pennfudan_Lite0_FPN.yaml", "INPUT.FORMAT", "BGR")
    with pytest.raises(ValueError, match="large branch .* takes INPUT.FORMAT RGB .* as BGR"):
        build_model(cfg)


def test_ablation_table_format():
    res = {
        "fused": {
            "segm": {"AP": 25.2, "APs": 8.52, "APl": -1.0},
            "voc_instance": {"mAP@0.5": 51.3},
        },
        "baseline": {"segm": {"AP": float("nan")}},
    }
    lines = format_ablation_table(res, "voc").splitlines()
    assert lines[0] == "Hybrid ablation on voc"
    assert "mAP^r_0.5" in lines[1] and "AP_L" in lines[1]
    assert lines[3].startswith("| baseline") and lines[3].count("| -") == 6
    cells = [c.strip() for c in lines[4].split("|")[2:-1]]
    assert lines[4].startswith("| fused") and cells == ["51.30", "-", "-", "25.20", "8.52", "-"]
    # the split ablation's rows follow their stage's, named with their split
    res["small [large: all, small: all]"] = {"segm": {"AP": 3.0}}
    res["fused [large: all, small: all]"] = {"segm": {"AP": 20.0}}
    names = [l.split("|")[1].strip() for l in format_ablation_table(res).splitlines()[2:]]
    assert names == [
        "baseline (Mask R-CNN, all GrabCut masks)",
        "small branch (Faster R-CNN + GrabCut) [large: all, small: all]",
        "fused (ours)",
        "fused (ours) [large: all, small: all]",
    ]


def test_paper_config_trains_the_branches_on_the_papers_split():
    """Sec. 2: the large branch on the valid-mask instances, the small one on the invalid."""
    cfg = _demo_cfg("configs/Hybrid/voc_pipeline_R50_FPN.yaml")
    assert (cfg.WEAKSUP.HYBRID.LARGE_TRAIN_INSTANCES, cfg.WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES) == (
        "valid",
        "invalid",
    )
    demo = _demo_cfg("configs/Hybrid/demo_pennfudan_R18_FPN_GN.yaml").WEAKSUP.HYBRID
    assert (demo.LARGE_TRAIN_INSTANCES, demo.SMALL_TRAIN_INSTANCES, demo.SPLIT_ABLATION) == (
        "valid",
        "invalid",
        True,
    )


def test_failed_grabcut_is_an_invalid_mask(tmp_path):
    """Crop GrabCut returns an empty mask for a pedestrian of FudanPed00005; the ellipse replaces
    it (box agreement 1.0), and the mask is invalid (Sec. 1): it joins the invalid view and the
    statistics, not the large branch's mask loss."""
    from weaksup.engine.pseudo_masks import generate_pseudo_masks

    records, _ = pennfudan_records(5)
    register_dataset("hybrid_unit_failed", records[4:], ["person"])
    out = str(tmp_path / "pseudo.json")
    generate_pseudo_masks("hybrid_unit_failed", out, "grabcut", PseudoMaskConfig(), progress=False)
    anns = {a["id"]: a for a in json.load(open(out))["annotations"]}
    failed = [i for i, a in anns.items() if a["fallback"] is not None]
    assert failed and all(anns[i]["fallback"].startswith("ellipse:") for i in failed)
    assert all(anns[i]["box_agreement"] > 0.99 and anns[i]["mask_valid"] is False for i in failed)
    assert all(
        a["mask_valid"] == (a["fallback"] is None and a["box_agreement"] >= 0.5)
        for a in anns.values()
    )
    invalid = DatasetCatalog.get(register_validity_view("hybrid_unit_failed", out, False))
    assert set(failed) <= {a["id"] for rec in invalid for a in rec["annotations"]}
    valid = DatasetCatalog.get(register_validity_view("hybrid_unit_failed", out, True))
    assert not set(failed) & {a["id"] for rec in valid for a in rec["annotations"]}
    n_invalid = sum(not a["mask_valid"] for a in anns.values())
    assert n_invalid >= len(failed)
    assert pseudo_mask_validity(out)["invalid %"] == pytest.approx(100 * n_invalid / len(anns))
