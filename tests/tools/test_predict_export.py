"""End to end on the user's own data: a box-only COCO json registered on train_net.py's command
line trains a model (a few iterations, tiny images); tools/predict.py runs it on a folder of
PennFudan images and on a video made from them, and scores nuts_coco with pycocotools;
tools/export_model.py exports it to TorchScript, which a fresh process without weaksup (or
Detectron2) loads and runs with the same detections as the PyTorch model."""

import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from conftest import REPO_ROOT, run_train_net, shared_path, untrained_checkpoint

DEMO = REPO_ROOT / "configs" / "PseudoMasks" / "demo" / "pennfudan_box_mask_rcnn_R18_FPN_GN.yaml"
TINY = [
    "SOLVER.MAX_ITER",
    "6",
    "SOLVER.WARMUP_ITERS",
    "1",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.CHECKPOINT_PERIOD",
    "100",
    "INPUT.MIN_SIZE_TRAIN",
    "(160,)",
    "INPUT.MAX_SIZE_TRAIN",
    "224",
    "INPUT.MIN_SIZE_TEST",
    "160",
    "INPUT.MAX_SIZE_TEST",
    "224",
    "DATALOADER.NUM_WORKERS",
    "0",
    "WEAKSUP.HOOKS",
    "[]",
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "3",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config.yaml, model_final.pth, nuts json, nuts images, box-only json) of a model trained
    6 iterations on nuts_coco's boxes, the dataset registered with --register."""
    out = tmp_path_factory.mktemp("user_model")
    nuts = shared_path("nuts_coco", "data")
    boxes = out / "nuts_boxes.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "datasets" / "convert_to_coco.py"),
            "--format",
            "coco",
            "--input",
            str(nuts / "trainval.json"),
            "--boxes-only",
            "--output",
            str(boxes),
        ],
        check=True,
        cwd=REPO_ROOT,
    )
    log = run_train_net(
        DEMO,
        "--register",
        f"nuts_train_boxonly={boxes}:{nuts / 'images'}",
        "DATASETS.TRAIN",
        "('nuts_train_boxonly',)",
        "DATASETS.TEST",
        "()",
        "OUTPUT_DIR",
        str(out),
        *TINY,
    )
    assert "nuts_train_boxonly" in log
    config = out / "config.yaml"
    assert "nuts_train_boxonly" in config.read_text()  # the registration is part of the config
    return config, out / "model_final.pth", nuts, boxes


def _predict(config, weights, *args):
    cmd = [
        sys.executable,
        str(REPO_ROOT / "tools" / "predict.py"),
        "--config-file",
        str(config),
        "--no-progress",
        *args,
        "MODEL.WEIGHTS",
        str(weights),
        "MODEL.DEVICE",
        "cpu",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out.stdout + out.stderr


def _check_results(folder, num_images):
    """The outputs of predict.py are complete and valid: one overlay (and mask PNG) per image,
    results whose ids are images.json's, RLE masks of the image size, boxes inside it."""
    with open(folder / "images.json") as f:
        index = json.load(f)
    with open(folder / "results.json") as f:
        results = json.load(f)
    assert len(index["images"]) == num_images
    assert len(os.listdir(folder / "overlays")) == num_images
    sizes = {im["id"]: (im["height"], im["width"]) for im in index["images"]}
    categories = {c["id"] for c in index["categories"]}
    assert results, "the trained model detects nothing at the threshold"
    for r in results:
        h, w = sizes[r["image_id"]]
        assert r["category_id"] in categories and 0 <= r["score"] <= 1
        assert tuple(r["segmentation"]["size"]) == (h, w)
        assert mask_util.decode(r["segmentation"]).shape == (h, w)
        x, y, bw, bh = r["bbox"]
        assert -1e-3 <= x and -1e-3 <= y and x + bw <= w + 1e-3 and y + bh <= h + 1e-3
    return index, results


def test_predict_folder_and_video(trained, tmp_path):
    config, weights, _, _ = trained
    folder = tmp_path / "pennfudan"
    folder.mkdir()
    pngs = sorted(shared_path("PennFudanPed", "PNGImages").glob("*.png"))[:3]
    for p in pngs:
        os.symlink(p, folder / p.name)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 240))
    assert writer.isOpened()
    for p in sorted(shared_path("PennFudanPed", "PNGImages").glob("*.png"))[3:7]:
        writer.write(cv2.resize(cv2.imread(str(p)), (320, 240)))
    writer.release()
    out = tmp_path / "pred"
    _predict(
        config,
        weights,
        "--input",
        str(folder),
        str(video),
        "--output",
        str(out),
        "--confidence-threshold",
        "0.05",
        "--masks",
    )
    index, results = _check_results(out, 3 + 4)
    frames = [im for im in index["images"] if "frame" in im]
    assert [im["frame"] for im in frames] == [0, 1, 2, 3]
    assert {(im["height"], im["width"]) for im in frames} == {(240, 320)}
    overlays = sorted(os.listdir(out / "overlays"))
    assert overlays == sorted(
        [p.stem + ".png" for p in pngs] + [f"clip_{k:06d}.png" for k in range(4)]
    )
    for name in overlays:  # drawings and masks have the input's size
        im = cv2.imread(str(out / "overlays" / name))
        mask = cv2.imread(str(out / "masks" / name), cv2.IMREAD_UNCHANGED)
        assert im.shape[:2] == mask.shape[:2] and mask.dtype == np.uint8
    with pytest.raises(AssertionError, match="no such file or folder"):
        _predict(config, weights, "--input", str(tmp_path / "nothing"), "--output", str(out))


