"""BoxCaseg's cached stages (weaksup.engine.stages): each is redone when the settings or inputs
that made it change, and only then. Stage bodies are replaced by tiny fakes."""

import json
from pathlib import Path

from weaksup.engine.pipeline import training_stage
from weaksup.utils.image_io import image_size
from conftest import REPO_ROOT, shared_path, stage_cfg


def test_boxcaseg_proxy_masks_redone_when_drop_threshold_changes(tmp_path, monkeypatch, stage_log):
    """Issue 16 item 7: a finished proxy-mask json was reused after PROXY.DROP_THRESHOLD changed,
    so stage 3 trained on the old flags. Now stage 2 is redone, and stage 3's fingerprint moves."""
    from weaksup.methods.boxcaseg import pipeline as boxcaseg

    monkeypatch.chdir(REPO_ROOT)
    calls = []

    def fake_generate(cfg1, model, dataset_name, path, *, drop_threshold, **kw):
        calls.append(drop_threshold)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # a COCO json of one real image: stage 3 reads its dataset by content
        png = str(shared_path("PennFudanPed", "PNGImages", "FudanPed00001.png"))
        height, width = image_size(png)
        image = {"id": 1, "file_name": png, "height": height, "width": width}
        categories = [{"id": 1, "name": "person"}]
        coco = {"images": [image], "annotations": [], "categories": categories}
        Path(path).write_text(json.dumps({**coco, "drop_threshold": drop_threshold}))

    monkeypatch.setattr(boxcaseg, "generate_proxy_masks", fake_generate)
    monkeypatch.setattr(boxcaseg.BoxCasegTrainer, "build_model", classmethod(lambda cls, c: None))
    monkeypatch.setattr(
        boxcaseg,
        "SafeDetectionCheckpointer",
        lambda m: type("C", (), {"load": lambda s, w: None})(),
    )

    def stage2(threshold):
        cfg = stage_cfg(
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
    cfg = stage_cfg(
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
