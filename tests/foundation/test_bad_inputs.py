"""Bad input to the pseudo-mask tool, training and the evaluation tools: each case either stops
with a message naming the file and the record, or is handled correctly; never a silent wrong
result. Inputs are small copies of real images (nuts_coco JPEGs, PennFudan PNGs) in tmp_path."""

import copy
import importlib.util
import json
import os
import re
import shutil

import cv2
import numpy as np
import pytest
import torch
from pathlib import Path

from weaksup.utils.config_file import merge_config_file
from conftest import REPO_ROOT, shared_path, source_lines_matching, untrained_checkpoint


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


# ------------------------------------------------------------------------------------------------
# masks (RLE)


def _pseudo_output(tmp_path, method="box"):
    """GT json (nuts_coco, 2 images) and the tool's pseudo-mask json made from it."""
    coco, root = _nuts(tmp_path)
    return coco, json.loads(_pseudo(tmp_path, root, method).read_text())


def _evaluate(gt, pred, tmp_path):
    gt_path = _write_json(tmp_path / "gt.json", gt)
    pred_path = _write_json(tmp_path / "pred.json", pred)
    return eval_pseudo_masks.main(["--gt", str(gt_path), "--pred", str(pred_path)])


def _wrong_size_rles(ann, height, width):
    """Masks of the right declared size whose counts cover fewer / more pixels, and one RLE of
    another size."""
    n = height * width
    yield {"size": [height, width], "counts": [n // 2, 10]}  # uncompressed, short
    yield {"size": [height, width], "counts": [n // 2, n]}  # uncompressed, long
    yield {"size": [height, width], "counts": "W14"}  # compressed, short
    yield {"size": [height + 1, width], "counts": ann["segmentation"]["counts"]}


def _with_wrong_rles(tmp_path):
    """GT json, and (annotation id, pseudo-mask json with that annotation's RLE broken) for each
    case of :func:`_wrong_size_rles`."""
    coco, pred = _pseudo_output(tmp_path)
    ann = pred["annotations"][3]
    image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
    cases = []
    for rle in _wrong_size_rles(ann, image["height"], image["width"]):
        bad = copy.deepcopy(pred)
        bad["annotations"][3]["segmentation"] = rle
        cases.append((ann["id"], bad))
    return coco, cases


def test_eval_tool_wrong_size_rle(tmp_path):
    coco, cases = _with_wrong_rles(tmp_path)
    for ann_id, bad in cases:
        with pytest.raises(ValueError, match=rf"pred\.json: annotation id {ann_id}: .*RLE"):
            _evaluate(coco, bad, tmp_path)


def test_training_loader_wrong_size_rle(tmp_path):
    """A wrong RLE in a training / evaluation json is refused at load time, named."""
    from weaksup.data.datasets import load_coco_json

    _, cases = _with_wrong_rles(tmp_path)
    for ann_id, bad in cases:
        path = _write_json(tmp_path / "train.json", bad)
        with pytest.raises(ValueError, match=rf"train\.json: .*\(id {ann_id}\): RLE"):
            load_coco_json(str(path), str(tmp_path / "images"))


def test_pseudo_json_mask_source_wrong_size_rle(tmp_path):
    from weaksup.data.mask_sources import PseudoJsonMaskSource

    coco, pred = _pseudo_output(tmp_path)
    ann = pred["annotations"][3]
    pred["annotations"][3]["segmentation"]["size"][0] += 1
    path = _write_json(tmp_path / "pseudo.json", pred)
    with pytest.raises(ValueError, match=rf"pseudo\.json: image 0 annotation id {ann['id']}"):
        PseudoJsonMaskSource(str(path))


# ------------------------------------------------------------------------------------------------
# boxes, classes and ids


def _pennfudan_copy(tmp_path, names=("FudanPed00001", "FudanPed00002")):
    """A PennFudanPed folder with copies of ``names`` (text, PNG, mask)."""
    src = shared_path("PennFudanPed")
    root = tmp_path / "PennFudanPed"
    for name in names:
        for sub, suffix in (
            ("Annotation", ".txt"),
            ("PNGImages", ".png"),
            ("PedMasks", "_mask.png"),
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(src / sub / f"{name}{suffix}", root / sub / f"{name}{suffix}")
    return root


def test_pennfudan_malformed_box_line(tmp_path):
    from weaksup.data.datasets import load_pennfudan

    root = _pennfudan_copy(tmp_path)
    txt = root / "Annotation" / "FudanPed00001.txt"
    txt.write_text(txt.read_text().replace("(160, 182) - (302, 431)", "(160, 182) - (302 431)"))
    with pytest.raises(ValueError, match=r"FudanPed00001\.txt:11: malformed bounding box line"):
        load_pennfudan(str(root), "all")


def test_pennfudan_box_count_checked(tmp_path):
    from weaksup.data.datasets import load_pennfudan

    root = _pennfudan_copy(tmp_path)
    txt = root / "Annotation" / "FudanPed00001.txt"
    lines = [l for l in txt.read_text().splitlines(True) if "for object 2" not in l]
    txt.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"FudanPed00001\.txt: .*ground truth : 2' but 1 bounding"):
        load_pennfudan(str(root), "all")


def test_pennfudan_missing_png(tmp_path):
    """prepare_pennfudan (and training) stop instead of listing an image that is not there."""
    import runpy

    root = _pennfudan_copy(tmp_path)
    (root / "PNGImages" / "FudanPed00002.png").unlink()
    prepare = runpy.run_path(str(REPO_ROOT / "datasets" / "prepare_pennfudan.py"))["main"]
    with pytest.raises(FileNotFoundError, match=r"FudanPed00002\.txt: its image .*00002\.png"):
        prepare(["--root", str(root), "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def _boxes_json(tmp_path, boxes):
    """in.json: nuts image 0 with its first annotation repeated with each of ``boxes``."""
    coco, root = _nuts(tmp_path, 1)
    base = coco["annotations"][0]
    coco["annotations"] = [base] + [
        {**base, "id": 900 + k, "bbox": box} for k, box in enumerate(boxes)
    ]
    _write_json(tmp_path / "in.json", coco)
    return coco, root


def test_nan_boxes_dropped_with_warning(tmp_path, caplog):
    """NaN / inf boxes are dropped with the counted warning (comparisons with NaN are False)."""
    import logging

    from weaksup.data.datasets import load_coco_json

    nan, inf = float("nan"), float("inf")
    coco, root = _boxes_json(tmp_path, [[nan, 10, 50, 50], [10, 10, inf, 50]])
    with caplog.at_level(logging.WARNING, logger="weaksup.data.datasets.sanitize"):
        (record,) = load_coco_json(str(tmp_path / "in.json"), str(root))
    assert [a["id"] for a in record["annotations"]] == [coco["annotations"][0]["id"]]
    (message,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "in.json: dropped 2 invalid box(es)" in message and "not finite [nan, 10" in message
    out = json.loads(_pseudo(tmp_path, root, "box").read_text())
    dropped = [a for a in out["annotations"] if a["id"] >= 900]
    assert [(a["mask_valid"], a["fallback"], a["area"]) for a in dropped] == [
        (False, "empty_box", 0)
    ] * 2


def test_pseudo_tool_unknown_category(tmp_path):
    coco, root = _nuts(tmp_path)
    coco["annotations"][2]["category_id"] = 7
    _write_json(tmp_path / "in.json", coco)
    ann = coco["annotations"][2]
    with pytest.raises(
        ValueError,
        match=rf"in\.json: image {ann['image_id']} annotation id {ann['id']}: unknown "
        r"class 7 \(known: 1, 2, 3\)",
    ):
        _pseudo(tmp_path, root)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("box", ["10,10,50,50", ["10", "10", "50", "50"], [10, 10, 50], None])
def test_string_and_malformed_boxes_named(tmp_path, box):
    from weaksup.data.datasets import load_coco_json

    coco, root = _boxes_json(tmp_path, [box])
    problem = r"in\.json: image 0 annotation id 900: box .* is not a list of 4 numbers"
    with pytest.raises(ValueError, match=problem):
        load_coco_json(str(tmp_path / "in.json"), str(root))
    with pytest.raises(ValueError, match=problem):
        _pseudo(tmp_path, root)


# ------------------------------------------------------------------------------------------------
# configs: names checked before any work


def _demo_cfg(*opts):
    from detectron2.config import get_cfg

    from weaksup import add_weaksup_config

    cfg = add_weaksup_config(get_cfg())
    merge_config_file(
        cfg,
        str(
            REPO_ROOT
            / "configs"
            / "PseudoMasks"
            / "demo"
            / "pennfudan_box_mask_rcnn_R18_FPN_GN.yaml"
        ),
    )
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "0", *opts])
    return cfg


@pytest.mark.parametrize(
    "opts,problem",
    [
        (
            ["WEAKSUP.EVALUATORS", "['coco', 'cocoo']"],
            r"EVALUATORS: unknown evaluator 'cocoo'; did you mean 'coco'",
        ),
        (
            ["DATASETS.TEST", "('pennfudan_vall',)"],
            r"DATASETS.TEST: unknown dataset 'pennfudan_vall'; did you mean 'pennfudan_val'",
        ),
        (["WEAKSUP.TEST_MAPPER", "DatasetMaper"], r"TEST_MAPPER: unknown mapper 'DatasetMaper'"),
        (
            ["WEAKSUP.HOOKS", "['LossCurves']"],
            r"HOOKS: unknown hook 'LossCurves'; did you mean 'LossCurve'",
        ),
    ],
)
def test_training_unknown_names_before_any_work(tmp_path, monkeypatch, opts, problem):
    """Evaluators and test datasets are first used at the final evaluation: checked at start."""
    from weaksup.engine import WeaksupTrainer

    cfg = _demo_cfg("OUTPUT_DIR", str(tmp_path / "run"), *opts)
    built = []
    monkeypatch.setattr(WeaksupTrainer, "build_model", classmethod(lambda cls, c: built.append(1)))
    with pytest.raises(ValueError, match=problem):
        WeaksupTrainer(cfg)
    assert not built  # nothing was built, nothing trained


# ------------------------------------------------------------------------------------------------
# json files


@pytest.mark.parametrize(
    "content,problem",
    [
        ("", "empty"),
        ("{", "not a valid json"),
        ("42", "not a COCO json: a json int, not an object"),
        ('["images"]', "not a COCO json: a json list"),
        ('{"images": [], "annotations": {}}', "no 'annotations' list"),
    ],
)
def test_bad_json_named_by_every_tool(tmp_path, content, problem):
    from weaksup.data.datasets import load_coco_json

    coco, root = _nuts(tmp_path, 1)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    good = tmp_path / "in.json"
    match = rf"bad\.json.*{re.escape(problem)}|{re.escape(problem)}.*bad\.json"
    with pytest.raises(ValueError, match=match):
        _pseudo(tmp_path, root, in_json=bad)
    with pytest.raises(ValueError, match=match):
        eval_pseudo_masks.main(["--gt", str(good), "--pred", str(bad)])
    with pytest.raises(ValueError, match=match):
        eval_pseudo_masks.main(["--gt", str(bad), "--pred", str(good)])
    with pytest.raises(ValueError, match=match):
        load_coco_json(str(bad), str(root))
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("what", ["image", "annotation"])
def test_duplicate_ids_named_by_every_tool(tmp_path, what):
    from weaksup.data.datasets import load_coco_json

    coco, root = _nuts(tmp_path)
    if what == "image":  # pycocotools alone keeps one of the two images without a word
        coco["images"][1]["id"] = coco["images"][0]["id"]
        problem = r"image id 0 twice \('0\.jpg', '1\.jpg'\)"
    else:
        coco["annotations"][5]["id"] = coco["annotations"][4]["id"]
        problem = rf"annotation id {coco['annotations'][4]['id']} twice"
    path = _write_json(tmp_path / "dup.json", coco)
    with pytest.raises(ValueError, match=rf"dup\.json: {problem}"):
        _pseudo(tmp_path, root, in_json=path)
    with pytest.raises(ValueError, match=rf"dup\.json: {problem}"):
        eval_pseudo_masks.main(["--gt", str(tmp_path / "in.json"), "--pred", str(path)])
    with pytest.raises(ValueError, match=rf"dup\.json: {problem}"):
        load_coco_json(str(path), str(root))


# ------------------------------------------------------------------------------------------------
# outputs that cannot be written: refused before the work


@pytest.mark.parametrize("kind", ["empty", "folder", "under_a_file"])
def test_pseudo_tool_output_checked_first(tmp_path, monkeypatch, kind):
    coco, root = _nuts(tmp_path, 1)
    (tmp_path / "a_file").write_text("x")
    output = {
        "empty": "",
        "folder": str(tmp_path),
        "under_a_file": str(tmp_path / "a_file" / "o.json"),
    }
    monkeypatch.chdir(tmp_path)
    ran = []
    monkeypatch.setattr(make_pseudo_masks, "load_input", lambda args: ran.append(1))
    with pytest.raises(ValueError, match=r"--output"):
        _pseudo(tmp_path, root, output=output[kind])
    assert not ran and not list(tmp_path.glob("*.work")) and not (tmp_path / ".work").exists()


def test_pseudo_tool_visualize_dir_checked_first(tmp_path, monkeypatch):
    coco, root = _nuts(tmp_path, 1)
    (tmp_path / "a_file").write_text("x")
    ran = []
    monkeypatch.setattr(make_pseudo_masks, "load_input", lambda args: ran.append(1))
    argv = ["--input-json", str(tmp_path / "in.json"), "--image-root", str(root)]
    argv += ["--method", "box", "--output", str(tmp_path / "o.json")]
    with pytest.raises(ValueError, match=r"--visualize .*a_file.* is a file"):
        make_pseudo_masks.main(argv + ["--visualize", str(tmp_path / "a_file" / "vis")])
    assert not ran


# ------------------------------------------------------------------------------------------------
# images in training and evaluation (the mappers of WEAKSUP.TRAIN_MAPPER / TEST_MAPPER)


def _image_cases(tmp_path):
    """(name, file, expected message) of a missing, zero-byte, truncated JPEG and PNG image."""
    coco, root = _nuts(tmp_path, 1)
    jpg = root / coco["images"][0]["file_name"]
    png = tmp_path / "FudanPed00001.png"
    shutil.copy(shared_path("PennFudanPed", "PNGImages", "FudanPed00001.png"), png)
    _truncate(jpg)
    _truncate(png)
    (tmp_path / "empty.jpg").write_bytes(b"")
    return [
        ("missing", tmp_path / "missing.jpg", "No such file"),
        ("empty", tmp_path / "empty.jpg", "cannot identify image file"),
        ("truncated_jpeg", jpg, "truncated"),
        ("truncated_png", png, "truncated"),
    ]


@pytest.mark.parametrize("is_train", [True, False])
def test_training_and_evaluation_images_named(tmp_path, is_train):
    from weaksup.data import build_mapper

    cfg = _demo_cfg()
    mapper = build_mapper(cfg, is_train)
    for name, path, problem in _image_cases(tmp_path):
        record = {"file_name": str(path), "image_id": 41, "height": 600, "width": 800}
        record["annotations"] = [{"bbox": [10, 10, 50, 50], "bbox_mode": 0, "category_id": 0}]
        with pytest.raises(
            RuntimeError, match=rf"{re.escape(path.name)}' \(image_id=41\): .*{problem}"
        ):
            mapper(record)


# ------------------------------------------------------------------------------------------------
# the rest of the matrix: each tool on each kind of bad input


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated_jpeg"])
def test_pseudo_tool_bad_jpeg_images(tmp_path, kind):
    coco, root = _nuts(tmp_path)
    path = root / "1.jpg"
    if kind == "missing":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        _truncate(path, 0.95)
    error = FileNotFoundError if kind == "missing" else ValueError
    problem = {"missing": "file not found", "empty": "empty file", "truncated_jpeg": "truncated"}[
        kind
    ]
    with pytest.raises(error, match=rf"1\.jpg' \(image_id=1\): {problem}"):
        _pseudo(tmp_path, root)
    assert not (tmp_path / "out.json").exists()


def test_pseudo_tool_truncated_png(tmp_path):
    root = _pennfudan_copy(tmp_path, ["FudanPed00001"])
    coco = {
        "images": [{"id": 5, "file_name": "FudanPed00001.png", "height": 536, "width": 559}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 1, "bbox": [159, 181, 143, 250], "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    _write_json(tmp_path / "in.json", coco)
    _truncate(root / "PNGImages" / "FudanPed00001.png")
    with pytest.raises(ValueError, match=r"FudanPed00001\.png' \(image_id=5\): truncated"):
        _pseudo(tmp_path, root / "PNGImages")


def test_pseudo_tool_negative_boxes(tmp_path):
    """Negative coordinates are clipped, a negative width drops the box (empty, invalid mask)."""
    coco, root = _boxes_json(tmp_path, [[-20, -30, 70, 80], [100, 100, -5, 20]])
    out = json.loads(_pseudo(tmp_path, root, "box").read_text())
    clipped, dropped = [a for a in out["annotations"] if a["id"] >= 900]
    assert clipped["area"] == 50 * 50 and clipped["mask_valid"]
    assert (dropped["area"], dropped["mask_valid"], dropped["fallback"]) == (0, False, "empty_box")


def test_pseudo_tool_ignores_bad_ground_truth_masks(tmp_path):
    """The tool never reads the input's masks: a wrong-size RLE there changes nothing."""
    coco, root = _nuts(tmp_path, 1)
    good = _pseudo(tmp_path, root, "box").read_bytes()
    coco["annotations"][0]["segmentation"] = {"size": [3, 3], "counts": [1, 2]}
    _write_json(tmp_path / "in.json", coco)
    out = json.loads(_pseudo(tmp_path, root, "box").read_bytes())
    assert out["annotations"][1:] == json.loads(good)["annotations"][1:]
    assert (
        out["annotations"][0]["segmentation"] == json.loads(good)["annotations"][0]["segmentation"]
    )


def test_eval_tool_bad_boxes_and_classes(tmp_path):
    coco, pred = _pseudo_output(tmp_path)
    ann_id = coco["annotations"][2]["id"]
    for box, problem in [
        (["1", "2", "3", "4"], "is not a list of 4 numbers"),
        (None, "is not a list of 4 numbers"),
        ([float("nan"), 1, 2, 3], "is not finite"),
    ]:
        gt = copy.deepcopy(coco)
        gt["annotations"][2]["bbox"] = box
        bad = copy.deepcopy(pred)
        bad["annotations"][2]["bbox"] = box
        with pytest.raises(
            ValueError, match=rf"gt\.json: .*annotation id {ann_id}: box .*{problem}"
        ):
            _evaluate(gt, bad, tmp_path)
    gt = copy.deepcopy(coco)
    gt["annotations"][2]["category_id"] = 9
    with pytest.raises(ValueError, match=rf"gt\.json: .*annotation id {ann_id}: unknown class 9"):
        _evaluate(gt, pred, tmp_path)


def test_eval_tool_zero_and_outside_boxes_scored_as_invalid(tmp_path):
    """Boxes the pseudo-mask tool drops (empty mask) count with IoU 0 and as invalid masks."""
    coco, root = _boxes_json(tmp_path, [[10, 10, 0, 30], [5000, 10, 20, 20]])
    for k, ann in enumerate(coco["annotations"][1:]):  # GT masks for the two bad boxes
        ann["segmentation"] = [[100 + k, 100, 140, 100, 140, 140, 100 + k, 140]]
    _write_json(tmp_path / "in.json", coco)
    pred = json.loads(_pseudo(tmp_path, root, "box").read_text())
    rows, stats = _evaluate(coco, pred, tmp_path)
    assert rows[0][1] == 3 and stats["invalid %"] == pytest.approx(200 / 3)


def test_training_output_dir_not_writable(tmp_path):
    """train_net stops at set-up, naming the folder, not after training at the first checkpoint."""
    import argparse
    import runpy

    setup = runpy.run_path(str(REPO_ROOT / "train_net.py"))["setup"]
    (tmp_path / "a_file").write_text("x")
    args = argparse.Namespace(
        config_file=str(
            REPO_ROOT
            / "configs"
            / "PseudoMasks"
            / "demo"
            / "pennfudan_box_mask_rcnn_R18_FPN_GN.yaml"
        ),
        opts=["OUTPUT_DIR", str(tmp_path / "a_file" / "run")],
        eval_only=False,
        resume=False,
        num_gpus=1,
        num_machines=1,
        machine_rank=0,
        dist_url="auto",
    )
    with pytest.raises(OSError, match=r"a_file"):
        setup(args)


# ------------------------------------------------------------------------------------------------
# issue 31: corrupt scan data, predict without trained weights, unreadable predict inputs

predict_tool = _load_tool("predict")
DEMO_CONFIG = (
    REPO_ROOT / "configs" / "PseudoMasks" / "demo" / "pennfudan_box_mask_rcnn_R18_FPN_GN.yaml"
)


def _corrupt_scan(path, num_bytes=4000, seed=0):
    """Randomise ``num_bytes`` of the JPEG's entropy-coded data (2000 bytes into its first scan);
    its structure (markers up to the scan, EOI) stays intact, so cv2 and PIL still decode it."""
    data = bytearray(path.read_bytes())
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big") + 2000
    rng = np.random.default_rng(seed)
    data[start : start + num_bytes] = rng.integers(0, 256, num_bytes, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_pseudo_tool_corrupt_scan_data(tmp_path):
    """Item 4: 4000 random bytes in the scan data of a real JPEG (OpenCV decodes it, printing
    only libjpeg's "Corrupt JPEG data" with no file name): the tool stops, naming the image."""
    coco, root = _nuts(tmp_path)
    _corrupt_scan(root / "1.jpg")
    assert cv2.imread(str(root / "1.jpg")) is not None  # the decoder accepts it
    with pytest.raises(ValueError, match=r"'[^']*1\.jpg' \(image_id=1\): corrupt image data"):
        _pseudo(tmp_path, root)
    assert not (tmp_path / "out.json").exists()


@pytest.fixture(scope="module")
def demo_weights(tmp_path_factory):
    """A complete (untrained) checkpoint of the demo model, and one of its backbone only."""
    folder = tmp_path_factory.mktemp("weights")
    full = untrained_checkpoint(DEMO_CONFIG, folder / "model_final.pth")
    model = torch.load(full, weights_only=True)["model"]
    backbone = {k: v for k, v in model.items() if k.startswith("backbone.")}
    torch.save({"model": backbone}, folder / "backbone.pth")
    return full, str(folder / "backbone.pth")


def _run_predict(tmp_path, weights, *inputs):
    return predict_tool.main(
        ["--config-file", str(DEMO_CONFIG), "--input", *map(str, inputs)]
        + ["--output", str(tmp_path / "pred"), "--no-progress"]
        + ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"]
        + ["INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "224"]
    )


def _pennfudan_pngs(n=2):
    return sorted(shared_path("PennFudanPed", "PNGImages").glob("*.png"))[:n]


def test_predict_refuses_untrained_weights(tmp_path, demo_weights):
    """Item 5: no MODEL.WEIGHTS, or weights without the heads (a run's config.yaml names the
    ImageNet backbone), once predicted with untrained heads (rc 0, 30 detections)."""
    full, backbone = demo_weights
    png = _pennfudan_pngs(1)
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        _run_predict(tmp_path, "", *png)
    with pytest.raises(ValueError, match=re.escape(backbone) + ": not a trained checkpoint"):
        _run_predict(tmp_path, backbone, *png)
    assert not (tmp_path / "pred" / "results.json").exists()
    assert _run_predict(tmp_path, full, *png)["images"] == 1  # a complete checkpoint predicts


export_tool = _load_tool("export_model")


def _export_model(tmp_path, config, *opts):
    args = export_tool.build_parser().parse_args(
        ["--config-file", str(config), "--output", str(tmp_path / "export"), *opts]
    )
    return export_tool.exportable_model(export_tool.setup(args))


def test_export_refuses_untrained_weights(tmp_path, demo_weights):
    """Item 5 for export_model.py: it traced a model with no MODEL.WEIGHTS or with the backbone's
    alone (untrained heads) without a word. A fused Hybrid config exports its large branch from
    the fused checkpoint or MODEL.HYBRID.LARGE_WEIGHTS, checked the same way."""
    from detectron2.modeling import GeneralizedRCNN

    full, backbone = demo_weights
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        _export_model(tmp_path, DEMO_CONFIG, "MODEL.WEIGHTS", "")
    with pytest.raises(ValueError, match=re.escape(backbone) + ": not a trained checkpoint"):
        _export_model(tmp_path, DEMO_CONFIG, "MODEL.WEIGHTS", backbone)
    assert isinstance(_export_model(tmp_path, DEMO_CONFIG, "MODEL.WEIGHTS", full), GeneralizedRCNN)

    hybrid = REPO_ROOT / "configs" / "Hybrid" / "demo_pennfudan_R18_FPN_GN.yaml"
    with pytest.raises(ValueError, match="nothing trained to export"):
        _export_model(tmp_path, hybrid, "MODEL.WEIGHTS", "")
    large_config = (
        REPO_ROOT / "configs/Hybrid/demo/pennfudan_large_mask_rcnn_R18_EnhancedFPN_GN.yaml"
    )
    large = untrained_checkpoint(large_config, tmp_path / "large.pth")
    state = torch.load(large, weights_only=True)["model"]
    torch.save(
        {"model": {k: v for k, v in state.items() if k.startswith("backbone.")}},
        tmp_path / "large_backbone.pth",
    )
    with pytest.raises(ValueError, match="large_backbone.pth: not a trained checkpoint"):
        _export_model(
            tmp_path, hybrid, "MODEL.HYBRID.LARGE_WEIGHTS", str(tmp_path / "large_backbone.pth")
        )
    exported = _export_model(tmp_path, hybrid, "MODEL.HYBRID.LARGE_WEIGHTS", large)
    assert isinstance(exported, GeneralizedRCNN)
    torch.testing.assert_close(exported.state_dict(), state)


def test_predict_unreadable_inputs_named_before_any_prediction(tmp_path, demo_weights):
    """Items 4 and 10: a corrupt-scan JPEG, a text file named .jpg and a video that is no video,
    after good images, are all named before the first prediction (once the good ones were
    predicted, then the job failed without results.json)."""
    good = _pennfudan_pngs(2)
    corrupt = tmp_path / "corrupt.jpg"
    shutil.copy(shared_path("nuts_coco", "data", "images", "1.jpg"), corrupt)
    _corrupt_scan(corrupt)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="3 of 5 inputs cannot be read") as e:
        _run_predict(tmp_path, demo_weights[0], *good, corrupt, text, video)
    for path, problem in [(corrupt, "corrupt image data"), (text, "cannot identify"), (video, "")]:
        assert re.search(re.escape(str(path)) + ": .*" + problem, str(e.value)), str(e.value)
    assert not (tmp_path / "pred" / "overlays").exists() or not os.listdir(
        tmp_path / "pred" / "overlays"
    )


# ------------------------------------------------------------------------------------------------
# issue 31: converters (VIA, labelme), class counts, the eval tool's image sizes


def _via_project(tmp_path, region=None, entry=None):
    """A VIA 2 json of nuts image 0.jpg with one polygon region (``region`` replaces it, ``entry``
    the whole image entry); its path and the image root."""
    root = shared_path("nuts_coco", "data", "images")
    shape = {"name": "polygon", "all_points_x": [10, 60, 10], "all_points_y": [10, 10, 50]}
    good = {"shape_attributes": shape, "region_attributes": {"type": "date"}}
    if entry is None:
        entry = {"filename": "0.jpg", "size": 1, "regions": [good if region is None else region]}
    path = _write_json(tmp_path / "via.json", {"0.jpg1": entry})
    return str(path), str(root)


def _region(shape=None, label="date"):
    shape = shape or {"name": "polygon", "all_points_x": [10, 60, 10], "all_points_y": [10, 10, 50]}
    return {"shape_attributes": shape, "region_attributes": {"type": label}}


@pytest.mark.parametrize(
    "region,problem",
    [
        (  # item 6: cut to the shorter list before
            _region(
                {"name": "polygon", "all_points_x": [10, 60, 10, 5], "all_points_y": [1, 1, 9]}
            ),
            r"bad shape_attributes .*4 all_points_x but 3 all_points_y",
        ),
        (_region(label={"date": False, "fig": False}), r"0 boxes ticked \[\] of a checkbox class"),
        (_region(label={"date": True, "fig": True}), r"2 boxes ticked \['date', 'fig'\]"),
        (_region(label=""), r"empty class name"),  # item 6: a nameless category before
        ("a region", r'"a region" is not a VIA region'),  # item 11: AttributeError before
    ],
)
def test_via_converter_bad_regions_named(tmp_path, region, problem):
    from weaksup.data.datasets.convert import via_to_coco

    path, root = _via_project(tmp_path, region)
    assert via_to_coco(*_via_project(tmp_path / "..", _region()))["annotations"]  # the good one
    with pytest.raises(
        ValueError, match=re.escape(path) + r": image '0\.jpg' region 0: .*" + problem
    ):
        via_to_coco(path, root)


def test_via_converter_entry_not_an_object(tmp_path):
    from weaksup.data.datasets.convert import via_to_coco

    path, root = _via_project(tmp_path, entry="0.jpg")
    with pytest.raises(ValueError, match=re.escape(path) + r": image '0\.jpg1': .*not a VIA image"):
        via_to_coco(path, root)


def _labelme(tmp_path, points, label="date", height=600, width=800):
    """A labelme json of nuts image 0.jpg (copied next to it) with one polygon shape."""
    shutil.copy(shared_path("nuts_coco", "data", "images", "0.jpg"), tmp_path / "0.jpg")
    shape = {"label": label, "shape_type": "polygon", "points": points, "group_id": None}
    return _write_json(
        tmp_path / "0.json",
        {"shapes": [shape], "imagePath": "0.jpg", "imageHeight": height, "imageWidth": width},
    )


@pytest.mark.parametrize(
    "points", [[10, 10, 60, 10, 10, 50], [["10", "10"], ["60", "10"], ["10", "50"]], None, "10,10"]
)
def test_labelme_converter_bad_points_named(tmp_path, points):
    """Item 11: flat, string or null points crashed with a TypeError naming no file."""
    from weaksup.data.datasets.convert import labelme_to_coco

    assert labelme_to_coco(str(_labelme(tmp_path, [[10, 10], [60, 10], [10, 50]]).parent))
    path = _labelme(tmp_path, points)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": shape 0 \('date'\): points"):
        labelme_to_coco(str(tmp_path))


def test_converters_box_outside_and_wrong_image_size(tmp_path):
    """Item 7: a box outside the image and a declared size that is not the file's were converted
    without a word (the loader found them later, far from the file to fix)."""
    from weaksup.data.datasets.convert import labelme_to_coco

    _labelme(tmp_path, [[10, 10], [900, 10], [10, 50]])
    with pytest.raises(ValueError, match=r"0\.jpg' object 0: box .* not inside the 800x600 image"):
        labelme_to_coco(str(tmp_path))
    path = _labelme(tmp_path, [[10, 10], [60, 10], [10, 50]], height=480, width=640)
    with pytest.raises(
        ValueError, match=re.escape(str(path)) + r": image size 640x480 but .*800x600"
    ):
        labelme_to_coco(str(tmp_path))
    _labelme(tmp_path, [[-0.5, 10], [800.5, 10], [10, 50]])  # clicks on the border: clipped
    (ann,) = labelme_to_coco(str(tmp_path))["annotations"]
    assert ann["bbox"] == [0.0, 10.0, 800.0, 40.0]


def test_builtin_dataset_class_count_checked_before_any_work():
    """Item 7: only --register'ed datasets were checked against the model's class count."""
    from weaksup.engine.preflight import check_config_names

    check_config_names(_demo_cfg())  # PennFudan: one class, NUM_CLASSES 1
    with pytest.raises(
        ValueError, match=r"'pennfudan_train_boxonly' has 1 classes \(person\) but MODEL"
    ):
        check_config_names(_demo_cfg("MODEL.ROI_HEADS.NUM_CLASSES", "3"))


def test_eval_tool_names_images_of_another_size(tmp_path):
    """Item 11: "different images or image sizes" named no image."""
    coco, pred = _pseudo_output(tmp_path)
    pred["images"][1]["height"] += 1
    with pytest.raises(ValueError, match=r"image id 1 \('1\.jpg'\): 800x601 vs 800x600"):
        _evaluate(coco, pred, tmp_path)


def test_pseudo_tool_second_job_on_one_output_refused(tmp_path):
    """Item 12: two jobs on one output: the last silently won. Another process holds the output's
    lock (a job running): the tool refuses, naming the output and the holder's pid; once the
    holder is gone (however it ended), the tool runs."""
    import subprocess
    import sys

    coco, root = _nuts(tmp_path)
    out = tmp_path / "out.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom weaksup.utils.file_lock import output_lock\n"
            f"with output_lock({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            RuntimeError, match=re.escape(str(out)) + rf"' .*another job .*pid {holder.pid}"
        ):
            _pseudo(tmp_path, root)
        assert not out.exists()
    finally:
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
    assert json.loads(_pseudo(tmp_path, root).read_text())["annotations"]
    assert not (tmp_path / "out.json.lock").exists()


# ------------------------------------------------------------------------------------------------
# issue 31 item 3: cached stages keyed by the data's content, not the dataset's name

USER_CONFIG = REPO_ROOT / "configs" / "PseudoMasks" / "user_consensus_mask_rcnn_Lite0_FPN.yaml"
TINY_PIPELINE = [
    "MODEL.DEVICE", "cpu",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "SOLVER.MAX_ITER", "1",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.STEPS", "()",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "DATALOADER.NUM_WORKERS", "0",
    "WEAKSUP.PSEUDO_STAGE.METHOD", "ellipse",  # fast: the caching is tested, not the method
    "WEAKSUP.VIS.NUM_IMAGES", "0",
    "DATASETS.TEST", "()",
]  # fmt: skip


@pytest.mark.slow
def test_edited_box_and_replaced_image_redo_the_cached_stages(tmp_path):
    """The README's own-data command, 3 nuts images: after one box is halved (then one image
    replaced) stage 1 and stage 2 were skipped as "up to date" (the dataset's name, method,
    parameters and seed had not changed); now both are redone and the log says why."""
    from conftest import run_train_net
    from weaksup.data.datasets.convert import drop_segmentations

    coco, root = _nuts(tmp_path, 3)
    drop_segmentations(coco)
    boxes = _write_json(tmp_path / "boxes.json", coco)
    out = tmp_path / "run"

    def run():
        return run_train_net(
            USER_CONFIG,
            *["--register", f"user_train_boxonly={boxes}:{root}"],
            *TINY_PIPELINE,
            *["OUTPUT_DIR", str(out)],
        )

    run()
    pseudo = out / "pseudo_masks" / "user_train_boxonly_ellipse.json"
    assert "stage 2: skipped" in run()  # unchanged data: both stages are reused
    coco["annotations"][0]["bbox"][2] /= 2
    _write_json(boxes, coco)
    log = run()
    assert "stage 1: running from scratch: changed input data:user_train_boxonly.records" in log
    assert "stage 2: running from scratch: changed" in log and "stage 2: skipped" not in log
    edited = coco["annotations"][0]
    (first,) = [a for a in json.loads(pseudo.read_text())["annotations"] if a["id"] == edited["id"]]
    assert np.allclose(first["bbox"], edited["bbox"])  # the edited box's mask
    names = [im["file_name"] for im in coco["images"]]
    shutil.copy(root / names[1], root / names[0])  # another photo of the same size
    log = run()
    assert "stage 1: running from scratch: changed input data:user_train_boxonly.images" in log
    assert "stage 2: running from scratch: changed" in log


# ------------------------------------------------------------------------------------------------
# issue 31 item 1: a config file never runs code


def _evil_config(tmp_path, marker):
    """A config whose SEED runs ``touch marker`` under ``yaml.unsafe_load``, and a config that
    takes it as its _BASE_."""
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'SEED: !!python/object/apply:os.system ["touch {marker}"]\n')
    child = tmp_path / "child.yaml"
    child.write_text('_BASE_: "evil.yaml"\nSOLVER:\n  MAX_ITER: 3\n')
    return evil, child


def test_yaml_payload_runs_with_detectron2s_default(tmp_path):
    """The payload is real: Detectron2's merge_from_file (allow_unsafe=True) runs it."""
    from detectron2.config import get_cfg

    marker = tmp_path / "pwned"
    evil, _ = _evil_config(tmp_path, marker)
    get_cfg().merge_from_file(str(evil))
    assert marker.exists()


def test_config_payload_refused_naming_the_file(tmp_path):
    from weaksup import load_config

    marker = tmp_path / "pwned"
    evil, child = _evil_config(tmp_path, marker)
    with pytest.raises(ValueError, match=re.escape(str(evil)) + r", line 1: refused: .*os\.system"):
        load_config(str(evil))
    with pytest.raises(
        ValueError, match=re.escape(str(evil)) + r".* \(a _BASE_ of .*child\.yaml\)"
    ):
        load_config(str(child))
    png = shared_path("PennFudanPed", "PNGImages", "FudanPed00001.png")
    with pytest.raises(ValueError, match="evil.yaml.*refused"):  # predict (and export) load it so
        predict_tool.main(["--config-file", str(evil), "--input", str(png), "--output", "out"])
    assert not marker.exists()


@pytest.mark.slow
def test_train_net_eval_only_config_payload_refused(tmp_path):
    """The issue's trial: ``train_net.py --config-file evil.yaml --eval-only`` ran the payload
    and ended with rc 0."""
    import subprocess
    import sys

    marker = tmp_path / "pwned"
    evil, _ = _evil_config(tmp_path, marker)
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_net.py"), "--config-file", str(evil), "--eval-only"]
        + ["OUTPUT_DIR", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert out.returncode != 0 and "evil.yaml, line 1: refused" in out.stderr
    assert not marker.exists()


def test_no_unsafe_config_loading_left():
    """Every config load of weaksup, its tools, benchmarks and tests goes through
    merge_config_file (safe YAML only); Detectron2's merge_from_file is called there alone."""
    unsafe = re.compile(r"\.merge_from_file\(|yaml\.unsafe_load\(|allow_unsafe=True|yaml\.load\(")
    found = source_lines_matching(
        unsafe,
        ("weaksup", "tools", "benchmarks", "datasets", "tests"),
        lambda p: p.name == "config_file.py" or p == Path(__file__),
    )
    assert not found, found


# ------------------------------------------------------------------------------------------------
# issue 31 items 7, 8, 9, 11: non-finite boxes, images checked first, pipeline names, full disk


def test_pseudo_json_is_strict_json_with_nan_boxes(tmp_path):
    """Item 7: NaN / inf input boxes were copied into the output as NaN / Infinity literals."""
    nan, inf = float("nan"), float("inf")
    coco, root = _boxes_json(tmp_path, [[nan, 10, 50, 50], [10, 10, inf, 50]])

    def refuse(literal):
        raise ValueError(f"not strict JSON: {literal}")

    out = json.loads(_pseudo(tmp_path, root, "box").read_text(), parse_constant=refuse)
    assert [a["bbox"] for a in out["annotations"] if a["id"] >= 900] == [None, None]


def test_pseudo_tool_checks_every_image_first_and_redoes_only_the_fixed_shard(tmp_path, caplog):
    """Item 8: the job stopped at the image whose size differs from the json, after the shards
    before it; with the json fixed, --resume was refused (the job fingerprint covered every
    image), so every shard was redone. Now the record is named before any shard is computed,
    and after a record changes --resume redoes that record's shard alone."""
    import logging

    coco, root = _nuts(tmp_path, 4)
    coco["images"][3]["height"] = 601
    _write_json(tmp_path / "in.json", coco)
    with pytest.raises(ValueError, match=r"\.jpg' \(image_id=3\) is 800x600 but annotated"):
        _pseudo_args(tmp_path, root, ["--shard-size", "1"])
    assert not list((tmp_path / "out.json.work").glob("shard_*"))  # before any work
    coco["images"][3]["height"] = 600
    _write_json(tmp_path / "in.json", coco)
    assert len(_interrupted_after(tmp_path, root, 4)) == 4  # a run killed before its output
    coco["annotations"][-1]["bbox"][2] /= 2  # a record of the last image fixed
    _write_json(tmp_path / "in.json", coco)
    with caplog.at_level(logging.INFO):
        _pseudo_args(tmp_path, root, ["--shard-size", "1", "--resume"])
    assert "Resuming: 3 of 4 shards already done, 1 made from other records" in caplog.text
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["annotations"][-1]["bbox"] == coco["annotations"][-1]["bbox"]


def _pseudo_args(tmp_path, root, extra):
    make_pseudo_masks.main(
        ["--input-json", str(tmp_path / "in.json"), "--image-root", str(root)]
        + ["--method", "box", "--output", str(tmp_path / "out.json"), "--no-progress", *extra]
    )


def _interrupted_after(tmp_path, root, num_shards):
    """Compute the job's ``num_shards`` shards (size 1) without writing the output, as a job
    killed before its end leaves them; their file names."""
    from weaksup.engine.pseudo_masks import build_tasks
    from weaksup.pseudo import PseudoMaskConfig
    from weaksup.pseudo.job import PseudoMaskJob

    coco = json.loads((tmp_path / "in.json").read_text())
    job = PseudoMaskJob(
        build_tasks(coco, str(root), "in.json"),
        "box",
        PseudoMaskConfig(),
        0,
        str(tmp_path / "out.json.work"),
        shard_size=1,
    )
    job.run(range(num_shards), progress=False)
    return sorted(p.name for p in (tmp_path / "out.json.work").glob("shard_*"))


@pytest.mark.slow
def test_pipeline_test_set_typo_found_before_stage_1(tmp_path):
    """Item 9: a pipeline config's DATASETS.TEST typo was found after the pseudo-mask stage."""
    import subprocess
    import sys

    coco, root = _nuts(tmp_path)
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_net.py"), "--config-file", str(USER_CONFIG)]
        + ["--register", f"user_train_boxonly={tmp_path / 'in.json'}:{root}", *TINY_PIPELINE]
        + ["DATASETS.TEST", "('pennfudan_vall',)", "OUTPUT_DIR", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert out.returncode != 0
    assert "DATASETS.TEST: unknown dataset 'pennfudan_vall'; did you mean 'pennfudan_val'" in (
        out.stderr
    )
    assert not (tmp_path / "run" / "pseudo_masks").exists()


def test_full_disk_error_names_the_file(tmp_path, monkeypatch):
    """Item 11: "No space left on device" named no path; the old file stays whole."""
    import errno

    from weaksup.utils import file_io

    target = tmp_path / "out.json"
    target.write_text('{"old": true}')
    real_fdopen = os.fdopen

    def full_disk(fd, mode):
        f = real_fdopen(fd, mode)
        f.write = lambda data: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(28)))
        return f

    monkeypatch.setattr(file_io.os, "fdopen", full_disk)
    with pytest.raises(OSError, match=r"No space left on device.*" + re.escape(str(target))):
        file_io.write_json_atomic({"new": True}, str(target))
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left
