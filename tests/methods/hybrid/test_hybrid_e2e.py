"""Hybrid networks end to end through ``train_net.main`` on real PennFudan images: GrabCut pseudo
masks with validity flags, the baseline, large and small branches a few iterations each, the fused
evaluation and the ablation table; then a kill in the middle of the large branch, resumed from its
checkpoint while every other stage is taken from the cache."""

import json
import os
import re
import sys

import pytest

from conftest import REPO_ROOT, check_imagenet_trunk, pennfudan_records, register_dataset

sys.path.insert(0, str(REPO_ROOT))

TINY_BRANCH = [
    "SOLVER.MAX_ITER", "2",
    "SOLVER.CHECKPOINT_PERIOD", "1",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.STEPS", "()",
    "SOLVER.WARMUP_ITERS", "1",
    "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "192",
    "INPUT.MIN_SIZE_TEST", "128",
    "INPUT.MAX_SIZE_TEST", "192",
    "DATALOADER.NUM_WORKERS", "0",
    "TEST.DETECTIONS_PER_IMAGE", "5",
    "WEAKSUP.HOOKS", "[]",
]  # fmt: skip


def _run(opts, log_file, config="demo_pennfudan_R18_FPN_GN.yaml"):
    """``train_net.main`` on ``configs/Hybrid/<config>`` in this process; returns what was logged to
    ``log_file`` meanwhile and the results."""
    import train_net
    from detectron2.engine import default_argument_parser

    config = REPO_ROOT / "configs" / "Hybrid" / config
    start = os.path.getsize(log_file) if os.path.exists(log_file) else 0
    args = default_argument_parser().parse_args(["--config-file", str(config), *opts])
    results = train_net.main(args)
    with open(log_file) as f:
        f.seek(start)
        return f.read(), results


def _pipeline_opts(out, branch_opts=()):
    """Register 6 PennFudan training images (boxes only) and 2 validation images; the overrides
    that run the pipeline on them with tiny branches (+ ``branch_opts``; both on every box, no
    split ablation), its output in ``out``; returns them and the training records."""
    branch = repr(TINY_BRANCH + list(branch_opts))
    records, _ = pennfudan_records(8)
    boxonly = [
        {**r, "annotations": [{k: v for k, v in a.items() if k != "segmentation"} for a in r["annotations"]]}
        for r in records[:6]
    ]  # fmt: skip
    register_dataset("hy_e2e_train_boxonly", boxonly, ["person"])
    register_dataset("hy_e2e_val", records[6:], ["person"])
    opts = [
        "OUTPUT_DIR", str(out),
        "DATASETS.TRAIN", "('hy_e2e_train_boxonly',)",
        "DATASETS.TEST", "('hy_e2e_val',)",
        "INPUT.MIN_SIZE_TEST", "128",
        "INPUT.MAX_SIZE_TEST", "192",
        "WEAKSUP.VIS.NUM_IMAGES", "1",
        "WEAKSUP.HYBRID.PSEUDO.SHARD_SIZE", "4",
        "WEAKSUP.HYBRID.BASELINE_OPTS", branch,
        "WEAKSUP.HYBRID.LARGE_OPTS", branch,
        "WEAKSUP.HYBRID.SMALL_OPTS", branch,
        # every box trains both branches first (the option); the paper's split at the end
        "WEAKSUP.HYBRID.LARGE_TRAIN_INSTANCES", "all",
        "WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES", "all",
        "WEAKSUP.HYBRID.SPLIT_ABLATION", "False",
    ]  # fmt: skip
    return opts, boxonly


def _check_fused_row(out, results):
    """The table's fused row shows the fused model's evaluation results."""
    table = (out / "ablation.md").read_text().splitlines()
    assert table[0] == "Hybrid ablation on hy_e2e_val"
    assert [l.split("|")[1].split()[0] for l in table[3:]] == [
        "baseline",
        "small",
        "large",
        "fused",
    ]
    fused = results["fused"]["hy_e2e_val"]
    cells = [c.strip() for c in table[6].split("|")[2:-1]]
    assert cells[2] == f"{fused['voc_instance']['ABO']:.2f}"
    assert cells[3] == f"{fused['segm']['AP']:.2f}"


