"""BoxSup end to end through train_net.py on 6 PennFudan images (tiny inputs): labelling 0 by E_o,
training, a label update by the network between two epochs (2 gloo processes), a kill -9 right
after the update, and a resume that trains on that labelling (acceptance check 2), then a
multi-scale + dense-CRF evaluation."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import (
    REPO_ROOT,
    check_imagenet_trunk,
    copypaste_lines,
    free_port,
    shared_path,
)

CONFIG = REPO_ROOT / "configs" / "BoxSup" / "demo" / "pennfudan_boxsup_R18_GN.yaml"
LITE0 = REPO_ROOT / "configs" / "BoxSup" / "demo" / "pennfudan_boxsup_Lite0_OS16.yaml"
TINY = [
    "MODEL.DEVICE", "cpu",
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",
    "WEAKSUP.BOXSUP.GT_DATASET", "tiny_pf",
    "WEAKSUP.BOXSUP.NUM_CANDIDATES", "150",
    "WEAKSUP.BOXSUP.CANDIDATE_MAX_SIDE", "96",
    "WEAKSUP.BOXSUP.TOP_K", "1",  # deterministic: labels change only through the network
    "WEAKSUP.BOXSUP.VIS_NUM_IMAGES", "2",
    "DATASETS.TRAIN", "('tiny_pf_boxonly',)",
    "SOLVER.IMS_PER_BATCH", "4",  # 6 images: 2 iterations per epoch
    "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.STEPS", "()",
    "SOLVER.CHECKPOINT_PERIOD", "1000",
    "TEST.EVAL_PERIOD", "0",
    "INPUT.MIN_SIZE_TRAIN", "(96,)",
    "INPUT.MAX_SIZE_TRAIN", "128",
    "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "128",
    "DATALOADER.NUM_WORKERS", "1",
]  # fmt: skip


def _train(tmp_path, *args, background=False, config=CONFIG):
    env = {
        **os.environ,
        "PENNFUDAN_ROOT": str(shared_path("PennFudanPed")),
        "WEAKSUP_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, str(REPO_ROOT / "tests" / "methods" / "boxsup" / "boxsup_train_tiny.py")]
    cmd += ["--config-file", str(config), *args]
    if "--num-gpus" in args:  # CPU processes with CUDA hidden (conftest.launch_on_cpu)
        cmd += ["MODEL.DEVICE", "cpu"]
        env["CUDA_VISIBLE_DEVICES"] = ""
    if background:
        log = open(tmp_path / "killed.log", "w")
        return subprocess.Popen(
            cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=log, start_new_session=True
        )
    out = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    return out.stdout + out.stderr


def _maps(folder):
    return {
        f: hashlib.sha1((folder / f).read_bytes()).hexdigest()
        for f in sorted(os.listdir(folder))
        if f.endswith(".png")
    }


@pytest.mark.slow
def test_label_update_between_epochs_kill_and_resume(tmp_path):
    out = tmp_path / "out"
    labels = out / "boxsup" / "labels"
    proc = _train(
        tmp_path, "--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{free_port()}", *TINY, "SOLVER.MAX_ITER", "1000", "DATASETS.TEST", "()",
        "OUTPUT_DIR", str(out), background=True,
    )  # fmt: skip
    try:  # kill -9 once labelling 1 is complete and the checkpoint after it is in place
        deadline = time.time() + 400
        while time.time() < deadline and proc.poll() is None:
            last = out / "last_checkpoint"
            if (labels / "epoch_001" / "DONE.json").is_file() and last.is_file():
                if last.read_text() != "model_final.pth":
                    break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-5000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_log = (tmp_path / "killed.log").read_text()
    assert "World size: 2" in killed_log

    # labelling 0 (E_o only) and 1 (E_o + 3 E_r, after 2 iterations): k = 1 is deterministic,
    # so the boxes that changed candidate did so because of the network
    maps0, maps1 = _maps(labels / "epoch_000"), _maps(labels / "epoch_001")
    assert len(maps0) == len(maps1) == 6 and maps0 != maps1
    done1 = json.loads((labels / "epoch_001" / "DONE.json").read_text())
    assert done1["boxes"] == 11 and done1["changed"] > 0 and 0 < done1["label_mIoU"] <= 100
    assert len(os.listdir(out / "boxsup" / "vis" / "epoch_001")) == 2

    # the checkpoint holds the labelling it was saved with
    name = (out / "last_checkpoint").read_text()
    ckpt = torch.load(out / name, map_location="cpu", weights_only=False)
    labelling = ckpt["trainer"]["hooks"]["BoxSupLabelUpdate"]["labelling"]
    iteration = ckpt["iteration"]
    assert labelling >= 1 and iteration == 2 * labelling - 1  # saved right after the update
    before = _maps(labels / f"epoch_{labelling:03d}")

    # resume: one more iteration on that labelling (no new update), then evaluate with 3 test
    # scales and the dense CRF
    log = _train(
        tmp_path, "--resume", *TINY, "SOLVER.MAX_ITER", str(iteration + 2),
        "DATASETS.TEST", "('tiny_pf_val_sem_seg',)", "MODEL.BOXSUP.TEST_SCALES", "[0.8, 1.0, 1.2]",
        "MODEL.BOXSUP.CRF.ENABLED", "True", "OUTPUT_DIR", str(out),
    )  # fmt: skip
    assert f"resuming at iteration {iteration + 1} on labelling {labelling}" in log
    assert f"training on labelling {labelling} " in log
    assert "E_o only" not in log and "E_o + lambda E_r" not in log  # nothing re-labelled
    assert _maps(labels / f"epoch_{labelling:03d}") == before
    lines = copypaste_lines(log)
    last = len(lines) - 1 - lines[::-1].index("Task: sem_seg")
    sem = lines[last + 1 : last + 3]
    assert sem[0] == "mIoU,fwIoU,mACC,pACC"
    rows = json.loads((out / "boxsup" / "epochs.json").read_text())
    assert rows[-1]["labelling"] == labelling and rows[-1]["val_mIoU"] is not None
    # the printed evaluation is the one the hook recorded for the epoch
    assert float(sem[1].split(",")[0]) == pytest.approx(rows[-1]["val_mIoU"], abs=1e-3)
    assert [r["labelling"] for r in rows[:2]] == [0, 1]  # epochs before the kill, kept in the state
    assert "BoxSup per epoch" in log


@pytest.mark.slow
def test_lite0_demo_config_trains_the_imagenet_trunk_relabels_and_evaluates(tmp_path):
    """configs/BoxSup/demo/pennfudan_boxsup_Lite0_OS16.yaml on the tiny images: the dilated
    Lite0 trunk starts from the ImageNet weights and trains (stem and res2 frozen), labelling 1 is
    made by the network after the first epoch, and the val evaluation is recorded per epoch."""
    out = tmp_path / "out"
    log = _train(
        tmp_path, *TINY, "MODEL.SEM_SEG_HEAD.CONVS_DIM", "64", "SOLVER.MAX_ITER", "4",
        "WEAKSUP.BOXSUP.EPOCH_ITERS", "2",
        "DATASETS.TEST", "('tiny_pf_val_sem_seg',)", "TEST.EVAL_PERIOD", "2", "OUTPUT_DIR", str(out),
        config=LITE0,
    )  # fmt: skip
    assert "Loading from weaksup://ImageNetPretrained/efficientnet_lite0.pth" in log
    assert "E_o + lambda E_r" in log  # labelling 1, by the network
    check_imagenet_trunk(out / "model_final.pth", "backbone.")
    rows = json.loads((out / "boxsup" / "epochs.json").read_text())
    assert [r["labelling"] for r in rows] == [0, 1]
    assert all(0 <= r["val_mIoU"] <= 100 for r in rows) and rows[0]["label_mIoU"] > 0
