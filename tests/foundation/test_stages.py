"""The stage mechanism (weaksup.engine.stages): a cached stage is skipped only when the settings
and inputs that made it are unchanged, and changing one reruns it (and the stages after it).
Each method's use of it is tested in tests/methods/<method>/test_<method>_stages.py. Stage bodies
are replaced by tiny fakes so that the tests are fast; the e2e tests run the real ones."""

import json
import os
import weakref
from pathlib import Path

import pytest

from conftest import REPO_ROOT, fake_training, stage_cfg
from weaksup import load_config
from weaksup.engine.pipeline import run_training_stage, train_stage, training_stage
from weaksup.engine.stages import Stage, run_stage, stage_record_path


def _file_stage(tmp_path, **settings):
    return Stage("toy", str(tmp_path / "out.json"), settings)


def _write(stage, calls):
    def body():
        calls.append(dict(stage.settings))
        Path(stage.output).write_text(json.dumps(stage.settings))

    return body


def test_skipped_only_with_the_same_fingerprint(tmp_path, stage_log):
    calls = []
    s = _file_stage(tmp_path, threshold=0.5)
    run_stage(s, _write(s, calls))
    run_stage(s, _write(s, calls))
    assert len(calls) == 1 and "toy: skipped" in stage_log[-1]
    s2 = _file_stage(tmp_path, threshold=0.7)
    run_stage(s2, _write(s2, calls))
    assert len(calls) == 2 and json.loads(Path(s2.output).read_text())["threshold"] == 0.7
    assert "running from scratch: changed threshold: 0.5 -> 0.7" in stage_log[-1]


def test_an_earlier_stage_or_an_input_file_changes_the_fingerprint(tmp_path, stage_log):
    first = _file_stage(tmp_path, a=1)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"1")
    later = Stage("later", str(tmp_path / "later.json"), {}, [first, str(weights)])
    fp = later.fingerprint
    assert (
        Stage("later", later.output, {}, [_file_stage(tmp_path, a=2), str(weights)]).fingerprint
        != fp
    )
    weights.write_bytes(b"22")
    assert later.fingerprint != fp


def test_existing_output_without_a_record_is_made_again(tmp_path, stage_log):
    calls = []
    s = _file_stage(tmp_path, a=1)
    Path(s.output).write_text("made by an older version")
    run_stage(s, _write(s, calls))
    assert len(calls) == 1 and "no record of what made" in stage_log[-1]


def test_interrupted_stage_is_resumed_not_cleared(tmp_path, stage_log):
    s = Stage("dir", str(tmp_path / "d"), {"a": 1}, is_dir=True)

    def crash():
        Path(s.output, "part_0").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(s, crash)
    seen = []
    run_stage(s, lambda: seen.append(sorted(os.listdir(s.output))))
    assert "part_0" in seen[0] and "resuming" in stage_log[-1]
    assert json.loads(Path(stage_record_path(s)).read_text())["complete"] is True


