"""BoxSup's cached stages (weaksup.engine.stages): each is redone when the settings or inputs
that made it change, and only then. Stage bodies are replaced by tiny fakes."""

from pathlib import Path

from conftest import stage_cfg


def test_boxsup_labelling_redone_when_label_settings_change(tmp_path, stage_log):
    from weaksup.methods.boxsup.label_update import BoxSupLabelUpdate

    made = []

    def hook(*opts):
        cfg = stage_cfg("configs/BoxSup/demo/pennfudan_boxsup_R18_GN.yaml", tmp_path, *opts)
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
