"""Wei's cached stages (weaksup.engine.stages): each is redone when the settings or inputs
that made it change, and only then. Stage bodies are replaced by tiny fakes."""

import os
from pathlib import Path

from weaksup.engine.stages import Stage
from conftest import REPO_ROOT, register_dataset, stage_cfg


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
        cfg = stage_cfg("configs/Wei/demo/wei_demo_R18_FPN_GN.yaml", tmp_path, *opts)
        hcp_cfg = stage_cfg("configs/Wei/demo/hcp_hypotheses_R18_GN.yaml", tmp_path / "h")
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
    register_dataset("stages_wei_records", records, ["person"])

    def run(*opts):
        cfg = stage_cfg("configs/Wei/demo/wei_demo_R18_FPN_GN.yaml", tmp_path, *opts)
        return wei.run_proposals(cfg, "stages_wei_records", records, str(tmp_path / "proposals"))[1]

    a = run()
    run()
    b = run("WEAKSUP.WEI.NUM_CANDIDATES", "30")
    assert runs == [60, 30] and a.fingerprint != b.fingerprint
