"""tools/make_pseudo_masks.py on real PennFudan images: output format, no ground truth read,
workers / machines / resume give the same bytes, bad input handled."""

import copy
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from conftest import REPO_ROOT, free_port, log_lines, shared_path

TOOL = REPO_ROOT / "tools" / "make_pseudo_masks.py"
spec = importlib.util.spec_from_file_location("make_pseudo_masks", TOOL)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

from weaksup.pseudo import METHODS, PseudoMaskConfig, pseudo_masks_for_image  # noqa: E402
from weaksup.pseudo import job as job_module  # noqa: E402

# methods that look at the pixels (GrabCut, candidates, ...), as registered when the test runs
PIXEL_METHODS = sorted(set(METHODS) - {"box", "ellipse"} - {"grabcut_full"})


def _coco(tmp_path, num_images):
    """The first ``num_images`` PennFudan images (prepare_pennfudan's json), written to tmp_path."""
    import runpy

    pennfudan_coco = runpy.run_path(str(REPO_ROOT / "datasets" / "prepare_pennfudan.py"))[
        "pennfudan_coco"
    ]
    coco = pennfudan_coco(str(shared_path("PennFudanPed")), ["all"])["all"]
    coco["images"] = coco["images"][:num_images]
    ids = {i["id"] for i in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(coco))
    return coco, path


def _run(in_json, out, method, *extra, image_root=None):
    root = image_root or shared_path("PennFudanPed", "PNGImages")
    argv = ["--input-json", str(in_json), "--image-root", str(root), "--method", method]
    tool.main(argv + ["--output", str(out), "--no-progress", *extra])
    return out.read_bytes()


def test_output_format(tmp_path):
    coco, in_json = _coco(tmp_path, 3)
    out = json.loads(_run(in_json, tmp_path / "out.json", "ellipse"))
    assert out["images"] == coco["images"] and out["categories"] == coco["categories"]
    assert [a["id"] for a in out["annotations"]] == [a["id"] for a in coco["annotations"]]
    for ann, gt in zip(out["annotations"], coco["annotations"]):
        assert ann["bbox"] == gt["bbox"] and ann["image_id"] == gt["image_id"]
        assert isinstance(ann["segmentation"]["counts"], str)
        assert ann["area"] == mask_util.area(ann["segmentation"])
        assert ann["pseudo_method"] == "ellipse" and ann["fallback"] is None
        assert isinstance(ann["box_agreement"], float) and ann["mask_valid"] is True
    assert not os.path.exists(str(tmp_path / "out.json") + ".work")  # shards cleaned up


@pytest.mark.parametrize("method", sorted(METHODS))
def test_ground_truth_never_read(tmp_path, method):
    coco, in_json = _coco(tmp_path, 1 if method == "grabcut_full" else 2)
    expected = _run(in_json, tmp_path / "a.json", method)
    corrupt = copy.deepcopy(coco)
    for ann in corrupt["annotations"]:
        ann["segmentation"] = {"size": [1, 1], "counts": "not an RLE"}
        ann["area"] = -1
    (tmp_path / "corrupt.json").write_text(json.dumps(corrupt))
    assert _run(tmp_path / "corrupt.json", tmp_path / "b.json", method) == expected
    del corrupt["annotations"][0]["segmentation"]
    (tmp_path / "corrupt.json").write_text(json.dumps(corrupt))
    assert _run(tmp_path / "corrupt.json", tmp_path / "c.json", method) == expected


def test_workers_and_seed(tmp_path):
    _, in_json = _coco(tmp_path, 4)
    method = PIXEL_METHODS[0] if PIXEL_METHODS else "ellipse"
    one = _run(in_json, tmp_path / "one.json", method, "--shard-size", "3")
    two = _run(in_json, tmp_path / "two.json", method, "--num-workers", "2", "--shard-size", "1")
    assert one == two


