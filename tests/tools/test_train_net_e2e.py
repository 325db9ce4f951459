"""End to end: train_net.py trains with 2 CPU processes, resumes, and --eval-only agrees."""

import json
import os
import re

import pytest

from conftest import REPO_ROOT, copypaste_lines, curve_pixels, run_train_net
from weaksup.engine.loss_curve import read_loss_series

CONFIG = REPO_ROOT / "configs" / "PseudoMasks" / "demo" / "pennfudan_box_mask_rcnn_R18_FPN_GN.yaml"
SMALL = [
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.CHECKPOINT_PERIOD",
    "2",
    "SOLVER.WARMUP_ITERS",
    "2",
    "INPUT.MIN_SIZE_TRAIN",
    "(160,)",
    "INPUT.MAX_SIZE_TRAIN",
    "256",
    "INPUT.MIN_SIZE_TEST",
    "160",
    "INPUT.MAX_SIZE_TEST",
    "256",
    "DATALOADER.NUM_WORKERS",
    "0",
    "WEAKSUP.VIS.NUM_IMAGES",
    "2",
]


def _iterations(output_dir):
    with open(output_dir / "metrics.json") as f:
        return [r["iteration"] for r in map(json.loads, f) if "total_loss" in r]


@pytest.mark.slow
def test_train_two_cpu_processes_resume_and_eval_only(tmp_path):
    out_dir = tmp_path / "run"
    common = ["--num-gpus", "2", *SMALL, "OUTPUT_DIR", str(out_dir), "SOLVER.STEPS", "()"]

    log = run_train_net(CONFIG, *common, "SOLVER.MAX_ITER", "4")
    assert "World size: 2" in log
    assert "MODEL.DEVICE='cpu'" in log  # CPU processes on purpose (run_train_net)
    assert (out_dir / "last_checkpoint").read_text() == "model_final.pth"
    assert {"model_0000001.pth", "model_0000003.pth", "model_final.pth"} <= set(os.listdir(out_dir))
    assert not [f for f in os.listdir(out_dir) if "partial" in f]
    first = copypaste_lines(log)
    assert [l for l in first if l.startswith("Task:")] == [
        "Task: bbox",
        "Task: segm",
        "Task: voc_instance",
    ]
    assert len(os.listdir(out_dir / "overlays")) == 2
    losses = read_loss_series(str(out_dir / "metrics.json"))
    # Detectron2 logs every 20 iterations and at the end: here the last one only
    assert [i for i, _ in losses["total_loss"]] == _iterations(out_dir) == [3]
    assert len(losses) >= 4 and all(v > 0 for _, v in losses["total_loss"])
    # one point per loss draws no line; the legend shows matplotlib's first colours (24 px each)
    assert all(curve_pixels(str(out_dir / "loss_curves.png"), min_pixels=20).values())

    # --resume continues from the last checkpoint (iteration 4) up to the new MAX_ITER
    log = run_train_net(CONFIG, "--resume", *common, "SOLVER.MAX_ITER", "6")
    assert re.search(r"Starting training from iteration 4\b", log), log[-3000:]
    iterations = _iterations(out_dir)
    assert iterations[-1] == 5 and iterations.count(5) == 1
    trained = copypaste_lines(log)

    # --eval-only on the final weights prints the metrics printed at the end of training
    log = run_train_net(
        CONFIG,
        "--eval-only",
        "--num-gpus",
        "2",
        *SMALL,
        "OUTPUT_DIR",
        str(tmp_path / "eval"),
        "MODEL.WEIGHTS",
        str(out_dir / "model_final.pth"),
    )
    assert copypaste_lines(log) == trained
    assert len(os.listdir(tmp_path / "eval" / "overlays_eval")) == 2
