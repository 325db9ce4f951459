"""Hybrid's cached stages (weaksup.engine.stages): each is redone when the settings or inputs
that made it change, and only then. Stage bodies are replaced by tiny fakes."""

from pathlib import Path

from conftest import REPO_ROOT, fake_training, stage_cfg


def test_hybrid_pseudo_masks_and_branches_redone_when_their_settings_change(
    tmp_path, monkeypatch, stage_log
):
    from weaksup.engine import pseudo_masks
    from weaksup.methods.hybrid import pipeline as hybrid

    monkeypatch.chdir(REPO_ROOT)
    made, trained = [], []
    fake_training(monkeypatch, trained)

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
        cfg = stage_cfg("configs/Hybrid/demo_pennfudan_R18_FPN_GN.yaml", tmp_path, *split, *opts)
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