def _kill_large_branch_after_first_checkpoint(out):
    (out / "large" / "last_checkpoint").write_text("model_0000000.pth")
    os.remove(out / "large" / "model_final.pth")


@pytest.mark.slow
def test_pipeline_all_stages_resume_and_cache(tmp_path):
    out = tmp_path / "run"
    opts, boxonly = _pipeline_opts(out)
    log_file = out / "log.txt"

    log, results = _run(opts, log_file)
    for line in (
        "stage 1: pseudo masks (grabcut) of hy_e2e_train_boxonly",
        "Validity of the pseudo masks of hy_e2e_train_boxonly",
        "baseline: training the baseline Mask R-CNN",
        "large: training the large branch",
        "small: training the small branch (Faster R-CNN on hy_e2e_train_boxonly)",
        "fused: evaluating the two trained branches together",
    ):
        assert line in log
    tasks = re.findall(r"copypaste: Task: (\w+)", log)
    assert tasks == ["bbox", "segm", "voc_instance"] * 4  # baseline, large, small, fused
    for stage in ("baseline", "large", "small"):
        assert (out / stage / "model_final.pth").is_file()
    large_cfg = (out / "large" / "config.yaml").read_text()
    assert "build_resnet_enhanced_fpn_backbone" in large_cfg
    assert "FlaggedMaskRCNNConvUpsampleHead" in large_cfg
    assert "MaskRCNNConvUpsampleHead" in (out / "baseline" / "config.yaml").read_text()
    assert "HybridSmallBranch" in (out / "small" / "config.yaml").read_text()

    # pseudo masks: every training box, GrabCut, flagged by Sec. 1's rule, read by the branches
    pseudo = json.loads((out / "pseudo_masks" / "hy_e2e_train_boxonly.json").read_text())
    anns = pseudo["annotations"]
    assert len(anns) == sum(len(r["annotations"]) for r in boxonly)
    assert {a["pseudo_method"] for a in anns} == {"grabcut"}
    assert all(
        a["mask_valid"] == (a["fallback"] is None and a["box_agreement"] >= 0.5) for a in anns
    )
    import yaml

    for stage in ("baseline", "large"):
        cfg = yaml.safe_load((out / stage / "config.yaml").read_text())
        assert cfg["WEAKSUP"]["MASK_SOURCE"] == "pseudo_json"
        assert cfg["WEAKSUP"]["PSEUDO_MASKS"] == str(
            out / "pseudo_masks" / "hy_e2e_train_boxonly.json"
        )

    # the table: four rows, six metrics, the values of each model's evaluation
    _check_fused_row(out, results)
    assert "mAP^r_0.5" in log and "| fused (ours)" in log
    assert (out / "overlays").is_dir()

    # killed in the large branch after its first checkpoint: resumed from it; the pseudo masks,
    # baseline and small branch are cached (evaluated again for the table, not trained)
    _kill_large_branch_after_first_checkpoint(out)
    trained = {
        s: (out / s / "metrics.json").read_text().count("total_loss") for s in ("baseline", "small")
    }
    log, _ = _run(opts, log_file)
    assert "stage 1: skipped" in log
    assert "baseline: already trained" in log and "small: already trained" in log
    assert re.search(r"large: resuming from .*model_0000000\.pth", log)
    assert re.search(r"Starting training from iteration 1\b", log)
    assert (out / "large" / "model_final.pth").is_file()
    for s, n in trained.items():
        assert (out / s / "metrics.json").read_text().count("total_loss") == n
    assert re.findall(r"copypaste: Task: (\w+)", log) == ["bbox", "segm", "voc_instance"] * 4

    # the small branch on the instances with invalid masks only: its own folder, trained on the
    # dataset view; the other stages stay cached
    invalid = [a["id"] for a in anns if not a["mask_valid"]]
    assert invalid  # GrabCut is seeded: these 6 images always give some invalid masks
    log, _ = _run(opts + ["WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES", "invalid"], log_file)
    assert (
        "small: training the small branch (Faster R-CNN on hy_e2e_train_boxonly_hybrid_invalid)"
        in log
    )
    assert "baseline: already trained" in log and "large: already trained" in log
    assert (out / "small_invalid" / "model_final.pth").is_file()
    from detectron2.data import DatasetCatalog

    view = DatasetCatalog.get("hy_e2e_train_boxonly_hybrid_invalid")
    assert sorted(a["id"] for r in view for a in r["annotations"]) == sorted(invalid)
    assert "small_invalid/model_final.pth" in log

    # the paper's split (Sec. 2) with the split ablation: the large branch on the valid-mask
    # instances in its own folder, the cached small_invalid; then the all / all branches (cached)
    # fused again, their rows marked in the table
    paper = ["WEAKSUP.HYBRID.LARGE_TRAIN_INSTANCES", "valid"]
    paper += [
        "WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES",
        "invalid",
        "WEAKSUP.HYBRID.SPLIT_ABLATION",
        "True",
    ]
    log, results = _run(opts + paper, log_file)
    assert (
        "large: training the large branch (Mask R-CNN on hy_e2e_train_boxonly_hybrid_valid" in log
    )
    assert (out / "large_valid" / "model_final.pth").is_file()
    valid_view = DatasetCatalog.get("hy_e2e_train_boxonly_hybrid_valid")
    assert sorted(a["id"] for r in valid_view for a in r["annotations"]) == sorted(
        a["id"] for a in anns if a["mask_valid"]
    )
    assert "small: already trained" in log and "large_valid/model_final.pth" in log
    rows = [l.split("|")[1].strip() for l in (out / "ablation.md").read_text().splitlines()[3:]]
    assert rows == [
        "baseline (Mask R-CNN, all GrabCut masks)",
        "small branch (Faster R-CNN + GrabCut)",
        "small branch (Faster R-CNN + GrabCut) [large: all, small: all]",
        "large branch (Enhanced-FPN, valid masks)",
        "large branch (Enhanced-FPN, valid masks) [large: all, small: all]",
        "fused (ours)",
        "fused (ours) [large: all, small: all]",
    ]
    assert len(results) == 7  # baseline + 2 x (large, small, fused)


