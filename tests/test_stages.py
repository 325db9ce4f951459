"""The stage mechanism (weaksup.engine.stages) and each pipeline's use of it: a cached stage is
skipped only when the settings and inputs that made it are unchanged, and changing one reruns it
(and the stages after it). Stage bodies are replaced by tiny fakes so that the tests are fast;
the e2e tests run the real ones."""

import json
import logging
import os
from pathlib import Path

import pytest

from weaksup import load_config
from weaksup.engine import pipeline as engine_pipeline
from weaksup.engine.pipeline import run_training_stage, stage_done, training_stage
from weaksup.engine.stages import Stage, run_stage, stage_record_path

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Log(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def stage_log():
    handler = _Log()
    logger = logging.getLogger("weaksup.engine.stages")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old)


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


def _fake_training(monkeypatch, calls):
    """engine.pipeline.train_stage replaced: writes the files of a finished training."""

    def train(trainer_cls, cfg, stage):
        if stage_done(cfg.OUTPUT_DIR):  # a finished stage is only evaluated
            return {"stage": stage}
        calls.append(stage)
        assert not os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "model_old.pth"))
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        Path(cfg.OUTPUT_DIR, "model_final.pth").write_bytes(stage.encode())
        Path(cfg.OUTPUT_DIR, "last_checkpoint").write_text("model_final.pth")
        return {"stage": stage}

    monkeypatch.setattr(engine_pipeline, "train_stage", train)


def _cfg(path, tmp_path, *opts):
    cfg = load_config(str(REPO_ROOT / path), list(opts))
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.freeze()
    return cfg


def test_training_stage_retrains_from_scratch_when_its_config_or_weights_change(
    tmp_path, monkeypatch, stage_log
):
    """One training (e.g. DASNet's stage 2 on stage 1's checkpoint, train_net --resume)."""
    calls = []
    _fake_training(monkeypatch, calls)
    weights = tmp_path / "stage1.pth"
    weights.write_bytes(b"stage 1")
    path = "configs/DASNet/demo/pennfudan_stage2_seg_R18_FPN_GN.yaml"
    cfg = _cfg(path, tmp_path)
    run_training_stage(None, cfg, "stage 2", "t", inputs=[str(weights)])
    run_training_stage(None, cfg, "stage 2", "t", inputs=[str(weights)])
    assert calls == ["stage 2"] and "skipped" in stage_log[-1]
    Path(cfg.OUTPUT_DIR, "model_old.pth").write_bytes(b"stale")  # cleared before retraining
    run_training_stage(
        None, _cfg(path, tmp_path, "SOLVER.BASE_LR", "0.5"), "stage 2", "t", inputs=[str(weights)]
    )
    assert len(calls) == 2 and "SOLVER.BASE_LR" in stage_log[-1]
    weights.write_bytes(b"stage 1, retrained")
    lr = _cfg(path, tmp_path, "SOLVER.BASE_LR", "0.5")
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
    _fake_training(monkeypatch, calls)
    path = "configs/DASNet/demo/pennfudan_stage2_seg_R18_FPN_GN.yaml"
    run_training_stage(None, _cfg(path, tmp_path), "stage 2", "t")
    other = _cfg(
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
    changed = _cfg(path, tmp_path, "DATASETS.TEST", "('pennfudan_val',)", "SOLVER.BASE_LR", "0.123")
    run_training_stage(None, changed, "stage 2", "t")
    assert len(calls) == 2 and "SOLVER.BASE_LR" in stage_log[-1]
    assert "DATASETS.TEST" not in stage_log[-1]


def test_boxcaseg_proxy_masks_redone_when_drop_threshold_changes(tmp_path, monkeypatch, stage_log):
    """Issue 16 item 7: a finished proxy-mask json was reused after PROXY.DROP_THRESHOLD changed,
    so stage 3 trained on the old flags. Now stage 2 is redone, and stage 3's fingerprint moves."""
    from weaksup.methods.boxcaseg import pipeline as boxcaseg

    monkeypatch.chdir(REPO_ROOT)
    calls = []

    def fake_generate(cfg1, model, dataset_name, path, *, drop_threshold, **kw):
        calls.append(drop_threshold)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"drop_threshold": drop_threshold}))

    monkeypatch.setattr(boxcaseg, "generate_proxy_masks", fake_generate)
    monkeypatch.setattr(boxcaseg.BoxCasegTrainer, "build_model", classmethod(lambda cls, c: None))
    monkeypatch.setattr(
        boxcaseg,
        "SafeDetectionCheckpointer",
        lambda m: type("C", (), {"load": lambda s, w: None})(),
    )

    def stage2(threshold):
        cfg = _cfg(
            "configs/BoxCaseg/demo_pennfudan_R18_FPN_GN.yaml",
            tmp_path,
            "WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD",
            str(threshold),
            "WEAKSUP.BOXCASEG.PROXY.GT_DATASETS",
            "[]",
        )
        cfg1 = boxcaseg.stage1_config(cfg)
        names, stages = boxcaseg.make_proxy_masks(cfg, cfg1)
        cfg3 = cfg.clone()
        cfg3.defrost()
        cfg3.DATASETS.TRAIN = tuple(names)
        return stages[0], training_stage(cfg3, "stage 3", stages)

    first, third = stage2(0.6)
    stage2(0.6)
    assert calls == [0.6] and "skipped" in stage_log[-1]
    again, third_again = stage2(0.5)
    assert calls == [0.6, 0.5] and "drop_threshold: 0.6 -> 0.5" in stage_log[-1]
    assert json.loads(Path(again.output).read_text())["drop_threshold"] == 0.5
    assert third_again.fingerprint != third.fingerprint
    # a new stage-1 model (its config changed) makes stage 2 again too
    cfg = _cfg(
        "configs/BoxCaseg/demo_pennfudan_R18_FPN_GN.yaml",
        tmp_path,
        "WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD",
        "0.5",
        "WEAKSUP.BOXCASEG.STAGE1_OPTS",
        "['SOLVER.BASE_LR', '0.123']",
        "WEAKSUP.BOXCASEG.PROXY.GT_DATASETS",
        "[]",
    )
    boxcaseg.make_proxy_masks(cfg, boxcaseg.stage1_config(cfg))
    assert calls == [0.6, 0.5, 0.5] and "stage 1" in stage_log[-1]


