"""BoxCaseg stage 2: merge and drop on hand-built masks; proxy-mask generation on real images,
interrupted and resumed, written in the pseudo-mask json format and read back for training."""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from conftest import launch_on_cpu, pennfudan_records, register_dataset, small_boxcaseg_cfg
from weaksup import add_weaksup_config
from weaksup.data import BoxSupervisedDatasetMapper
from weaksup.data.datasets import load_coco_json
from weaksup.pseudo import job as job_module
from weaksup.methods.boxcaseg import proxy_masks as proxy_module
from weaksup.methods.boxcaseg.proxy_masks import (
    generate_proxy_masks,
    merge_and_drop,
    proxy_mask_quality,
)


def _filled(h, w, box):
    m = np.zeros((h, w), dtype=bool)
    m[box[1] : box[3], box[0] : box[2]] = True
    return m


def test_merge_gives_shared_pixels_to_the_smaller_object_and_drop_judges_merged_masks():
    boxes = np.array([[0, 0, 10, 10], [8, 0, 20, 10], [2, 12, 18, 20]], dtype=np.float64)
    masks = np.stack([_filled(20, 20, b.astype(int)) for b in boxes])
    masks[2] = _filled(20, 20, [6, 14, 14, 18])  # far smaller than its box: a poor proxy mask

    merged, agreement, valid = merge_and_drop(masks, boxes, merge=True, drop_threshold=0.95)
    # columns 8-9 are claimed by masks 0 (area 100) and 1 (area 120): the smaller one keeps them
    assert merged[0, :10, 8:10].all() and not merged[1, :, 8:10].any()
    assert not (merged.sum(0) > 1).any()
    # mask 1's tight box is now [10, 0, 20, 10]: agreement 100 / 120, below 0.95, dropped
    assert agreement[0] == 1.0 and agreement[1] == pytest.approx(100 / 120)
    assert agreement[2] == pytest.approx(32 / 128)
    assert valid.tolist() == [True, False, False]

    unmerged, agreement, valid = merge_and_drop(masks, boxes, merge=False, drop_threshold=0.95)
    assert (
        (unmerged == masks).all() and agreement[1] == 1.0 and valid.tolist() == [True, True, False]
    )
    assert merge_and_drop(masks, boxes, True, 0.0)[2].all()  # threshold 0: nothing dropped


def _tiny_model_cfg():
    cfg = small_boxcaseg_cfg()
    cfg.MODEL.BOXCASEG.HEAD_CONV_DIM = 8
    cfg.MODEL.BOXCASEG.MASK_THRESHOLD = 0.45
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg


def _register_boxonly(name, n):
    """The first ``n`` PennFudan images with boxes only, registered as ``name``."""
    records, _ = pennfudan_records(n)
    boxonly = [
        {**r, "annotations": [{k: v for k, v in a.items() if k != "segmentation"} for a in r["annotations"]]}
        for r in records
    ]  # fmt: skip
    register_dataset(name, boxonly, ["person"])


