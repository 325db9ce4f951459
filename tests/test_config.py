"""Config composition (issue 17): every shipped YAML loads; old key names are rejected with a
message naming the new key, in files and in command-line overrides."""

from pathlib import Path

import pytest
from detectron2.config import get_cfg

from weaksup import add_weaksup_config, load_config
from weaksup.config import RENAMED_KEYS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "configs").rglob("*.yaml"))


def _has(cfg, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("path", CONFIGS)
def test_every_shipped_config_loads(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # _BASE_ and stage-config paths are relative to the repo
    cfg = load_config(path)
    for key in (
        "WEAKSUP.BOXCASEG.STAGE1_CONFIG",
        "WEAKSUP.HYBRID.LARGE_CONFIG",
        "WEAKSUP.HYBRID.SMALL_CONFIG",
        "WEAKSUP.HYBRID.BASELINE_CONFIG",
        "WEAKSUP.WEI.HCP_IMAGE_CONFIG",
        "WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG",
    ):
        node = cfg
        for part in key.split("."):
            node = node[part]
        if node:  # a stage config named by a shipped config loads too
            load_config(node)


def test_renamed_keys_point_at_existing_keys():
    cfg = add_weaksup_config(get_cfg())
    assert "MODEL.WEI.NUM_PROPOSALS" in RENAMED_KEYS
    for old, new in RENAMED_KEYS.items():
        assert _has(cfg, new), (old, new)
        assert not _has(cfg, old), old


def test_old_key_in_an_override_names_the_new_key():
    with pytest.raises(
        KeyError, match="MODEL.WEI.NUM_PROPOSALS was renamed to WEAKSUP.WEI.NUM_CANDIDATES"
    ):
        add_weaksup_config(get_cfg()).merge_from_list(["MODEL.WEI.NUM_PROPOSALS", "10"])
    with pytest.raises(KeyError, match="renamed to WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD"):
        add_weaksup_config(get_cfg()).merge_from_list(
            ["MODEL.BOXCASEG.PROXY.DROP_THRESHOLD", "0.5"]
        )


def test_old_key_in_a_file_names_the_new_key(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("MODEL:\n  BOXSUP:\n    TOP_K: 3\n")
    with pytest.raises(KeyError, match="MODEL.BOXSUP.TOP_K was renamed to WEAKSUP.BOXSUP.TOP_K"):
        load_config(str(old))
    node = tmp_path / "node.yaml"
    node.write_text("MODEL:\n  WEI:\n    SCHEMES: ['AN_A']\n")
    with pytest.raises(KeyError, match="renamed to WEAKSUP.WEI"):
        load_config(str(node))


def test_new_keys_load(tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text("WEAKSUP:\n  BOXSUP:\n    TOP_K: 3\n  WEI:\n    NUM_CANDIDATES: 7\n")
    cfg = load_config(str(new), ["WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD", "0.5"])
    assert (cfg.WEAKSUP.BOXSUP.TOP_K, cfg.WEAKSUP.WEI.NUM_CANDIDATES) == (3, 7)
    assert cfg.WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD == 0.5
    assert cfg.MODEL.BOXSUP.TEST_SCALES == [1.0]  # model keys stay under MODEL
