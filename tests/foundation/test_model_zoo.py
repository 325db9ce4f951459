"""weaksup.model_zoo: shipped configs found by name, as Detectron2's model_zoo finds its own, and
stage configs named ``configs/...`` found from any working directory."""

import os

import pytest

from conftest import REPO_ROOT
from weaksup import load_config
from weaksup.model_zoo import get_config, get_config_file


def test_every_shipped_config_is_found_by_its_name():
    names = sorted(
        os.path.relpath(os.path.join(d, f), REPO_ROOT / "configs")
        for d, _, files in os.walk(REPO_ROOT / "configs")
        for f in files
        if f.endswith(".yaml")
    )
    assert len(names) > 80
    for name in names:
        path = get_config_file(name)
        assert os.path.samefile(path, REPO_ROOT / "configs" / name), name


def test_get_config_loads_with_overrides():
    cfg = get_config("BoxCaseg/demo_pennfudan_Lite0_FPN.yaml", ["SOLVER.MAX_ITER", "3"])
    assert cfg.WEAKSUP.PIPELINE == "BoxCaseg" and cfg.SOLVER.MAX_ITER == 3


def test_repository_relative_names_work_from_another_folder(tmp_path, monkeypatch):
    """Pipelines name their stage configs ``configs/<Method>/...``: outside the clone (an
    installed wheel) they are the shipped ones."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config("configs/BoxCaseg/demo_pennfudan_Lite0_FPN.yaml")
    stage1 = load_config(cfg.WEAKSUP.BOXCASEG.STAGE1_CONFIG)
    assert stage1.MODEL.META_ARCHITECTURE == "BoxCaseg"


def test_a_local_file_wins_and_a_missing_one_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("SOLVER:\n  MAX_ITER: 7\n")
    assert load_config("configs/mine.yaml").SOLVER.MAX_ITER == 7
    with pytest.raises(FileNotFoundError, match="'configs/nothere.yaml' not found"):
        load_config("configs/nothere.yaml")
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        get_config_file("mine.yaml")