def test_two_machines_same_output(tmp_path):
    _, in_json = _coco(tmp_path, 5)
    expected = _run(in_json, tmp_path / "single.json", "ellipse", "--shard-size", "1")
    url = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "multi.json"
    cmd = [sys.executable, str(TOOL), "--input-json", str(in_json), "--method", "ellipse"]
    cmd += ["--image-root", str(shared_path("PennFudanPed", "PNGImages")), "--output", str(out)]
    cmd += ["--shard-size", "1", "--no-progress", "--num-machines", "2", "--dist-url", url]
    procs = [
        subprocess.Popen(
            cmd + ["--machine-rank", str(r)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "(3 on rank 0)" in logs[0]  # shards 0, 2, 4; rank 1 (no console log) has 1 and 3
    assert out.read_bytes() == expected


KILL_AFTER_2_SHARDS = """
import os, runpy, sys
import weaksup.pseudo.job as job
write, shards = job.write_json_atomic, []
def write_then_die(obj, path):
    write(obj, path)
    if os.path.basename(path).startswith("shard_"):
        shards.append(path)
        if len(shards) == 2:
            os._exit(9)  # as a kill: no cleanup, no final file
job.write_json_atomic = write_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_resume_after_kill(tmp_path, monkeypatch):
    _, in_json = _coco(tmp_path, 7)
    args = ("--shard-size", "2")
    expected = _run(in_json, tmp_path / "full.json", "ellipse", *args)
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-c", KILL_AFTER_2_SHARDS, str(TOOL), "--input-json", str(in_json)]
    cmd += ["--image-root", str(shared_path("PennFudanPed", "PNGImages")), "--output", str(out)]
    cmd += ["--method", "ellipse", "--no-progress", *args]
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr
    work = tmp_path / "out.json.work"
    assert not out.exists()
    assert sorted(os.listdir(work)) == ["job.json", "shard_000000.json", "shard_000001.json"]

    computed, written = [], []
    process, write = job_module.process_image, job_module.write_json_atomic
    monkeypatch.setattr(
        job_module,
        "process_image",
        lambda task, *a: computed.append(task.image_id) or process(task, *a),
    )
    monkeypatch.setattr(
        job_module, "write_json_atomic", lambda obj, path: written.append(path) or write(obj, path)
    )
    assert _run(in_json, out, "ellipse", *args, "--resume") == expected
    assert computed == [4, 5, 6]  # images 0-3 (shards 0, 1) were not recomputed
    assert [os.path.basename(p) for p in written if "shard_" in p] == [
        "shard_000002.json",
        "shard_000003.json",
    ]
    assert not work.exists()


def test_resume_other_job_refused(tmp_path):
    _, in_json = _coco(tmp_path, 2)
    out = tmp_path / "out.json"
    work = tmp_path / "out.json.work"
    job_module.PseudoMaskJob([], "box", PseudoMaskConfig(), 0, str(work)).prepare([], False)
    with pytest.raises(ValueError, match="another job"):
        _run(in_json, out, "ellipse", "--resume")


def test_missing_and_corrupt_images(tmp_path):
    coco, _ = _coco(tmp_path, 2)
    root = tmp_path / "images"
    root.mkdir()
    src = shared_path("PennFudanPed", "PNGImages")
    (root / coco["images"][0]["file_name"]).write_bytes(
        (src / coco["images"][0]["file_name"]).read_bytes()
    )
    (tmp_path / "in.json").write_text(json.dumps(coco))
    name = coco["images"][1]["file_name"]
    with pytest.raises(FileNotFoundError, match=rf"{name}.*image_id={coco['images'][1]['id']}"):
        _run(tmp_path / "in.json", tmp_path / "out.json", "ellipse", image_root=root)
    (root / name).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ValueError, match=rf"{name}.*image_id={coco['images'][1]['id']}.*corrupt"):
        _run(tmp_path / "in.json", tmp_path / "out.json", "ellipse", image_root=root)


def test_bad_boxes_clipped_or_dropped_with_warning(tmp_path):
    coco, _ = _coco(tmp_path, 1)
    image = coco["images"][0]
    w, h = image["width"], image["height"]
    base = coco["annotations"][0]
    boxes = {
        901: [w - 50, h - 60, 100, 100],  # partly outside: clipped
        902: [10, 10, 0, 30],  # zero area: dropped
        903: [w + 5, 10, 20, 20],  # outside: dropped
    }
    for ann_id, bbox in boxes.items():
        coco["annotations"].append({**base, "id": ann_id, "bbox": bbox})
    (tmp_path / "in.json").write_text(json.dumps(coco))
    with log_lines("weaksup.data.datasets.sanitize") as messages:
        out = json.loads(_run(tmp_path / "in.json", tmp_path / "out.json", "box"))
    assert any("dropped 2 invalid box(es), clipped 1 box(es)" in m for m in messages)
    anns = {a["id"]: a for a in out["annotations"]}
    clipped = mask_util.decode(anns[901]["segmentation"]).astype(bool)
    expected = np.zeros((h, w), bool)
    expected[h - 60 :, w - 50 :] = True
    assert np.array_equal(clipped, expected) and anns[901]["box_agreement"] == 1.0
    assert anns[901]["bbox"] == boxes[901]  # the input box is kept as it was
    for ann_id in (902, 903):
        assert mask_util.area(anns[ann_id]["segmentation"]) == 0
        assert anns[ann_id]["mask_valid"] is False and anns[ann_id]["fallback"] == "empty_box"


def test_image_with_200_boxes(tmp_path):
    coco, _ = _coco(tmp_path, 1)
    image = coco["images"][0]
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [image["width"] - 40, image["height"] - 40], size=(200, 2))
    wh = rng.uniform(4, 40, size=(200, 2))
    base = coco["annotations"][0]
    coco["annotations"] = [
        {**base, "id": i + 1, "bbox": [*p, *s]}
        for i, (p, s) in enumerate(zip(xy.tolist(), wh.tolist()))
    ]
    (tmp_path / "in.json").write_text(json.dumps(coco))
    out = json.loads(_run(tmp_path / "in.json", tmp_path / "out.json", "ellipse"))
    assert len(out["annotations"]) == 200
    for ann in out["annotations"]:
        x, y, bw, bh = ann["bbox"]
        mask = mask_util.decode(ann["segmentation"]).astype(bool)
        ys, xs = np.nonzero(mask)
        assert xs.min() >= np.floor(x) and xs.max() < np.ceil(x + bw) and ann["mask_valid"]
        assert ys.min() >= np.floor(y) and ys.max() < np.ceil(y + bh)


@pytest.mark.skipif(not PIXEL_METHODS, reason="no pixel-based pseudo-mask method registered")
def test_grayscale_and_rgba_images(tmp_path):
    coco, _ = _coco(tmp_path, 1)
    method = PIXEL_METHODS[0]
    image = coco["images"][0]
    bgr = cv2.imread(str(shared_path("PennFudanPed", "PNGImages", image["file_name"])))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    root = tmp_path / "images"
    root.mkdir()
    anns = coco["annotations"]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
    seeds = [job_module.instance_seed(a["id"], 0) for a in anns]

    def masks(file_image, reference_bgr):
        cv2.imwrite(str(root / image["file_name"]), file_image)
        out = json.loads(_run(tmp_path / "in.json", tmp_path / "out.json", method, image_root=root))
        expected = pseudo_masks_for_image(reference_bgr, boxes, method, seeds, PseudoMaskConfig())
        for ann, pm in zip(out["annotations"], expected):
            assert np.array_equal(mask_util.decode(ann["segmentation"]).astype(bool), pm.mask)

    (tmp_path / "in.json").write_text(json.dumps(coco))
    masks(gray, np.repeat(gray[:, :, None], 3, axis=2))  # 1-channel PNG: gray replicated
    alpha = np.full(gray.shape, 77, np.uint8)
    masks(np.dstack([bgr, alpha]), bgr)  # 4-channel PNG: alpha ignored


def test_visualize(tmp_path):
    coco, in_json = _coco(tmp_path, 5)
    vis = tmp_path / "vis"
    _run(in_json, tmp_path / "out.json", "ellipse", "--visualize", str(vis), "--num-visualize", "3")
    files = sorted(os.listdir(vis))
    assert len(files) == 3 and all(f.endswith(".png") for f in files)
    overlay = cv2.imread(str(vis / files[0]))
    first = coco["images"][0]
    assert overlay.shape == (first["height"], first["width"], 3)
