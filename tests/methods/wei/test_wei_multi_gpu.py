"""Wei et al.'s README multi-GPU command as configs (no training): the HCP stages and the DeepLab
at 1-8 processes, seeded, and the command line's ResNet-101 weights not silently given to the
ResNet-50 HCP (docs/foundation.md, "Several GPUs / machines")."""

import logging

from conftest import REPO_ROOT, check_stages_seeded, check_world_sizes
from weaksup import load_config
from weaksup.methods.wei.pipeline import hcp_config

PATH = "configs/Wei/voc_deeplab_R101_OS8.yaml"


def _hcp(cfg):
    w = cfg.WEAKSUP.WEI
    return {
        "hcp_image": hcp_config(cfg, w.HCP_IMAGE_CONFIG, "hcp_image", []),
        "hcp_hypotheses": hcp_config(cfg, w.HCP_HYPOTHESES_CONFIG, "hcp_hypotheses", []),
    }


def test_every_stage_runs_at_1_2_3_4_and_8_processes(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    cfg = load_config(PATH)
    check_world_sizes(PATH, cfg, 8)
    for name, stage in _hcp(cfg).items():
        check_world_sizes(f"{PATH} {name}", stage, 8)


def test_every_stage_config_is_seeded(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    check_stages_seeded("Wei", _hcp)


def test_resnet_101_weights_are_not_given_to_the_resnet_50_hcp_silently(monkeypatch, caplog):
    monkeypatch.chdir(REPO_ROOT)
    with caplog.at_level(logging.WARNING, logger="weaksup.engine.pipeline"):
        stages = _hcp(load_config(PATH, ["MODEL.WEIGHTS", "my/R-101.pkl", "SEED", "3"]))
    for name, stage in stages.items():
        assert stage.MODEL.WEIGHTS != "my/R-101.pkl" and stage.SEED == 3, name
        assert any(
            name in r.getMessage() and "MODEL.WEIGHTS" in r.getMessage() for r in caplog.records
        )