def test_predict_scores_with_pycocotools(trained, tmp_path):
    """--gt-json gives the json's ids: pycocotools loads the results and evaluates them (boxes
    against the box-only json; boxes and masks against the json with masks)."""
    from pycocotools.coco import COCO

    config, weights, nuts, boxes = trained
    images = [str(nuts / "images" / f"{k}.jpg") for k in (0, 5)]
    out = tmp_path / "scored"
    _predict(
        config,
        weights,
        "--input",
        *images,
        "--output",
        str(out),
        "--gt-json",
        str(nuts / "trainval.json"),
        "--confidence-threshold",
        "0.05",
    )
    index, results = _check_results(out, 2)
    with open(nuts / "trainval.json") as f:
        ids = {im["file_name"]: im["id"] for im in json.load(f)["images"]}
    assert [im["id"] for im in index["images"]] == [ids["0.jpg"], ids["5.jpg"]]
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert set(metrics) == {"bbox", "segm"}
    # nuts has no small object: APs is NaN (as Detectron2 reports it), the rest are percentages
    assert math.isnan(metrics["bbox"].pop("APs"))
    assert all(0 <= v <= 100 for v in metrics["bbox"].values())
    gt = COCO(str(nuts / "trainval.json"))
    assert len(gt.loadRes(str(out / "results.json")).getAnnIds()) == len(results)
    out = tmp_path / "boxes_only"
    _predict(config, weights, "--input", *images, "--output", str(out), "--gt-json", str(boxes))
    with open(out / "metrics.json") as f:
        assert set(json.load(f)) == {"bbox"}  # no masks to score against


FRESH = """
import json, sys
import torch, torchvision  # torchvision: the detection ops the traced graph calls
extra = {"export.json": ""}
model = torch.jit.load(sys.argv[1], _extra_files=extra)
names = json.loads(extra["export.json"])["outputs"]
assert not any(m.split(".")[0] in ("weaksup", "detectron2") for m in sys.modules), "imported"
outputs = [dict(zip(names, model(image))) for image in torch.load(sys.argv[2])]
torch.save(outputs, sys.argv[3])
"""


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Export (TorchScript and ONNX) traced on nuts image 0, the PyTorch model, and three real
    images of other sizes, preprocessed as the export's input."""
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    import export_model

    config, weights, nuts, _ = trained
    out = tmp_path_factory.mktemp("export")
    sample = str(nuts / "images" / "0.jpg")
    args = export_model.build_parser().parse_args(
        [
            "--output",
            str(out),
            "--format",
            "torchscript",
            "onnx",
            "--sample-image",
            sample,
            "--config-file",
            str(config),
            "MODEL.WEIGHTS",
            str(weights),
        ]
    )
    cfg = export_model.setup(args)
    info = export_model.export(cfg, args.output, args.format, sample)
    assert info["outputs"] == ["pred_boxes", "pred_classes", "pred_masks", "scores", "image_size"]
    model = export_model.exportable_model(cfg)
    pngs = sorted(shared_path("PennFudanPed", "PNGImages").glob("*.png"))[:2]
    images = [
        export_model.preprocess(cfg, cv2.imread(str(f))) for f in [nuts / "images" / "7.jpg", *pngs]
    ]
    assert len({tuple(im.shape) for im in images}) == 3  # three sizes
    with torch.no_grad():
        refs = [export_model._inference(model, [{"image": im}])[0]["instances"] for im in images]
    assert sum(len(r) for r in refs) > 0
    return info, images, refs, out


