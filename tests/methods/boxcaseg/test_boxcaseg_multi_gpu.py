"""BoxCaseg's README multi-GPU commands as configs (no training): every stage at 1-8 processes
with 9:7 patches in every step of every process, and the command-line overrides that reach
stage 1 (docs/foundation.md, "Several GPUs / machines")."""

import logging

import pytest
from detectron2.engine import DefaultTrainer
from detectron2.utils import comm

from conftest import REPO_ROOT, WORLD_SIZES, check_stages_seeded, check_world_sizes
from weaksup import load_config
from weaksup.methods.boxcaseg.data import _batch_split
from weaksup.methods.boxcaseg.pipeline import stage1_config


@pytest.mark.parametrize(
    "path", ["configs/boxcaseg_coco.yaml", "configs/BoxCaseg/voc_proxy_mask_rcnn_R101_FPN.yaml"]
)
def test_every_stage_runs_at_1_2_3_4_and_8_processes_with_9_to_7_patches(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    cfg = load_config(path)
    stage1 = stage1_config(cfg)
    check_world_sizes(path, cfg, 4)
    check_world_sizes(f"{path} stage 1", stage1, 4)
    for world in WORLD_SIZES:  # Sec. 4.2.3: the ratio in every step of every process
        scaled = DefaultTrainer.auto_scale_workers(stage1, world)
        monkeypatch.setattr(comm, "get_world_size", lambda w=world: w)
        assert _batch_split(scaled) == (9, 7)


def test_every_stage_config_is_seeded(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    check_stages_seeded("BoxCaseg", lambda cfg: {"stage 1": stage1_config(cfg)})


def test_job_wide_overrides_reach_stage_1_and_the_rest_are_named(monkeypatch, caplog):
    monkeypatch.chdir(REPO_ROOT)
    opts = [
        "SOLVER.AMP.ENABLED", "True", "MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "1",
        "SOLVER.REFERENCE_WORLD_SIZE", "2", "SEED", "7", "CUDNN_BENCHMARK", "True",
        "MODEL.WEIGHTS", "my/R-101.pkl", "SOLVER.IMS_PER_BATCH", "8",
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="weaksup.engine.pipeline"):
        stage1 = stage1_config(load_config("configs/boxcaseg_coco.yaml", opts))
    s = stage1.SOLVER
    assert (s.AMP.ENABLED, stage1.MODEL.DEVICE, stage1.DATALOADER.NUM_WORKERS) == (True, "cpu", 1)
    assert (s.REFERENCE_WORLD_SIZE, stage1.SEED, stage1.CUDNN_BENCHMARK) == (2, 7, True)
    # the HRNet stage 1 keeps its own trunk weights and its batch of patches; the warning says so
    assert stage1.MODEL.WEIGHTS != "my/R-101.pkl" and s.IMS_PER_BATCH == 64
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "weaksup.engine.pipeline"]
    assert "stage 1" in warning and "SOLVER.IMS_PER_BATCH (8)" in warning
    assert "MODEL.WEIGHTS ('my/R-101.pkl')" in warning and "SEED" not in warning