def test_training_stage_retrains_from_scratch_when_its_config_or_weights_change(
    tmp_path, monkeypatch, stage_log
):
    """One training (e.g. DASNet's stage 2 on stage 1's checkpoint, train_net --resume)."""
    calls = []
    fake_training(monkeypatch, calls)
    weights = tmp_path / "stage1.pth"
    weights.write_bytes(b"stage 1")
    path = "configs/DASNet/demo/pennfudan_stage2_seg_R18_FPN_GN.yaml"
    cfg = stage_cfg(path, tmp_path)
    run_training_stage(None, cfg, "stage 2", "t", inputs=[str(weights)])
    run_training_stage(None, cfg, "stage 2", "t", inputs=[str(weights)])
    assert calls == ["stage 2"] and "skipped" in stage_log[-1]
    Path(cfg.OUTPUT_DIR, "model_old.pth").write_bytes(b"stale")  # cleared before retraining
    run_training_stage(
        None,
        stage_cfg(path, tmp_path, "SOLVER.BASE_LR", "0.5"),
        "stage 2",
        "t",
        inputs=[str(weights)],
    )
    assert len(calls) == 2 and "SOLVER.BASE_LR" in stage_log[-1]
    weights.write_bytes(b"stage 1, retrained")
    lr = stage_cfg(path, tmp_path, "SOLVER.BASE_LR", "0.5")
    run_training_stage(None, lr, "stage 2", "t", inputs=[str(weights)])
    assert len(calls) == 3 and "input" in stage_log[-1]
    # where it is written and how often it is evaluated do not change what it makes
    moved = load_config(str(REPO_ROOT / path), ["SOLVER.BASE_LR", "0.5", "TEST.EVAL_PERIOD", "7"])
    moved.OUTPUT_DIR = lr.OUTPUT_DIR
    assert training_stage(moved, "x").fingerprint == training_stage(lr, "x").fingerprint


def test_training_stage_reused_when_only_the_evaluation_datasets_change(
    tmp_path, monkeypatch, stage_log
):
    """A rerun with another DATASETS.TEST / WEAKSUP.EVALUATORS evaluates the cached model (the
    Hybrid pipeline's promise)."""
    calls = []
    fake_training(monkeypatch, calls)
    path = "configs/DASNet/demo/pennfudan_stage2_seg_R18_FPN_GN.yaml"
    run_training_stage(None, stage_cfg(path, tmp_path), "stage 2", "t")
    other = stage_cfg(
        path,
        tmp_path,
        "DATASETS.TEST",
        "('pennfudan_val_small',)",
        "WEAKSUP.EVALUATORS",
        "['coco']",
    )
    run_training_stage(None, other, "stage 2", "t")
    assert calls == ["stage 2"] and "skipped" in stage_log[-1]
    # ... but a training setting that changed retrains, and the log names it, not the datasets
    changed = stage_cfg(
        path, tmp_path, "DATASETS.TEST", "('pennfudan_val',)", "SOLVER.BASE_LR", "0.123"
    )
    run_training_stage(None, changed, "stage 2", "t")
    assert len(calls) == 2 and "SOLVER.BASE_LR" in stage_log[-1]
    assert "DATASETS.TEST" not in stage_log[-1]


def _stage_at(monkeypatch, cfg, processes):
    """``training_stage(cfg)`` as a job of ``processes`` processes builds it."""
    from detectron2.utils import comm

    with monkeypatch.context() as m:
        m.setattr(comm, "get_world_size", lambda: processes)
        return training_stage(cfg, "stage 2")


def test_interrupted_training_resumes_only_at_the_world_size_its_schedule_was_scaled_to(
    tmp_path, monkeypatch, stage_log
):
    """With SOLVER.REFERENCE_WORLD_SIZE the batch, learning rate and iterations follow the number
    of processes: a checkpoint of a run interrupted at 2 processes is not resumed on 1's schedule
    (a clear error, nothing removed); a finished stage is used at any size, and without the
    reference size (a fixed total batch) an interrupted one resumes at any size."""
    path = "configs/DASNet/demo/pennfudan_stage2_seg_R18_FPN_GN.yaml"
    cfg = stage_cfg(path, tmp_path, "SOLVER.REFERENCE_WORLD_SIZE", "1")

    def crash(stage):
        Path(stage.output, "model_0000009.pth").write_bytes(b"9 iterations at 2 processes")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        interrupted = _stage_at(monkeypatch, cfg, 2)
        run_stage(interrupted, lambda: crash(interrupted))
    seen = []
    with pytest.raises(
        RuntimeError, match=r"cannot be resumed .*SOLVER.REFERENCE_WORLD_SIZE.*2 -> 1"
    ):
        run_stage(_stage_at(monkeypatch, cfg, 1), lambda: seen.append(1))
    assert not seen and Path(cfg.OUTPUT_DIR, "model_0000009.pth").is_file()
    run_stage(_stage_at(monkeypatch, cfg, 2), lambda: seen.append(2))  # as it was: resumed
    assert seen == [2] and "resuming" in stage_log[-1]
    run_stage(_stage_at(monkeypatch, cfg, 1), lambda: seen.append(1))  # finished: used as it is
    assert seen == [2] and "skipped" in stage_log[-1]

    fixed = stage_cfg(path, tmp_path / "fixed", "SOLVER.REFERENCE_WORLD_SIZE", "0")
    with pytest.raises(RuntimeError, match="killed"):
        interrupted = _stage_at(monkeypatch, fixed, 2)
        run_stage(interrupted, lambda: crash(interrupted))
    run_stage(_stage_at(monkeypatch, fixed, 1), lambda: seen.append(1))
    assert seen == [2, 1] and "resuming" in stage_log[-1]


