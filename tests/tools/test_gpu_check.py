"""benchmarks/gpu_check.py on a machine without CUDA says so and exits 0 (issue 29)."""

import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_gpu_check_without_cuda_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO_ROOT)}
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no CUDA device here" in r.stdout and "nothing to check" in r.stdout
