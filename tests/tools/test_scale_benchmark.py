"""benchmarks/scale.py runs every row on a tiny synthetic dataset and prints its table (issue 29):
its sharded-assembly row once fell behind the job's per-shard fingerprints (issue 31) unnoticed."""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "scale.py"
_spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


@pytest.mark.slow
def test_every_row_runs_and_the_table_is_printed(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "0.001"]
        + ["--wei-scale", "0.002", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    table = [l for l in r.stdout.splitlines() if l.startswith("| ")]
    assert len(table) == 1 + len(scale.ROWS), r.stdout  # the header and one line per row
    by_row = {l.split("|")[1].strip(): l for l in table[1:]}
    assert set(by_row) == set(scale.ROWS)
    # 118 images at 1/1000 of COCO, in 4 shards of 32; 21 images x 95 Wei candidates
    assert "118 images" in by_row["load dataset"]
    assert "4 shards" in by_row["sharded assembly"]
    assert "1995 x 4096" in by_row["Wei PCA"]