def test_hybrid_pseudo_masks_and_branches_redone_when_their_settings_change(
    tmp_path, monkeypatch, stage_log
):
    from weaksup.engine import pseudo_masks
    from weaksup.methods.hybrid import pipeline as hybrid

    monkeypatch.chdir(REPO_ROOT)
    made, trained = [], []
    _fake_training(monkeypatch, trained)

    def fake_pseudo(train, path, method, pcfg, **kw):
        made.append(pcfg.valid_threshold)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("{}")

    monkeypatch.setattr(pseudo_masks, "generate_pseudo_masks", fake_pseudo)
    monkeypatch.setattr(pseudo_masks, "log_pseudo_mask_validity", lambda path, title: None)
    monkeypatch.setattr(hybrid.WeaksupTrainer, "build_model", classmethod(lambda cls, c: None))
    monkeypatch.setattr(hybrid.WeaksupTrainer, "test", classmethod(lambda cls, c, m: {}))
    monkeypatch.setattr(hybrid, "write_prediction_overlays", lambda *a: None)

    def run(*opts):
        split = ["WEAKSUP.HYBRID.LARGE_TRAIN_INSTANCES", "all"]
        split += [
            "WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES",
            "all",
            "WEAKSUP.HYBRID.SPLIT_ABLATION",
            "False",
        ]
        cfg = _cfg("configs/Hybrid/demo_pennfudan_R18_FPN_GN.yaml", tmp_path, *split, *opts)
        hybrid.run_hybrid_pipeline(cfg, None)

    run()
    assert made == [0.5] and trained == ["baseline", "large", "small"]
    run()
    assert made == [0.5] and len(trained) == 3
    run("WEAKSUP.HYBRID.LARGE_OPTS", "['SOLVER.BASE_LR', '0.01']")
    assert made == [0.5] and trained[3:] == ["large"]
    run(
        "MODEL.HYBRID.VALID_THRESHOLD",
        "0.7",
        "WEAKSUP.HYBRID.LARGE_OPTS",
        "['SOLVER.BASE_LR', '0.01']",
    )
    assert made == [0.5, 0.7] and trained[4:] == ["baseline", "large", "small"]


