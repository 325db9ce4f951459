"""Training reads make_pseudo_masks.py output through the ``pseudo_json`` mask source
(``WEAKSUP.PSEUDO_MASKS``): masks and flags reach ``Instances``; train_net.py trains with them."""

import json
import runpy

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.config import get_cfg

from weaksup.utils.config_file import merge_config_file
from conftest import REPO_ROOT, shared_path
from weaksup import add_weaksup_config
from weaksup.data import build_mapper
from weaksup.data.datasets import load_coco_json

DEMO = REPO_ROOT / "configs" / "PseudoMasks" / "pennfudan_grabcut_mask_rcnn_R18_FPN_GN.yaml"


def _pseudo_json(tmp_path, split, method, num_images=None):
    """prepare_pennfudan's json of ``split`` (optionally its first images) and its pseudo masks."""
    root = shared_path("PennFudanPed")
    prepare = runpy.run_path(str(REPO_ROOT / "datasets" / "prepare_pennfudan.py"))
    coco = prepare["pennfudan_coco"](str(root), [split])[split]
    if num_images:
        coco["images"] = coco["images"][:num_images]
        ids = {i["id"] for i in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    gt_json, out = tmp_path / f"{split}.json", tmp_path / f"{split}_{method}.json"
    gt_json.write_text(json.dumps(coco))
    make = runpy.run_path(str(REPO_ROOT / "tools" / "make_pseudo_masks.py"))
    make["main"](
        ["--input-json", str(gt_json), "--image-root", str(root / "PNGImages"), "--method", method]
        + ["--output", str(out), "--no-progress"]
    )
    return gt_json, out


def _boxonly(gt_json):
    """The box-only training view of ``gt_json`` (annotation ids kept, as every loader does)."""
    image_root = str(shared_path("PennFudanPed", "PNGImages"))
    return load_coco_json(str(gt_json), image_root, box_only=True)


def _cfg(pseudo_json):
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, str(DEMO))
    cfg.WEAKSUP.PSEUDO_MASKS = str(pseudo_json)
    cfg.INPUT.RANDOM_FLIP = "none"
    return cfg


def test_masks_and_flags_reach_instances(tmp_path):
    gt_json, out = _pseudo_json(tmp_path, "val", "ellipse", num_images=3)
    pseudo = json.loads(out.read_text())
    flagged = {pseudo["annotations"][0]["id"], pseudo["annotations"][-1]["id"]}
    for ann in pseudo["annotations"]:
        ann["mask_valid"] = ann["id"] not in flagged
    out.write_text(json.dumps(pseudo))
    by_id = {a["id"]: a for a in pseudo["annotations"]}
    records = _boxonly(gt_json)
    assert all("segmentation" not in a for r in records for a in r["annotations"])
    cfg = _cfg(out)
    seen = 0
    for record in records:
        cfg.INPUT.MIN_SIZE_TRAIN = (min(record["height"], record["width"]),)  # scale 1
        cfg.INPUT.MAX_SIZE_TRAIN = 10000
        instances = build_mapper(cfg, is_train=True)(dict(record))["instances"]
        ids = [a["id"] for a in record["annotations"]]
        assert instances.gt_mask_valid.tolist() == [by_id[i]["mask_valid"] for i in ids]
        for mask, i in zip(instances.gt_masks.tensor.numpy(), ids):  # no flip
            assert np.array_equal(mask, mask_util.decode(by_id[i]["segmentation"]).astype(bool))
        seen += len(ids)
    assert seen == len(pseudo["annotations"])


def test_missing_ids_are_an_error(tmp_path):
    _, out = _pseudo_json(tmp_path, "val", "box", num_images=1)
    mapper = build_mapper(_cfg(out), is_train=True)
    record = _boxonly(tmp_path / "val.json")[0]
    del record["annotations"][0]["id"]
    with pytest.raises(KeyError, match="without 'id'"):
        mapper(record)
    record["annotations"][0]["id"] = 12345678
    with pytest.raises(KeyError, match="no annotation with id 12345678"):
        mapper(record)
    cfg = _cfg(out)
    cfg.WEAKSUP.PSEUDO_MASKS = ""
    with pytest.raises(ValueError, match="needs cfg.WEAKSUP.PSEUDO_MASKS"):
        build_mapper(cfg, is_train=True)


@pytest.mark.slow
def test_train_net_with_pseudo_masks(tmp_path):
    """Pseudo masks for PennFudan train (a fast method), then the demo config as it stands
    (registered ``pennfudan_train_boxonly``, matched by annotation id): 3 iterations, a
    checkpoint, evaluation."""
    _, out = _pseudo_json(tmp_path, "train", "ellipse")
    from detectron2.engine import default_argument_parser

    from weaksup.tools import train_net

    opts = {
        "WEAKSUP.PSEUDO_MASKS": str(out),
        "OUTPUT_DIR": str(tmp_path / "train"),
        "SOLVER.MAX_ITER": "3",
        "SOLVER.CHECKPOINT_PERIOD": "2",
        "SOLVER.WARMUP_ITERS": "1",
        "SOLVER.IMS_PER_BATCH": "2",
        "INPUT.MIN_SIZE_TRAIN": "(160,)",
        "INPUT.MAX_SIZE_TRAIN": "256",
        "INPUT.MIN_SIZE_TEST": "160",
        "INPUT.MAX_SIZE_TEST": "256",
        "DATALOADER.NUM_WORKERS": "0",
        "WEAKSUP.VIS.NUM_IMAGES": "1",
    }
    opts = [v for kv in opts.items() for v in kv]
    parser = default_argument_parser()
    train_net.main(parser.parse_args(["--config-file", str(DEMO)] + opts))
    assert (tmp_path / "train" / "model_0000001.pth").is_file()
    final = ["MODEL.WEIGHTS", str(tmp_path / "train" / "model_final.pth")]
    results = train_net.main(
        parser.parse_args(["--config-file", str(DEMO), "--eval-only"] + opts + final)
    )
    assert {"bbox", "segm", "voc_instance"} <= set(results)
    with open(tmp_path / "train" / "metrics.json") as f:
        losses = [json.loads(line) for line in f if "loss_mask" in line]
    assert len(losses) >= 1 and all(r["loss_mask"] > 0 for r in losses)  # pseudo masks trained
