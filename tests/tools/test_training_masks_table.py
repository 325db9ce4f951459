"""tools/training_masks_table.py: the final evaluation of each run, seeds averaged with their
half range, mask AP as a share of the reference row's."""

import json
import runpy

import pytest

from conftest import REPO_ROOT

TOOL = runpy.run_path(str(REPO_ROOT / "tools" / "training_masks_table.py"))
KEYS = [key for _, key in TOOL["COLUMNS"]]


def _run(path, value):
    path.mkdir()
    records = [{"iteration": 9, "total_loss": 1.0}, {"iteration": 9, **{k: value for k in KEYS}}]
    (path / "metrics.json").write_text("\n".join(map(json.dumps, records)) + "\n")
    return str(path)


def test_table(tmp_path):
    box = [_run(tmp_path / "b1", 10.0), _run(tmp_path / "b2", 20.0)]
    gt = _run(tmp_path / "gt", 40.0)
    table = TOOL["main"](["--reference", "gt", f"box={','.join(box)}", f"gt={gt}"])
    lines = table.splitlines()
    assert lines[2] == "| box | 2 | " + " | ".join(["15.0 ± 5.0"] * 7) + " | 37.5 ± 12.5 % |"
    assert lines[3] == "| gt | 1 | " + " | ".join(["40.0"] * 7) + " | 100.0 % |"


def test_unfinished_run(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text(json.dumps({"iteration": 3}) + "\n")
    with pytest.raises(ValueError, match="no record with the final evaluation"):
        TOOL["final_metrics"](str(tmp_path / "r"))
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        TOOL["final_metrics"](str(tmp_path / "missing"))