def test_generate_resume_and_read_back(tmp_path, monkeypatch):
    records, gt_masks = pennfudan_records(5)
    _register_boxonly("boxcaseg_test_boxonly", 5)
    register_dataset("boxcaseg_test_gt", records, ["person"])
    cfg = _tiny_model_cfg()
    torch.manual_seed(0)
    model = build_model(cfg)
    out = str(tmp_path / "proxy.json")

    # interrupted after the first of three shards
    real_write, calls = job_module.write_json_atomic, []

    def failing_write(obj, path):
        calls.append(path)
        if len(calls) == 3:  # job.json, shard 0, then killed while writing shard 1
            raise KeyboardInterrupt("killed")
        real_write(obj, path)

    monkeypatch.setattr(job_module, "write_json_atomic", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_proxy_masks(cfg, model, "boxcaseg_test_boxonly", out, shard_size=2, progress=False)
    monkeypatch.setattr(job_module, "write_json_atomic", real_write)
    assert sorted(p.name for p in (tmp_path / "proxy.json.work").iterdir()) == [
        "job.json",
        "shard_000000.json",
    ]
    shard_file = tmp_path / "proxy.json.work" / "shard_000000.json"
    first_shard = json.loads(shard_file.read_text())["results"]

    inferred, loaders = [], []
    monkeypatch.setattr(
        model, "inference", lambda x, f=model.inference: inferred.append(len(x)) or f(x)
    )
    monkeypatch.setattr(
        proxy_module,
        "build_detection_test_loader",
        lambda *a, f=proxy_module.build_detection_test_loader, **k: loaders.append(1) or f(*a, **k),
    )
    generate_proxy_masks(cfg, model, "boxcaseg_test_boxonly", out, shard_size=2, progress=False)
    assert sum(inferred) == 3  # only the 3 images of the unfinished shards
    assert len(loaders) == 1  # one loader (one start of its workers) for both shards
    assert not (tmp_path / "proxy.json.work").exists()

    data = json.loads(open(out).read())
    anns = data["annotations"]
    assert len(anns) == sum(len(r["annotations"]) for r in records)
    assert anns[: len(first_shard)] == [
        {**a, **{k: v for k, v in r.items() if k != "id"}, "pseudo_method": "boxcaseg"}
        for a, r in zip(anns, first_shard)
    ]
    for a in anns:
        assert a["pseudo_method"] == "boxcaseg" and a["fallback"] is None
        m = mask_util.decode(a["segmentation"]).astype(bool)
        assert a["area"] == m.sum()
        assert a["mask_valid"] == (a["box_agreement"] >= 0.95)
    per_image = {}
    for a in anns:
        per_image.setdefault(a["image_id"], []).append(mask_util.decode(a["segmentation"]))
    assert all((np.sum(ms, axis=0) <= 1).all() for ms in per_image.values())  # merged

    # read back as a training dataset: the flags reach Instances.gt_mask_valid
    dicts = load_coco_json(out, "")
    tcfg = add_weaksup_config(get_cfg())
    tcfg.WEAKSUP.MASK_SOURCE = "annotation"
    tcfg.INPUT.MASK_FORMAT = "bitmask"
    mapper = BoxSupervisedDatasetMapper(tcfg, True)
    flags = [bool(a["mask_valid"]) for d in dicts for a in d["annotations"]]
    mapped = [mapper(d)["instances"].gt_mask_valid.tolist() for d in dicts]
    assert [f for m in mapped for f in m] == flags

    report = proxy_mask_quality(out, "boxcaseg_test_gt")
    assert {"mIoU*", "IoU@50", "IoU@75", "drop rate"} <= set(report)
    assert report["instances"] == sum(len(m) for m in gt_masks)
    assert report["drop rate"] == pytest.approx(
        100 * (1 - np.mean([a["mask_valid"] for a in anns]))
    )


def _generate_sharded(weights, out_dir):
    """Stage 2 in this process of the job (1 or 2 gloo ranks), the same model in each; records
    how many images this process segmented."""
    import os

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.utils import comm

    torch.set_num_threads(1)  # same kernels (and float sums) in every process
    _register_boxonly("boxcaseg_test_shards", 5)
    model = build_model(_tiny_model_cfg())
    DetectionCheckpointer(model).load(weights)
    inferred = []
    real = model.inference
    model.inference = lambda x: inferred.append(len(x)) or real(x)
    world, rank = comm.get_world_size(), comm.get_rank()
    out = os.path.join(out_dir, f"world{world}.json")
    generate_proxy_masks(
        _tiny_model_cfg(), model, "boxcaseg_test_shards", out, weights=weights, shard_size=1,
        progress=False,
    )  # fmt: skip
    with open(os.path.join(out_dir, f"world{world}-rank{rank}.txt"), "w") as f:
        f.write(str(sum(inferred)))


@pytest.mark.slow
def test_two_processes_give_the_single_process_proxy_masks(tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    torch.manual_seed(0)
    DetectionCheckpointer(build_model(_tiny_model_cfg()), save_dir=str(tmp_path)).save("tiny")
    weights = str(tmp_path / "tiny.pth")
    threads = torch.get_num_threads()
    try:
        _generate_sharded(weights, str(tmp_path))
    finally:
        torch.set_num_threads(threads)
    launch_on_cpu(_generate_sharded, 2, weights, str(tmp_path))

    # 5 images in 5 shards: rank 0 segments shards 0, 2, 4 and rank 1 shards 1, 3, none twice
    assert [(tmp_path / f"world2-rank{r}.txt").read_text() for r in (0, 1)] == ["3", "2"]
    assert (tmp_path / "world1-rank0.txt").read_text() == "5"
    single = json.loads((tmp_path / "world1.json").read_text())
    sharded = json.loads((tmp_path / "world2.json").read_text())
    anns = single["annotations"]
    assert len(anns) == sum(len(r["annotations"]) for r in pennfudan_records(5)[0])
    assert len({a["area"] for a in anns}) == len(anns)  # real, distinct masks
    assert sharded["annotations"] == anns and sharded["images"] == single["images"]
    assert not (tmp_path / "world2.json.work").exists()


@pytest.mark.slow
def test_make_proxy_masks_labels_any_box_json_as_stage_2_does(tmp_path, shared_data):
    """tools/make_proxy_masks.py --input-json: a foreign box json (nuts_coco, its masks unread)
    labelled with a stage-1 checkpoint gives exactly the proxy masks of stage 2's own function,
    in the pseudo-mask format that tools/eval_pseudo_masks.py scores."""
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT
    from weaksup import load_config
    from weaksup.data.datasets import register_coco_boxonly
    from weaksup.engine import resolve_device
    from weaksup.methods.boxcaseg.pipeline import stage1_config

    root = shared_data("nuts_coco", "data")
    config = str(REPO_ROOT / "configs" / "BoxCaseg" / "demo_pennfudan_Lite0_FPN.yaml")
    opts = ["OUTPUT_DIR", str(tmp_path / "pipeline"), "MODEL.DEVICE", "cpu"]
    cfg = load_config(config, opts)
    cfg1 = stage1_config(cfg)
    resolve_device(cfg1)
    torch.manual_seed(0)
    model = build_model(cfg1)  # random heads, ImageNet-free trunk: any fixed weights will do
    weights = str(tmp_path / "stage1.pth")
    torch.save({"model": model.state_dict()}, weights)
    register_coco_boxonly(
        "nuts_tool_test_boxonly", {}, str(root / "trainval.json"), str(root / "images")
    )
    p = cfg.WEAKSUP.BOXCASEG.PROXY
    expected = str(tmp_path / "expected.json")
    generate_proxy_masks(
        cfg1, model, "nuts_tool_test_boxonly", expected, weights=weights, merge=p.MERGE,
        drop_threshold=p.DROP_THRESHOLD, progress=False,
    )  # fmt: skip

    out = tmp_path / "tool.json"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "tools" / "make_proxy_masks.py"),
        "--config-file",
        config,
    ]
    cmd += ["--input-json", str(root / "trainval.json"), "--image-root", str(root / "images")]
    cmd += ["--weights", weights, "--output", str(out), *opts]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    run = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    got, want = json.loads(out.read_text()), json.loads(open(expected).read())
    keys = ("segmentation", "box_agreement", "mask_valid", "fallback", "pseudo_method")
    assert len(got["annotations"]) == 165
    for a, b in zip(got["annotations"], want["annotations"]):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        assert a["mask_valid"] == (a["box_agreement"] >= p.DROP_THRESHOLD)

    score = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "eval_pseudo_masks.py"), "--pred", str(out),
         "--gt", str(root / "trainval.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert score.returncode == 0, (score.stdout + score.stderr)[-4000:]
    assert "mIoU*" in score.stdout

    cmd[cmd.index("--weights") + 1] = str(tmp_path / "none.pth")
    missing = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert missing.returncode != 0 and "--weights" in missing.stderr
    assert "none.pth: no such file" in missing.stderr