def test_wei_localization_stages_redone_when_their_settings_change(
    tmp_path, monkeypatch, stage_log
):
    from weaksup.methods.wei import pipeline as wei

    monkeypatch.chdir(REPO_ROOT)
    done = []
    monkeypatch.setattr(wei.WeiTrainer, "build_model", classmethod(lambda cls, c: None))
    monkeypatch.setattr(
        wei, "SafeDetectionCheckpointer", lambda m: type("C", (), {"load": lambda s, w: None})()
    )

    def touch(folder, ext):
        for k in ("1", "2"):
            os.makedirs(folder, exist_ok=True)
            Path(folder, wei.file_key(k) + ext).write_text("x")

    def score(cfg, model, records, score_dir, *a):
        done.append("scores")
        touch(score_dir, ".npz")

    def maps(records, refinement, score_dir, out_dirs, *a, **k):
        done.append("maps")
        for name, folder in out_dirs.items():
            touch(folder, ".png" if name == "rough_masks" else ".npz")

    monkeypatch.setattr(wei, "score_proposals", score)
    monkeypatch.setattr(wei, "refine", lambda *a: done.append("refine") or {})
    monkeypatch.setattr(wei, "write_maps_and_masks", maps)
    records = [{"image_id": "1"}, {"image_id": "2"}]
    hcp = Stage("stage 1b", str(tmp_path / "hcp"), {"lr": 1})

    def run(*opts, hcp=hcp):
        cfg = _cfg("configs/Wei/demo/wei_demo_R18_FPN_GN.yaml", tmp_path, *opts)
        hcp_cfg = _cfg("configs/Wei/demo/hcp_hypotheses_R18_GN.yaml", tmp_path / "h")
        wei.run_localization(cfg, hcp_cfg, records, hcp)

    run()
    assert done == ["scores", "refine", "maps"]
    run()
    assert len(done) == 3
    run("WEAKSUP.WEI.REFINE_KEEP", "0.3")  # the maps only
    assert done[3:] == ["refine", "maps"]
    run("WEAKSUP.WEI.REFINE_KEEP", "0.3", "WEAKSUP.WEI.SCORE_THRESH", "0.2")  # both
    assert done[5:] == ["scores", "refine", "maps"]
    run(
        "WEAKSUP.WEI.REFINE_KEEP",
        "0.3",
        "WEAKSUP.WEI.SCORE_THRESH",
        "0.2",
        hcp=Stage("stage 1b", str(tmp_path / "hcp"), {"lr": 2}),
    )  # a new classifier
    assert done[8:] == ["scores", "refine", "maps"]


def test_wei_proposals_redone_when_the_generator_settings_change(tmp_path, monkeypatch):
    from weaksup.methods.wei import pipeline as wei

    monkeypatch.chdir(REPO_ROOT)
    runs = []

    class FakeJob:
        def __init__(self, fn, output_path, desc):
            self.fn = fn

        def run(self, items, num_workers=0):
            runs.append(self.fn.keywords["num"])
            for _, path in items:
                Path(path).write_text("x")
            return len(items)

    monkeypatch.setattr(wei, "PerImageFileJob", FakeJob)
    records = [{"image_id": 1, "file_name": "a.jpg", "height": 2, "width": 2}]

    def run(*opts):
        cfg = _cfg("configs/Wei/demo/wei_demo_R18_FPN_GN.yaml", tmp_path, *opts)
        return wei.run_proposals(cfg, records, str(tmp_path / "proposals"))[1]

    a = run()
    run()
    b = run("WEAKSUP.WEI.NUM_CANDIDATES", "30")
    assert runs == [60, 30] and a.fingerprint != b.fingerprint


def test_boxsup_labelling_redone_when_label_settings_change(tmp_path, stage_log):
    from weaksup.methods.boxsup.label_update import BoxSupLabelUpdate

    made = []

    def hook(*opts):
        cfg = _cfg("configs/BoxSup/demo/pennfudan_boxsup_R18_GN.yaml", tmp_path, *opts)
        h = BoxSupLabelUpdate(cfg)

        def label(epoch, model):
            made.append((epoch, h.spec.top_k))
            Path(h.label_dir(epoch), "DONE.json").write_text("{}")

        h._label = label
        return h

    hook()._make(0, None)
    hook()._make(0, None)
    assert made == [(0, 5)] and "skipped" in stage_log[-1]
    hook("WEAKSUP.BOXSUP.TOP_K", "1")._make(0, None)
    assert made == [(0, 5), (0, 1)] and "top_k: 5 -> 1" in stage_log[-1]
    # a later labelling too; a resumed job's schedule or test settings do not matter
    hook("WEAKSUP.BOXSUP.TOP_K", "1")._make(1, None)
    hook("WEAKSUP.BOXSUP.TOP_K", "1", "SOLVER.MAX_ITER", "7", "DATASETS.TEST", "()")._make(1, None)
    assert made[2:] == [(1, 1)]
    hook("WEAKSUP.BOXSUP.TOP_K", "1", "WEAKSUP.BOXSUP.REGRESSION_WEIGHT", "1.0")._make(1, None)
    assert made[2:] == [(1, 1), (1, 1)] and "regression_weight: 3.0 -> 1.0" in stage_log[-1]


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
