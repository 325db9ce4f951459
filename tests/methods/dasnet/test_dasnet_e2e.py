"""DASNet end to end through train_net.py: stage 1 (detection), stage 2 (segmentation) with 2 CPU
processes, semantic and instance evaluation, checkpoint and resume (tiny inputs, few iterations);
the ImageNet Lite0-FPN demo configs (stage-wise and joint) from the ImageNet trunk."""

import json
import os
import re

import pytest
import torch

from conftest import (
    REPO_ROOT,
    check_imagenet_trunk,
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


IMAGENET_LITE0 = "Loading from weaksup://ImageNetPretrained/efficientnet_lite0.pth"


def _check_segmentation_evaluation(log, output_dir):
    """Box, mask, VOC instance and semantic tasks evaluated; the semantic values consistent."""
    lines = copypaste_lines(log)
    assert [l for l in lines if l.startswith("Task:")] == [
        "Task: bbox",
        "Task: segm",
        "Task: voc_instance",
        "Task: sem_seg",
    ]
    sem = lines[lines.index("Task: sem_seg") + 1 : lines.index("Task: sem_seg") + 3]
    assert sem[0] == "mIoU,fwIoU,mACC,pACC"
    check_sem_seg_result(last_sem_seg_metrics(output_dir), sem[1])
    voc = lines[lines.index("Task: voc_instance") + 1]
    assert "mAP@0.5" in voc and "mAP@0.75" in voc


def _last_iterations(output_dir):
    return [
        json.loads(line)["iteration"]
        for line in (output_dir / "metrics.json").read_text().splitlines()
        if "total_loss" in line
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
    _check_segmentation_evaluation(log, stage2)
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
    iterations = _last_iterations(stage2)
    assert iterations[-1] == 3 and iterations.count(3) == 1


@pytest.mark.slow
def test_lite0_stages_from_imagenet_trunk(tmp_path):
    """pennfudan_stage{1,2}_*_Lite0_FPN.yaml: stage 1 starts from the ImageNet Lite0 trunk and
    fine-tunes it; stage 2 loads stage 1 (the trunk unchanged: the detector is frozen), trains,
    evaluates and resumes."""
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    log = run_train_net(
        DEMO / "pennfudan_stage1_det_Lite0_FPN.yaml",
        *SMALL, "SOLVER.MAX_ITER", "2", "DATASETS.TEST", "()", "OUTPUT_DIR", str(stage1),
    )  # fmt: skip
    assert IMAGENET_LITE0 in log and "not used by the model" not in log
    check_imagenet_trunk(stage1 / "model_final.pth", "detector.backbone.bottom_up.")
    common = [*SMALL, "MODEL.WEIGHTS", str(stage1 / "model_final.pth"), "OUTPUT_DIR", str(stage2)]
    config2 = DEMO / "pennfudan_stage2_seg_Lite0_FPN.yaml"
    log = run_train_net(config2, *common, "SOLVER.MAX_ITER", "2")
    assert IMAGENET_LITE0 not in log
    _check_segmentation_evaluation(log, stage2)
    detector = {
        k: v
        for k, v in torch.load(stage1 / "model_final.pth", weights_only=True)["model"].items()
        if k.startswith("detector.")
    }
    final = torch.load(stage2 / "model_final.pth", weights_only=True)["model"]
    assert all(torch.equal(final[k], v) for k, v in detector.items())  # frozen in stage 2
    log = run_train_net(config2, "--resume", *common, "SOLVER.MAX_ITER", "3", "DATASETS.TEST", "()")
    assert re.search(r"Starting training from iteration 2\b", log), log[-3000:]
    assert _last_iterations(stage2)[-1] == 2


@pytest.mark.slow
def test_lite0_joint_from_imagenet_trunk_resume_and_evaluate(tmp_path):
    """pennfudan_joint_Lite0_FPN.yaml: one run from the ImageNet trunk trains detector and
    decoder together (both losses), checkpoints, resumes and evaluates."""
    out = tmp_path / "joint"
    config = DEMO / "pennfudan_joint_Lite0_FPN.yaml"
    common = [*SMALL, "OUTPUT_DIR", str(out)]
    log = run_train_net(config, *common, "SOLVER.MAX_ITER", "1", "DATASETS.TEST", "()")
    assert IMAGENET_LITE0 in log and "not used by the model" not in log
    log = run_train_net(config, "--resume", *common, "SOLVER.MAX_ITER", "3")
    assert re.search(r"Starting training from iteration 1\b", log), log[-3000:]
    trained = [json.loads(l) for l in (out / "metrics.json").read_text().splitlines()]
    trained = [m for m in trained if "total_loss" in m]
    assert trained[0]["iteration"] == 0 and trained[-1]["iteration"] == 2  # resumed at 1
    assert {"loss_cls", "loss_sem_seg", "loss_instance_mask"} <= set(trained[-1])
    check_imagenet_trunk(out / "model_final.pth", "detector.backbone.bottom_up.")
    _check_segmentation_evaluation(log, out)