def test_sharded_jobs_share_one_notion_of_done(tmp_path):
    """Pseudo masks and proxy masks run on one ShardedJob: finished means the output json carries
    the job's fingerprint (the shard size changes the shard files, not the output)."""
    from weaksup.engine.pseudo_masks import run_sharded_job
    from weaksup.pseudo.job import ShardedJob, job_output_complete

    coco = {"images": [], "categories": [], "annotations": [{"id": i} for i in range(5)]}
    out = str(tmp_path / "masks.json")
    computed = []

    def job(thr, size=2):
        j = ShardedJob(range(5), {"thr": thr}, out + ".work", size)

        def compute(mine):
            for k in j.pending(mine):
                computed.append(k)
                j.write_shard(k, [_result(i, thr) for i in j.shards[k]])

        return j, compute

    a, compute = job(0.5)
    assert run_sharded_job(a, compute, coco, "toy", out) and computed == [0, 1, 2]
    assert job_output_complete(out, a.fingerprint) and not os.path.exists(out + ".work")
    assert not run_sharded_job(*job(0.5), coco, "toy", out)  # done: kept
    assert job(0.5, size=3)[0].fingerprint == a.fingerprint
    assert job(0.5, size=3)[0].work_fingerprint != a.work_fingerprint
    b, compute = job(0.9)
    assert not job_output_complete(out, b.fingerprint)
    assert run_sharded_job(b, compute, coco, "toy", out) and computed[3:] == [0, 1, 2]
    anns = json.loads(Path(out).read_text())["annotations"]
    assert {a["box_agreement"] for a in anns} == {0.9}


def _result(i, value):
    return {"id": i, "segmentation": None, "area": 0, "box_agreement": value,
            "mask_valid": True, "fallback": None}  # fmt: skip


class _CycleTrainer:
    """A trainer shaped as Detectron2's: its EvalHook's function closes over the trainer."""

    alive = []

    def __init__(self, cfg):
        from detectron2.engine import hooks

        self.model = object()  # stands for the model, optimizer and loader workers
        self._hooks = [hooks.EvalHook(0, lambda: self.test())]
        _CycleTrainer.alive.append(weakref.ref(self))

    def resume_or_load(self, resume):
        pass

    def train(self):
        self._last_eval_results = {"segm": {"AP": 1.0}}

    def test(self):
        return {}


def test_a_finished_training_stage_releases_its_trainer(tmp_path):
    """The next stage must not run with the previous one's model and loader workers alive."""
    import gc

    cfg = load_config(str(REPO_ROOT / "configs/Base-Weaksup-RCNN-FPN.yaml"))
    cfg.OUTPUT_DIR = str(tmp_path)
    gc.disable()  # a collection must not hide a cycle
    try:
        assert train_stage(_CycleTrainer, cfg, "stage") == {"segm": {"AP": 1.0}}
        assert [ref() for ref in _CycleTrainer.alive] == [None]
    finally:
        gc.enable()
