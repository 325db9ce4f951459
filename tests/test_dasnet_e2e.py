"""DASNet end to end through train_net.py: stage 1 (detection), stage 2 (segmentation) with 2 CPU
processes, semantic and instance evaluation, checkpoint and resume (tiny inputs, few iterations)."""

import json
import os
import re

import pytest

from conftest import (
    REPO_ROOT,
    check_sem_seg_result,
    copypaste_lines,
    last_sem_seg_metrics,
    run_train_net,
)

DEMO = REPO_ROOT / "configs" / "DASNet" / "demo"
SMALL = [
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.WARMUP_ITERS",
    "1",
    "SOLVER.STEPS",
    "()",
    "SOLVER.CHECKPOINT_PERIOD",
    "2",
    "INPUT.MIN_SIZE_TRAIN",
    "(128,)",
    "INPUT.MAX_SIZE_TRAIN",
    "160",
    "INPUT.MIN_SIZE_TEST",
    "128",
    "INPUT.MAX_SIZE_TEST",
    "160",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.DETECTIONS_PER_IMAGE",
    "2",
    "WEAKSUP.VIS.NUM_IMAGES",
    "1",
]


@pytest.mark.slow
def test_dasnet_two_stages_evaluation_and_resume(tmp_path):
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    log = run_train_net(
        DEMO / "pennfudan_stage1_det_R18_FPN_GN.yaml",
        *SMALL,
        "SOLVER.MAX_ITER",
        "2",
        "DATASETS.TEST",
        "()",
        "OUTPUT_DIR",
        str(stage1),
    )
    assert (stage1 / "model_final.pth").is_file()
    losses = json.loads((stage1 / "metrics.json").read_text().splitlines()[-1])
    assert "loss_cls" in losses and "loss_sem_seg" not in losses  # stage 1: detection only

    common = [*SMALL, "MODEL.WEIGHTS", str(stage1 / "model_final.pth"), "OUTPUT_DIR", str(stage2)]
    log = run_train_net(
        DEMO / "pennfudan_stage2_seg_R18_FPN_GN.yaml",
        "--num-gpus",
        "2",
        *common,
        "SOLVER.MAX_ITER",
        "3",
    )
    assert "World size: 2" in log
    metrics = [json.loads(line) for line in (stage2 / "metrics.json").read_text().splitlines()]
    trained = [m for m in metrics if "total_loss" in m]
    assert {"loss_sem_seg", "loss_instance_score", "loss_instance_mask"} <= set(trained[-1])
    assert "loss_cls" not in trained[-1]  # stage 2: the detector is frozen
    lines = copypaste_lines(log)
    assert [l for l in lines if l.startswith("Task:")] == [
        "Task: bbox",
        "Task: segm",
        "Task: voc_instance",
        "Task: sem_seg",
    ]
    sem = lines[lines.index("Task: sem_seg") + 1 : lines.index("Task: sem_seg") + 3]
    assert sem[0] == "mIoU,fwIoU,mACC,pACC"
    check_sem_seg_result(last_sem_seg_metrics(stage2), sem[1])
    voc = lines[lines.index("Task: voc_instance") + 1]
    assert "mAP@0.5" in voc and "mAP@0.75" in voc
    assert {"model_0000001.pth", "model_final.pth"} <= set(os.listdir(stage2))
    assert len(os.listdir(stage2 / "overlays")) == 1

    # --resume continues stage 2 from its last checkpoint (iteration 3) up to the new MAX_ITER
    log = run_train_net(
        DEMO / "pennfudan_stage2_seg_R18_FPN_GN.yaml",
        "--resume",
        *common,
        "SOLVER.MAX_ITER",
        "4",
        "DATASETS.TEST",
        "()",
    )
    assert re.search(r"Starting training from iteration 3\b", log), log[-3000:]
    iterations = [
        json.loads(line)["iteration"]
        for line in (stage2 / "metrics.json").read_text().splitlines()
        if "total_loss" in line
    ]
    assert iterations[-1] == 3 and iterations.count(3) == 1