@pytest.mark.slow
def test_lite0_pipeline_imagenet_branches_resume(tmp_path):
    """configs/Hybrid/demo_pennfudan_Lite0_FPN.yaml: each branch starts from the ImageNet Lite0
    trunk (the large one on Enhanced-FPN), trains, checkpoints and resumes; the fused model is
    evaluated and tabled."""
    out = tmp_path / "run"
    # after 2 iterations the pretrained branches score every detection under 0.05: keep them
    # all, so the fused model's metrics are numbers, not "no prediction"
    opts, _ = _pipeline_opts(out, ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    log_file = out / "log.txt"
    config = "demo_pennfudan_Lite0_FPN.yaml"

    log, results = _run(opts, log_file, config)
    assert log.count("Loading from weaksup://ImageNetPretrained/efficientnet_lite0.pth") == 3
    assert "contains keys that are not used by the model" not in log
    for stage, backbone in (
        ("baseline", "build_efficientnet_fpn_backbone"),
        ("large", "build_efficientnet_enhanced_fpn_backbone"),
        ("small", "build_efficientnet_fpn_backbone"),
    ):
        assert f"NAME: {backbone}" in (out / stage / "config.yaml").read_text()
        check_imagenet_trunk(out / stage / "model_final.pth", "backbone.bottom_up.")
    assert "FORMAT: RGB" in (out / "config.yaml").read_text()  # the fused model's test input
    assert re.findall(r"copypaste: Task: (\w+)", log) == ["bbox", "segm", "voc_instance"] * 4
    _check_fused_row(out, results)

    _kill_large_branch_after_first_checkpoint(out)
    log, results = _run(opts, log_file, config)
    assert "baseline: already trained" in log and "small: already trained" in log
    assert re.search(r"large: resuming from .*model_0000000\.pth", log)
    assert re.search(r"Starting training from iteration 1\b", log)
    check_imagenet_trunk(out / "large" / "model_final.pth", "backbone.bottom_up.")
    _check_fused_row(out, results)
