"""BoxCaseg end to end through ``train_net.main``: all three stages on real data (PennFudan boxes +
ECSSD salient images), a resume in the middle of stage 1, cached stages on a rerun, proxy masks
read back, for the from-scratch demo and the ImageNet Lite0-FPN one (whose checkpoints must hold
the ImageNet trunk); and ``configs/boxcaseg_coco.yaml`` (HRNetV2-W48 + R-101-FPN) for one
iteration of each stage on a tiny COCO-format set (nuts_coco)."""

import json
import os
import re
import sys

import pytest
import yaml

from conftest import (
    REPO_ROOT,
    check_imagenet_trunk,
    pennfudan_records,
    register_dataset,
    shared_path,
)

sys.path.insert(0, str(REPO_ROOT))

TINY_STAGE1 = [
    "SOLVER.MAX_ITER", "4",
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "SOLVER.WARMUP_ITERS", "1",
    "INPUT.BOXCASEG.PATCH_SIZE", "48",
    "INPUT.BOXCASEG.SALIENT_RESIZE", "56",
    "INPUT.BOXCASEG.TEST_SIZE", "48",
    "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip
TINY_STAGE3 = [
    "SOLVER.MAX_ITER", "2",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.STEPS", "()",
    "SOLVER.WARMUP_ITERS", "1",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "160",
    "INPUT.MAX_SIZE_TEST", "256",
    "DATALOADER.NUM_WORKERS", "0",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.9",
    "WEAKSUP.VIS.NUM_IMAGES", "1",
]  # fmt: skip


def _salient(name, n):
    from weaksup.data.datasets import load_salient_images

    root = shared_path("ECSSD")
    records = load_salient_images(str(root / "images"), str(root / "ground_truth_mask"))[:n]
    register_dataset(name, records, ["object"])


def _run(config, opts, log_file):
    """``train_net.main`` in this process; returns what was logged to ``log_file`` meanwhile."""
    import train_net
    from detectron2.engine import default_argument_parser

    start = os.path.getsize(log_file) if os.path.exists(log_file) else 0
    args = default_argument_parser().parse_args(["--config-file", str(config), *opts])
    train_net.main(args)
    with open(log_file) as f:
        f.seek(start)
        return f.read()


def _tasks(log):
    """The evaluation tasks Detectron2 printed (``copypaste: Task: ...``), in order."""
    return re.findall(r"copypaste: Task: (\w+)", log)


IMAGENET_LITE0 = "Loading from weaksup://ImageNetPretrained/efficientnet_lite0.pth"


@pytest.mark.slow
@pytest.mark.parametrize(
    "config_name", ["demo_pennfudan_R18_FPN_GN.yaml", "demo_pennfudan_Lite0_FPN.yaml"]
)
def test_pipeline_three_stages_resume_stage1_and_cache(tmp_path, config_name):
    records, _ = pennfudan_records(8)
    boxonly = [
        {**r, "annotations": [{k: v for k, v in a.items() if k != "segmentation"} for a in r["annotations"]]}
        for r in records[:6]
    ]  # fmt: skip
    register_dataset("bc_e2e_train_boxonly", boxonly, ["person"])
    register_dataset("bc_e2e_train", records[:6], ["person"])
    register_dataset("bc_e2e_val", records[6:], ["person"])
    _salient("bc_e2e_salient", 12)
    out = tmp_path / "run"
    stage1 = [
        *TINY_STAGE1,
        "DATASETS.TRAIN", "('bc_e2e_train_boxonly',)",
        "DATASETS.SALIENT_TRAIN", "('bc_e2e_salient',)",
        "DATASETS.TEST", "('bc_e2e_val',)",
    ]  # fmt: skip
    pretrained = "Lite0" in config_name
    if pretrained:  # FPN: patch sides a multiple of its stride 32
        stage1 += ["INPUT.BOXCASEG.PATCH_SIZE", "64", "INPUT.BOXCASEG.SALIENT_RESIZE", "72"]
        stage1 += ["INPUT.BOXCASEG.TEST_SIZE", "64"]
    opts = [
        *TINY_STAGE3,
        "OUTPUT_DIR", str(out),
        "DATASETS.TRAIN", "('bc_e2e_train_boxonly',)",
        "DATASETS.TEST", "('bc_e2e_val',)",
        "WEAKSUP.BOXCASEG.PROXY.GT_DATASETS", "['bc_e2e_train']",
        "WEAKSUP.BOXCASEG.STAGE1_OPTS", repr(stage1),
    ]  # fmt: skip
    config = REPO_ROOT / "configs" / "BoxCaseg" / config_name
    log_file = out / "log.txt"
    proxy = out / "proxy_masks" / "bc_e2e_train_boxonly.json"

    log = _run(config, opts, log_file)
    assert "stage 1: BoxCaseg network" in log and "training from the start" in log
    assert "stage 2 (bc_e2e_train_boxonly): running from scratch" in log
    assert "Proxy-mask quality" in log and "stage 3: Proxy Mask R-CNN" in log
    assert "box_mask_quality" in log  # stage-1 evaluation, one mask per GT box
    assert _tasks(log) == ["box_mask_quality", "bbox", "segm", "voc_instance"]
    assert (out / "stage1" / "model_final.pth").is_file() and (out / "model_final.pth").is_file()
    # stages 1 and 3 both start from the ImageNet trunk (and nothing else loads it)
    assert log.count(IMAGENET_LITE0) == (2 if pretrained else 0)
    if pretrained:
        assert "contains keys that are not used by the model" not in log
        for weights in (out / "stage1" / "model_final.pth", out / "model_final.pth"):
            check_imagenet_trunk(weights, "backbone.bottom_up.")

    # proxy masks written in the pseudo-mask format and read back for stage 3
    from detectron2.data import DatasetCatalog

    anns = json.loads(proxy.read_text())["annotations"]
    assert len(anns) == sum(len(r["annotations"]) for r in boxonly)
    assert {a["pseudo_method"] for a in anns} == {"boxcaseg"}
    used = yaml.safe_load((out / "config.yaml").read_text())  # the stage-3 (pipeline) config
    drop = used["WEAKSUP"]["BOXCASEG"]["PROXY"]["DROP_THRESHOLD"]
    assert all(a["mask_valid"] == (a["box_agreement"] >= drop) for a in anns)
    # each mask lies in its box (pasted in it, Sec. 3.4); area and agreement are the mask's
    import numpy as np
    import pycocotools.mask as mask_util

    from weaksup.pseudo import box_agreement

    boxes = [a["bbox"] for r in boxonly for a in r["annotations"]]  # XYXY_ABS, dataset order
    for a, (x0, y0, x1, y1) in zip(anns, boxes):
        mask = mask_util.decode(a["segmentation"]).astype(bool)
        outside = mask.copy()
        outside[int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1] = False
        assert not outside.any() and a["area"] == mask.sum()
        assert a["box_agreement"] == pytest.approx(box_agreement(mask, (x0, y0, x1, y1)))
    read = DatasetCatalog.get("bc_e2e_train_boxonly_boxcaseg_proxy")
    assert [a["mask_valid"] for d in read for a in d["annotations"]] == [
        a["mask_valid"] for a in anns
    ]

    # killed in the middle of stage 1 (after the checkpoint of iteration 2): resumes from it and
    # redoes the later stages, whose inputs are gone
    (out / "stage1" / "last_checkpoint").write_text("model_0000001.pth")
    for f in ("stage1/model_final.pth", "stage1/model_0000003.pth", "last_checkpoint"):
        os.remove(out / f)
    proxy.unlink()
    log = _run(config, opts, log_file)
    assert re.search(r"stage 1: resuming from .*model_0000001\.pth", log)
    assert re.search(r"Starting training from iteration 2\b", log)
    with open(out / "stage1" / "metrics.json") as f:
        iterations = [r["iteration"] for r in map(json.loads, f) if "total_loss" in r]
    assert iterations[-1] == 3
    assert "stage 2 (bc_e2e_train_boxonly): resuming" in log

    # everything cached: stages 1-2 skipped, stage 3 only evaluates
    trained = (out / "metrics.json").read_text().count("total_loss")
    log = _run(config, opts, log_file)
    assert "stage 1: skipped" in log and "stage 2 (bc_e2e_train_boxonly): skipped" in log
    assert "stage 3: already trained" in log
    assert (out / "metrics.json").read_text().count("total_loss") == trained
    assert _tasks(log) == ["bbox", "segm", "voc_instance"]


@pytest.mark.slow
def test_coco_config_one_iteration_of_each_stage_on_nuts(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from weaksup.data.datasets import register_coco_instances

    nuts = shared_path("nuts_coco", "data")
    if "bc_nuts_all" not in DatasetCatalog.list():
        register_coco_instances(
            "bc_nuts_all", {}, str(nuts / "trainval.json"), str(nuts / "images")
        )
    records = DatasetCatalog.get("bc_nuts_all")[:3]
    classes = MetadataCatalog.get("bc_nuts_all").thing_classes
    boxonly = [
        {**r, "annotations": [{k: v for k, v in a.items() if k != "segmentation"} for a in r["annotations"]]}
        for r in records
    ]  # fmt: skip
    register_dataset("bc_nuts", records, classes)
    register_dataset("bc_nuts_boxonly", boxonly, classes)
    _salient("bc_nuts_salient", 4)
    stage1 = [
        *TINY_STAGE1,
        "SOLVER.MAX_ITER", "1",
        "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.REFERENCE_WORLD_SIZE", "0",  # the paper's batch scaling off: 2 patches as given
        "DATALOADER.BOX_SALIENT_RATIO", "(1, 1)",
        "DATASETS.TRAIN", "('bc_nuts_boxonly',)",
        "DATASETS.SALIENT_TRAIN", "('bc_nuts_salient',)",
        "DATASETS.TEST", "()",
    ]  # fmt: skip
    opts = [
        *TINY_STAGE3,
        "SOLVER.MAX_ITER", "1",
        "SOLVER.IMS_PER_BATCH", "1",
        "SOLVER.REFERENCE_WORLD_SIZE", "0",
        "MODEL.WEIGHTS", "",
        "MODEL.ROI_HEADS.NUM_CLASSES", "3",
        "OUTPUT_DIR", str(tmp_path / "coco"),
        "DATASETS.TRAIN", "('bc_nuts_boxonly',)",
        "DATASETS.TEST", "('bc_nuts',)",
        "WEAKSUP.BOXCASEG.PROXY.GT_DATASETS", "['bc_nuts']",
        "WEAKSUP.BOXCASEG.STAGE1_OPTS", repr(stage1),
    ]  # fmt: skip
    log = _run(REPO_ROOT / "configs" / "boxcaseg_coco.yaml", opts, tmp_path / "coco" / "log.txt")
    config1 = (tmp_path / "coco" / "stage1" / "config.yaml").read_text()
    assert "WIDTH: 48" in config1 and "NAME: build_hrnet_backbone" in config1
    assert "DEPTH: 101" in (tmp_path / "coco" / "config.yaml").read_text()
    assert "stage 2 (bc_nuts_boxonly): running from scratch" in log
    anns = json.loads((tmp_path / "coco" / "proxy_masks" / "bc_nuts_boxonly.json").read_text())
    assert len(anns["annotations"]) == sum(len(r["annotations"]) for r in records)
    assert _tasks(log) == ["bbox", "segm"]
