"""The PseudoMasks pipeline (README demo): pseudo masks of the training boxes are made
once per job setting, then train the model, which resumes; ground-truth masks are never read."""

import json

import pycocotools.mask as mask_util
import pytest

from conftest import REPO_ROOT, copypaste_lines, run_train_net

CONFIG = (
    REPO_ROOT / "configs" / "PseudoMasks" / "demo" / "pennfudan_consensus_mask_rcnn_Lite0_FPN.yaml"
)
SMALL = [
    "MODEL.DEVICE", "cpu",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.STEPS", "()",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "160",
    "INPUT.MAX_SIZE_TEST", "256",
    "DATALOADER.NUM_WORKERS", "0",
    "WEAKSUP.PSEUDO_STAGE.METHOD", "ellipse",  # the fast method: the stage, not the method, is tested
    "WEAKSUP.PSEUDO_STAGE.NUM_WORKERS", "0",
    "WEAKSUP.VIS.NUM_IMAGES", "1",
    "DATASETS.TEST", "()",
]  # fmt: skip


@pytest.mark.slow
def test_pseudo_masks_cached_per_setting_then_training_resumes(tmp_path):
    out = tmp_path / "run"
    log = run_train_net(CONFIG, *SMALL, "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "1")
    pseudo = out / "pseudo_masks" / "pennfudan_train_boxonly_ellipse.json"
    assert f"Wrote {pseudo}" in log
    assert "stage 2: no checkpoint" in log and (out / "model_final.pth").is_file()
    anns = json.loads(pseudo.read_text())["annotations"]
    # ellipse masks, not the dataset's own: each fills about pi / 4 of its box
    fill = [mask_util.area(a["segmentation"]) / (a["bbox"][2] * a["bbox"][3]) for a in anns]
    assert len(anns) > 100 and all(0.6 < f < 0.9 for f in fill)
    stamp = pseudo.stat().st_mtime_ns

    log = run_train_net(CONFIG, *SMALL, "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "1")
    assert "stage 1: skipped" in log and "stage 2: skipped" in log
    assert "stage 2: already trained, evaluating" in log
    assert pseudo.stat().st_mtime_ns == stamp

    # a changed setting of stage 1 redoes it, and the training on its masks
    log = run_train_net(
        CONFIG, *SMALL, "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "1",
        "WEAKSUP.PSEUDO_STAGE.VALID_THRESHOLD", "0.9",
    )  # fmt: skip
    assert f"Wrote {pseudo}" in log and pseudo.stat().st_mtime_ns != stamp
    assert "stage 1: running from scratch: changed" in log
    assert "stage 2: running from scratch: changed" in log
    assert not copypaste_lines(log)  # no test set: nothing evaluated
