"""tools/eval_pseudo_masks.py: exact numbers on hand-built jsons, errors, real PennFudan output."""

import copy
import importlib.util
import json
import os
import queue
import runpy
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest

from conftest import REPO_ROOT, shared_path

spec = importlib.util.spec_from_file_location(
    "eval_pseudo_masks", REPO_ROOT / "tools" / "eval_pseudo_masks.py"
)
evaluate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluate)


def _rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def _mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _hand_built(tmp_path):
    """4 evaluated instances (+1 crowd) with IoUs 1, 0.5, 0, 0.25 (see the expected numbers)."""
    images = [{"id": 1, "height": 100, "width": 100, "file_name": "a.png"}]
    images.append({"id": 2, "height": 10, "width": 20, "file_name": "b.png"})
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    rows = [  # id, image, category, GT mask, box (xywh), pred mask, pred mask_valid
        (1, 1, 1, _mask(100, 100, 0, 20, 0, 20), [0, 0, 20, 20], _mask(100, 100, 0, 20, 0, 20), 1),
        (
            2,
            1,
            1,
            _mask(100, 100, 50, 90, 50, 90),
            [50, 50, 40, 40],
            _mask(100, 100, 50, 90, 50, 70),
            1,
        ),
        (
            3,
            1,
            1,
            _mask(100, 100, 0, 100, 0, 100),
            [0, 0, 100, 100],
            _mask(100, 100, 0, 0, 0, 0),
            0,
        ),
        (4, 2, 2, _mask(10, 20, 0, 5, 0, 10), [0, 0, 10, 5], _mask(10, 20, 0, 10, 0, 20), 0),
        (5, 2, 2, _mask(10, 20, 0, 10, 0, 20), [0, 0, 20, 10], _mask(10, 20, 0, 1, 0, 1), 1),
    ]
    gt, pred = [], []
    for ann_id, image_id, cat, gt_mask, box, pred_mask, valid in rows:
        ann = {"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": box}
        ann["iscrowd"] = int(ann_id == 5)
        gt.append({**ann, "segmentation": _rle(gt_mask), "area": int(gt_mask.sum())})
        pred.append({**ann, "segmentation": _rle(pred_mask), "mask_valid": bool(valid)})
    gt = {"images": images, "categories": categories, "annotations": gt}
    pred = {"images": images, "categories": categories, "annotations": pred}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    return gt, pred


def test_exact_numbers(tmp_path, capsys):
    _hand_built(tmp_path)
    rows, stats = evaluate.main(
        ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    )
    expected = [  # size, n, mIoU, mIoU* (per-class mean, then mean), IoU@50, IoU@75 (strictly >)
        ["all", 4, 43.75, 37.5, 25.0, 25.0],
        ["small", 2, 62.5, 62.5, 50.0, 50.0],
        ["medium", 1, 50.0, 50.0, 0.0, 0.0],
        ["large", 1, 0.0, 0.0, 0.0, 0.0],
    ]
    for row, want in zip(rows, expected):
        assert row[:2] == want[:2] and np.allclose(row[2:], want[2:])
    assert np.allclose(
        list(stats.values()), [50.0, 100 / 3, 100.0, 50.0, 50.0]
    ), stats  # invalid, among small / large boxes, small among invalid, flagged in the file
    out = capsys.readouterr().out
    assert "| all    |   4 |   43.8 |" in out and "invalid among small boxes (< 64x64) %" in out


def test_mismatched_files(tmp_path):
    gt, pred = _hand_built(tmp_path)
    paths = [str(tmp_path / "gt.json"), str(tmp_path / "bad.json")]
    argv = ["--gt", paths[0], "--pred", paths[1]]
    bad = copy.deepcopy(pred)
    bad["annotations"] = bad["annotations"][1:]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"different annotation ids: 1 missing .*\[1\]"):
        evaluate.main(argv)
    bad = copy.deepcopy(pred)
    bad["annotations"][0]["image_id"] = 2
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(
        ValueError, match=r"disagree .* 1 annotation id\(s\) .*: 1 \(image 2 vs 1\)"
    ):
        evaluate.main(argv)
    bad = copy.deepcopy(pred)  # ids shuffled within image 1: same image, other boxes
    anns = bad["annotations"]
    anns[0]["id"], anns[1]["id"], anns[2]["id"] = 2, 3, 1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"3 annotation id\(s\) .*: 1 \(box \[0, 0, 100, 100\] vs"):
        evaluate.main(argv)
    bad = copy.deepcopy(pred)
    bad["images"][1]["width"] = 21
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="different images or image sizes"):
        evaluate.main(argv)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not a valid json"):
        evaluate.main(argv)


