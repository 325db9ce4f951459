"""Jobs of several processes (2 CPU processes over gloo, CUDA hidden): stage boundaries that
outlast the process-group timeout, one decision per sharded job, one shared output folder, the
device check, the timeout argument."""

import argparse
import logging
import os
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from conftest import launch_on_cpu
from detectron2.config import get_cfg
from detectron2.utils import comm

from weaksup import add_weaksup_config
from weaksup.engine import resolve_device
from weaksup.engine.stages import Stage, run_stage
from weaksup.pseudo.job import ShardedJob, job_output_complete


def _slow_main_stage(folder: str) -> None:
    def body():
        if comm.is_main_process():
            time.sleep(8)  # the main process alone, e.g. Wei's proposals or a json assembly
        return comm.get_rank()

    rank = run_stage(Stage("slow", os.path.join(folder, "out"), {}, is_dir=True), body)
    with open(os.path.join(folder, f"done_{rank}"), "w") as f:
        f.write(dist.get_backend())


@pytest.mark.slow
def test_main_process_stage_outlasts_a_lowered_process_group_timeout(tmp_path):
    """Rank 0 works 8 s inside a stage while rank 1 waits, under a 4 s process-group timeout."""
    launch_on_cpu(_slow_main_stage, 2, str(tmp_path), timeout=timedelta(seconds=4))
    assert sorted(p.name for p in tmp_path.glob("done_*")) == ["done_0", "done_1"]


def _environment(folder: str) -> None:
    with open(os.path.join(folder, f"env_{comm.get_rank()}"), "w") as f:
        f.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES')}|{torch.cuda.is_available()}")
        f.write(f"|{dist.get_backend()}")


@pytest.mark.slow
def test_multi_process_tests_run_with_cuda_hidden(tmp_path):
    """The processes of ``launch_on_cpu`` see no GPU and talk gloo, on any machine."""
    launch_on_cpu(_environment, 2, str(tmp_path))
    for rank in (0, 1):
        assert (tmp_path / f"env_{rank}").read_text() == "|False|gloo"


class _EmptyJob(ShardedJob):
    def __init__(self, folder: str):
        super().__init__(range(4), {"job": "test"}, os.path.join(folder, "out.json.work"), 1)


def _sharded_job_with_a_stale_view(folder: str) -> None:
    from weaksup.engine import pseudo_masks

    if comm.get_rank() == 1:  # this process alone believes the job is finished
        pseudo_masks.job_output_complete = lambda path, fingerprint: True
    job = _EmptyJob(folder)

    def compute(mine):
        for k in mine:
            job.write_shard(k, [])

    coco = {"images": [], "annotations": [], "categories": []}
    ran = pseudo_masks.run_sharded_job(job, compute, coco, "none", os.path.join(folder, "out.json"))
    with open(os.path.join(folder, f"ran_{comm.get_rank()}"), "w") as f:
        f.write(str(ran))


@pytest.mark.slow
def test_sharded_job_ranks_follow_the_main_process(tmp_path):
    """Ranks that would judge "done" differently (a stale file on one machine) all follow rank 0
    instead of one skipping the barriers the other waits at."""
    launch_on_cpu(_sharded_job_with_a_stale_view, 2, str(tmp_path), timeout=timedelta(seconds=30))
    assert [(tmp_path / f"ran_{r}").read_text() for r in (0, 1)] == ["True", "True"]
    assert job_output_complete(str(tmp_path / "out.json"), _EmptyJob(str(tmp_path)).fingerprint)


def _stage_in_own_folder(folder: str) -> None:
    mine = os.path.join(folder, f"rank{comm.get_rank()}")  # an OUTPUT_DIR per rank
    try:
        run_stage(Stage("training", os.path.join(mine, "out"), {}, is_dir=True), lambda: None)
        message = "no error"
    except RuntimeError as e:
        message = str(e)
    with open(os.path.join(folder, f"error_{comm.get_rank()}"), "w") as f:
        f.write(message)


@pytest.mark.slow
def test_output_dir_that_differs_between_ranks_is_a_clear_error(tmp_path):
    launch_on_cpu(_stage_in_own_folder, 2, str(tmp_path), timeout=timedelta(seconds=30))
    for rank in (0, 1):
        message = (tmp_path / f"error_{rank}").read_text()
        assert "rank1" in message and "rank 1" in message and "shared folder" in message


def test_missing_cuda_stops_a_multi_process_job(monkeypatch):
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.DEVICE = "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    with pytest.raises(RuntimeError, match="CUDA is not available.*driver.*2 processes"):
        resolve_device(cfg)


def test_missing_cuda_falls_back_to_the_cpu_with_a_warning(monkeypatch, caplog):
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.DEVICE = "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="weaksup.engine.device"):
        assert resolve_device(cfg) == "cpu"
    (record,) = [r for r in caplog.records if "CUDA" in r.getMessage()]
    assert record.levelno == logging.WARNING and "driver" in record.getMessage()


def test_dist_timeout_argument():
    from weaksup.engine.launch import add_dist_timeout_argument

    parser = add_dist_timeout_argument(argparse.ArgumentParser())
    assert parser.parse_args([]).dist_timeout == 30
    assert parser.parse_args(["--dist-timeout", "90"]).dist_timeout == 90


@pytest.mark.parametrize("tool", ["train_net", "make_proxy_masks"])
def test_tools_that_launch_take_dist_timeout(tool, monkeypatch):
    import importlib

    module = importlib.import_module(f"weaksup.tools.{tool}")
    launched = []
    monkeypatch.setattr(module, "launch_job", lambda main, args: launched.append(args))
    module.cli(["--config-file", "c.yaml", "--num-gpus", "2", "--dist-timeout", "90"])
    assert launched[0].dist_timeout == 90 and launched[0].num_gpus == 2
