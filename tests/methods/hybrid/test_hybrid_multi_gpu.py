"""Hybrid's README multi-GPU command as configs (no training): every branch at 1-8 processes,
seeded, and taking the command line's trunk weights (docs/foundation.md, "Several GPUs /
machines")."""

from conftest import REPO_ROOT, check_stages_seeded, check_world_sizes
from weaksup import load_config
from weaksup.methods.hybrid.pipeline import _branch_config

BRANCHES = ("baseline", "large", "small")


def _branches(cfg):
    return {w: _branch_config(cfg, w, "train", "pseudo.json", w) for w in BRANCHES}


def test_every_branch_runs_at_1_2_3_4_and_8_processes(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    path = "configs/Hybrid/voc_pipeline_R50_FPN.yaml"
    for which, cfg in _branches(load_config(path)).items():
        check_world_sizes(f"{path} {which}", cfg, 3)


def test_every_branch_config_is_seeded(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    check_stages_seeded("Hybrid", _branches)


def test_trunk_weights_and_seed_of_the_command_line_reach_every_branch(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    opts = ["MODEL.WEIGHTS", "my/R-50.pkl", "SEED", "5"]
    for which, cfg in _branches(
        load_config("configs/Hybrid/voc_pipeline_R50_FPN.yaml", opts)
    ).items():
        assert (cfg.MODEL.WEIGHTS, cfg.SEED) == ("my/R-50.pkl", 5), which