def test_real_pennfudan_box_method(tmp_path):
    """The filled box on PennFudan val: the report equals IoUs computed here from the loader."""
    from weaksup.data.datasets import load_pennfudan
    from weaksup.evaluation.box_mask_quality import paired_mask_iou
    from weaksup.pseudo.geometry import box_mask

    root = shared_path("PennFudanPed")
    prepare = runpy.run_path(str(REPO_ROOT / "datasets" / "prepare_pennfudan.py"))
    prepare["main"](["--root", str(root), "--output-dir", str(tmp_path), "--splits", "val"])
    make = runpy.run_path(str(REPO_ROOT / "tools" / "make_pseudo_masks.py"))
    gt_json, out = tmp_path / "instances_val.json", tmp_path / "box.json"
    make["main"](
        ["--input-json", str(gt_json), "--image-root", str(root / "PNGImages"), "--method", "box"]
        + ["--output", str(out), "--no-progress"]
    )
    rows, stats = evaluate.main(["--gt", str(gt_json), "--pred", str(out)])
    records = load_pennfudan(str(root), "val")
    anns = [(r, a) for r in records for a in r["annotations"]]
    gts = [mask_util.decode(a["segmentation"]).astype(bool) for _, a in anns]
    boxes = [box_mask(a["bbox"], r["height"], r["width"]) for r, a in anns]
    ious = paired_mask_iou(boxes, gts)
    assert rows[0][1] == len(anns) == 111
    assert np.isclose(rows[0][2], ious.mean() * 100) and np.isclose(rows[0][3], ious.mean() * 100)
    assert np.isclose(rows[0][4], (ious > 0.5).mean() * 100)
    assert stats["invalid %"] == 0.0  # a filled box always agrees with its box


def test_benchmark_reproduced_by_the_tool_and_eval(tmp_path):
    """Acceptance check 1 in small: benchmarks/pseudo_masks.py's figures for GrabCut on four
    PennFudan images equal eval_pseudo_masks.py's on make_pseudo_masks.py's json for the same
    images (same boxes, seeds by annotation id, one metric implementation)."""
    from weaksup.data.datasets import load_pennfudan
    from weaksup.pseudo import PseudoMaskConfig
    from weaksup.pseudo.job import instance_seed

    root = shared_path("PennFudanPed")
    bench = runpy.run_path(str(REPO_ROOT / "benchmarks" / "pseudo_masks.py"))
    coco = runpy.run_path(str(REPO_ROOT / "datasets" / "prepare_pennfudan.py"))["pennfudan_coco"](
        str(root), ["all"]
    )["all"]
    coco["images"] = coco["images"][:4]
    keep = {i["id"] for i in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    make = runpy.run_path(str(REPO_ROOT / "tools" / "make_pseudo_masks.py"))
    make["main"](
        ["--input-json", str(tmp_path / "gt.json"), "--image-root", str(root / "PNGImages")]
        + ["--method", "grabcut", "--output", str(tmp_path / "pred.json"), "--no-progress"]
    )
    rows, _ = evaluate.main(
        ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    )

    names = [i["file_name"] for i in coco["images"]]
    records = {r["file_name"].split("/")[-1]: r for r in load_pennfudan(str(root), "all")}
    images = bench["_from_dicts"]([records[n.split("/")[-1]] for n in names])
    seeds = [instance_seed(a["id"], 0) for a in coco["annotations"]]  # the tool's, --seed 0
    assert [s for x in images for s in x[4]] == seeds
    # the benchmark's worker body, run here: forking the pytest process can deadlock the child
    results = queue.Queue()
    bench["_run_worker"]("grabcut", images, PseudoMaskConfig(), results)
    ious, _, _, _ = results.get()
    classes = np.concatenate([x[3] for x in images])
    assert rows[0][1] == len(ious) == len(coco["annotations"])
    assert np.allclose(rows[0][2:6], bench["quality"](ious, classes)), (rows[0], ious)


def test_benchmark_worker_scaling_mode():
    """--workers 1,2 prints one row per worker count with the speed-up against 1 worker.

    Run in its own interpreter: the benchmark forks its workers, and forking this test process
    (threads of torch and of earlier tests alive) can deadlock the child."""
    shared_path("grabcut13")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "pseudo_masks.py")]
        + ["--workers", "1,2", "--methods", "ellipse", "--datasets", "grabcut13"]
        + ["--max-instances", "4"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ellipse")]
    assert [r.split("|")[3].strip() for r in rows] == ["1", "2"]
    assert rows[0].split("|")[5].strip() == "1.00"  # speed-up of 1 worker against itself