def _assert_same_detections(got, ref, image):
    """Exported vs PyTorch outputs: equal classes, boxes within 0.01 px, scores within 1e-4,
    per-box mask probabilities within 1e-3."""
    got = {k: torch.as_tensor(v) for k, v in got.items()}
    assert len(ref) == len(got["scores"]) and tuple(got["image_size"].tolist()) == tuple(
        image.shape[1:]
    )
    assert torch.equal(got["pred_classes"], ref.pred_classes)
    assert torch.allclose(got["pred_boxes"], ref.pred_boxes.tensor, atol=0.01, rtol=0)
    assert torch.allclose(got["scores"], ref.scores, atol=1e-4, rtol=0)
    assert torch.allclose(got["pred_masks"], ref.pred_masks, atol=1e-3, rtol=0)


FRESH_ONNX = """
import sys
import numpy as np, onnxruntime, torch
session = onnxruntime.InferenceSession(sys.argv[1])
names = [o.name for o in session.get_outputs()]
assert not any(m.split(".")[0] in ("weaksup", "detectron2") for m in sys.modules), "imported"
images = torch.load(sys.argv[2])
outputs = [  # tensors, so that the test reads them back with torch.load(weights_only=True)
    dict(zip(names, map(torch.from_numpy, session.run(None, {"image": im.numpy()}))))
    for im in images
]
torch.save(outputs, sys.argv[3])
"""


@pytest.mark.parametrize("fmt,script", [("torchscript", FRESH), ("onnx", FRESH_ONNX)])
def test_export_parity(exported, tmp_path, fmt, script):
    """The exported file, run in a fresh process without weaksup or Detectron2 (TorchScript with
    torch + torchvision, ONNX with onnxruntime), gives the PyTorch model's detections on real
    images of other sizes than the traced one."""
    info, images, refs, _ = exported
    torch.save(images, tmp_path / "inputs.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            info["files"][fmt],
            str(tmp_path / "inputs.pt"),
            str(tmp_path / "outputs.pt"),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    for image, got, ref in zip(images, torch.load(tmp_path / "outputs.pt"), refs):
        _assert_same_detections(got, ref, image)


def test_predict_semantic_model(tmp_path):
    """A semantic model (BoxSup's, untrained weights: only the output path is tested) writes
    class-map overlays, label PNGs and per-class RLE results with the dataset's classes."""
    config = REPO_ROOT / "configs" / "BoxSup" / "demo" / "pennfudan_boxsup_R18_GN.yaml"
    pngs = sorted(shared_path("PennFudanPed", "PNGImages").glob("*.png"))[:2]
    out = tmp_path / "semantic"
    weights = untrained_checkpoint(config, tmp_path / "untrained.pth")
    _predict(config, weights, "--input", *map(str, pngs), "--output", str(out), "--masks")
    with open(out / "images.json") as f:
        index = json.load(f)
    with open(out / "sem_seg_results.json") as f:
        results = json.load(f)
    assert index["stuff_classes"] == ["background", "person"]
    assert not (out / "results.json").exists()
    assert sorted(os.listdir(out / "overlays")) == sorted(p.stem + ".png" for p in pngs)
    for im in index["images"]:
        mine = [r for r in results if r["image_id"] == im["id"]]
        labels = cv2.imread(
            str(out / "masks" / (os.path.basename(im["file_name"])[:-4] + ".png")), -1
        )
        assert labels.shape == (im["height"], im["width"]) and set(np.unique(labels)) <= {0, 1}
        # the RLEs partition the image: one per predicted class, as in the label PNG
        assert sorted(r["category_id"] for r in mine) == sorted(np.unique(labels).tolist())
        for r in mine:
            assert np.array_equal(mask_util.decode(r["segmentation"]), labels == r["category_id"])
