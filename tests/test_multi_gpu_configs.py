"""The README's multi-GPU commands as configs (no training): every stage config composed as the
pipelines compose it, at several world sizes (Detectron2's ``SOLVER.REFERENCE_WORLD_SIZE`` rule),
and the command-line overrides that reach each stage."""

import glob
import logging

import pytest
from detectron2.engine import DefaultTrainer
from detectron2.utils import comm

from conftest import REPO_ROOT
from weaksup import load_config
from weaksup.methods.boxcaseg.data import _batch_split
from weaksup.methods.boxcaseg.pipeline import stage1_config
from weaksup.methods.hybrid.pipeline import _branch_config
from weaksup.methods.wei.pipeline import hcp_config

# (config, --num-gpus) of every README multi-GPU command, and the VOC configs of the same methods
COMMANDS = [
    ("configs/PseudoMasks/box_mask_rcnn_R50_FPN_coco.yaml", 4),
    ("configs/PseudoMasks/box_mask_rcnn_R50_FPN_voc.yaml", 4),
    ("configs/boxcaseg_coco.yaml", 4),
    ("configs/BoxCaseg/voc_proxy_mask_rcnn_R101_FPN.yaml", 4),
    ("configs/BoxSup/voc_boxsup_R101_OS8.yaml", 4),
    ("configs/Wei/voc_deeplab_R101_OS8.yaml", 8),
    ("configs/Hybrid/voc_pipeline_R50_FPN.yaml", 3),
    ("configs/BoxInst/boxinst_mask_rcnn_R50_FPN_coco.yaml", 8),
    ("configs/BoxInst/boxinst_mask_rcnn_R50_FPN_voc.yaml", 8),
    ("configs/DASNet/voc_stage1_det_box16.5k_R50_FPN.yaml", 8),
    ("configs/DASNet/voc_instance_seg1464_box16.5k_R50_FPN.yaml", 8),
    ("configs/DASNet/voc_semantic_seg10k_box16.5k_R50_FPN.yaml", 8),
]


def _stages(cfg):
    """``{name: config}`` of every training stage of the job ``cfg`` starts."""
    out = {"main": cfg}
    pipeline = cfg.WEAKSUP.PIPELINE
    if pipeline == "BoxCaseg":
        out["stage 1"] = stage1_config(cfg)
    elif pipeline == "Hybrid":
        for which in ("baseline", "large", "small"):
            out[which] = _branch_config(cfg, which, "train", "pseudo.json", which)
    elif pipeline == "Wei":
        w = cfg.WEAKSUP.WEI
        out["hcp_image"] = hcp_config(cfg, w.HCP_IMAGE_CONFIG, "hcp_image", [])
        out["hcp_hypotheses"] = hcp_config(cfg, w.HCP_HYPOTHESES_CONFIG, "hcp_hypotheses", [])
    else:  # PseudoMasks: pseudo masks, then the config itself
        assert pipeline in ("", "PseudoMasks"), f"a pipeline this test does not compose: {pipeline}"
    return out


def _load(path, *opts):
    return load_config(str(REPO_ROOT / path), list(opts))


@pytest.mark.parametrize("path,gpus", COMMANDS)
def test_every_stage_runs_at_1_2_3_4_and_8_processes(path, gpus, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # stage config paths are relative to the repository
    for name, cfg in _stages(_load(path)).items():
        s = cfg.SOLVER
        assert s.REFERENCE_WORLD_SIZE, f"{path} {name}: batch fixed whatever the world size"
        assert s.IMS_PER_BATCH % s.REFERENCE_WORLD_SIZE == 0, f"{path} {name}"
        per_process = s.IMS_PER_BATCH // s.REFERENCE_WORLD_SIZE
        for world in (1, 2, 3, 4, 8, gpus):
            scaled = DefaultTrainer.auto_scale_workers(cfg, world)  # as WeaksupTrainer does
            assert scaled.SOLVER.IMS_PER_BATCH == per_process * world, f"{path} {name} x{world}"
            assert scaled.SOLVER.BASE_LR == pytest.approx(s.BASE_LR * world / s.REFERENCE_WORLD_SIZE)
            if scaled.MODEL.META_ARCHITECTURE == "BoxCaseg":  # Sec. 4.2.3: 9:7 in every step
                monkeypatch.setattr(comm, "get_world_size", lambda w=world: w)
                box, salient = _batch_split(scaled)
                assert (box, salient) == (9 * per_process // 16, 7 * per_process // 16)
                monkeypatch.undo()
                monkeypatch.chdir(REPO_ROOT)


def test_every_stage_config_of_a_shipped_pipeline_is_seeded(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    pipelines = 0
    for path in sorted(glob.glob("configs/**/*.yaml", recursive=True)):
        if "/Base-" in path:  # completed by the configs that use it
            continue
        cfg = _load(path)
        if not cfg.WEAKSUP.PIPELINE or cfg.WEAKSUP.PIPELINE == "BoxCasegNetwork":
            continue
        pipelines += 1
        for name, stage in _stages(cfg).items():
            assert stage.SEED >= 0, f"{path}: {name} is a new random run each time"
    assert pipelines >= 8


def test_job_wide_overrides_reach_every_stage_and_the_rest_are_named(monkeypatch, caplog):
    monkeypatch.chdir(REPO_ROOT)
    opts = [
        "SOLVER.AMP.ENABLED", "True", "MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "1",
        "SOLVER.REFERENCE_WORLD_SIZE", "2", "SEED", "7", "CUDNN_BENCHMARK", "True",
        "MODEL.WEIGHTS", "my/R-101.pkl", "SOLVER.IMS_PER_BATCH", "8",
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="weaksup.engine.pipeline"):
        stage1 = _stages(_load("configs/boxcaseg_coco.yaml", *opts))["stage 1"]
    s = stage1.SOLVER
    assert (s.AMP.ENABLED, stage1.MODEL.DEVICE, stage1.DATALOADER.NUM_WORKERS) == (True, "cpu", 1)
    assert (s.REFERENCE_WORLD_SIZE, stage1.SEED, stage1.CUDNN_BENCHMARK) == (2, 7, True)
    # an HRNet stage 1 keeps its own trunk weights and its batch of patches; the warning says so
    assert stage1.MODEL.WEIGHTS != "my/R-101.pkl" and s.IMS_PER_BATCH == 64
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "weaksup.engine.pipeline"]
    assert "stage 1" in warning and "SOLVER.IMS_PER_BATCH (8)" in warning
    assert "MODEL.WEIGHTS ('my/R-101.pkl')" in warning and "SEED" not in warning

    # the trunk's weights reach stages of the same backbone (Hybrid's R-50 branches), not others
    # (Wei's HCP is a ResNet-50, the DeepLab a ResNet-101: named in the warning, no silent
    # training from scratch)
    for which, stage in _stages(_load("configs/Hybrid/voc_pipeline_R50_FPN.yaml", "MODEL.WEIGHTS", "my/R-50.pkl")).items():
        assert stage.MODEL.WEIGHTS == "my/R-50.pkl", which
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="weaksup.engine.pipeline"):
        wei = _stages(_load("configs/Wei/voc_deeplab_R101_OS8.yaml", "MODEL.WEIGHTS", "my/R-101.pkl"))
    assert wei["hcp_image"].MODEL.WEIGHTS != "my/R-101.pkl"
    assert any("hcp_image" in r.getMessage() and "MODEL.WEIGHTS" in r.getMessage() for r in caplog.records)
