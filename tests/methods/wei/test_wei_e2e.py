"""Wei et al. end to end on real data (PennFudan + nuts_coco image labels): proposals, HCP image
and hypothesis fine-tuning, scores, refinement, maps and rough masks, the six segmentation
networks, evaluation, the scores and the printed tables; a rerun reuses every stage; and no box,
mask or label map of the training data is read by any stage (their annotations raise on access;
only the scores read a separate ground-truth dataset of the same images)."""

import json
import logging
import os

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from weaksup.utils.config_file import merge_config_file
from conftest import REPO_ROOT, check_sem_seg_result, shared_path

from weaksup import add_weaksup_config

pytestmark = pytest.mark.slow

DEMO = REPO_ROOT / "configs" / "Wei" / "demo"
# Annotation keys that carry the class; every other one (bbox, segmentation, ...) is forbidden.
ALLOWED = ("category_id",)
FORBIDDEN_RECORD_KEYS = ("sem_seg_file_name", "pan_seg_file_name")


class PoisonedAnnotation(dict):
    """An annotation whose box, mask and any other field except its class raise when read."""

    def _check(self, key):
        if key not in ALLOWED:
            raise AssertionError(f"annotation field {key!r} was read")

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._check(key)
        return super().__contains__(key)

    def _whole(self, *args, **kwargs):
        raise AssertionError("a whole annotation was read (copied, iterated or pickled)")

    __iter__ = keys = values = items = copy = __deepcopy__ = __reduce_ex__ = _whole
    pop = setdefault = _whole


class PoisonedRecord(dict):
    """A record whose label-map fields raise when read."""

    def __getitem__(self, key):
        if key in FORBIDDEN_RECORD_KEYS:
            raise AssertionError(f"record field {key!r} was read")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key in FORBIDDEN_RECORD_KEYS:
            raise AssertionError(f"record field {key!r} was read")
        return super().get(key, default)


def poisoned(records):
    """Records with ground-truth boxes and masks (and a label map path) that raise on access."""
    out = []
    for r in records:
        r = PoisonedRecord({**r, "sem_seg_file_name": "/nonexistent/label_map.png"})
        dict.__setitem__(r, "annotations", [PoisonedAnnotation(a) for a in r["annotations"]])
        out.append(r)
    return out


def _register(name, records, **meta):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(**meta)


def test_poisoned_annotation_raises():
    ann = PoisonedAnnotation({"category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": []})
    assert ann["category_id"] == 1
    for read in (lambda: ann["bbox"], lambda: ann.get("segmentation"), lambda: list(ann)):
        with pytest.raises(AssertionError):
            read()
    with pytest.raises(AssertionError):
        PoisonedRecord({"sem_seg_file_name": "x"})["sem_seg_file_name"]


def _write_yaml(path, base, lines):
    path.write_text(f'_BASE_: "{base}"\n' + "\n".join(lines) + "\n")
    return str(path)


def _config(tmp_path, train, test, scoring=()):
    hcp_img = _write_yaml(
        tmp_path / "hcp_image.yaml",
        DEMO / "hcp_image_R18_GN.yaml",
        [
            "MODEL: {HCP: {CROP_SIZE: 32, FC_DIM: 16, TEST_BATCH_SIZE: 64}}",
            "INPUT: {MIN_SIZE_TRAIN: [96], MAX_SIZE_TRAIN: 128, MIN_SIZE_TEST: 96, "
            "MAX_SIZE_TEST: 128}",
            "SOLVER: {IMS_PER_BATCH: 2, MAX_ITER: 2, STEPS: [], WARMUP_ITERS: 0, "
            "CHECKPOINT_PERIOD: 100}",
        ],
    )
    hcp_hyp = _write_yaml(
        tmp_path / "hcp_hyp.yaml",
        tmp_path / "hcp_image.yaml",
        ["MODEL: {HCP: {MODE: hypotheses, NUM_HYPOTHESES: 3}}"],
    )
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, str(DEMO / "wei_demo_R18_FPN_GN.yaml"))
    cfg.merge_from_list(
        [
            "WEAKSUP.WEI.HCP_IMAGE_CONFIG", hcp_img,
            "WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG", hcp_hyp,
            "WEAKSUP.WEI.NUM_CANDIDATES", "16",
            "WEAKSUP.WEI.CANDIDATE_MAX_SIDE", "64",
            "WEAKSUP.WEI.NUM_WORKERS", "0",
            "MODEL.DEVICE", "cpu",
            "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",
            "MODEL.FPN.OUT_CHANNELS", "32",
            "DATASETS.TRAIN", f"('{train}',)",
            "DATASETS.TEST", f"('{test}',)",
            "INPUT.MIN_SIZE_TRAIN", "(96,)",
            "INPUT.MAX_SIZE_TRAIN", "128",
            "INPUT.MIN_SIZE_TEST", "96",
            "INPUT.MAX_SIZE_TEST", "128",
            "SOLVER.IMS_PER_BATCH", "2",
            "SOLVER.MAX_ITER", "2",
            "SOLVER.STEPS", "()",
            "SOLVER.WARMUP_ITERS", "0",
            "SOLVER.CHECKPOINT_PERIOD", "1",
            "OUTPUT_DIR", str(tmp_path / "out"),
            *scoring,
        ]
    )  # fmt: skip
    cfg.freeze()
    return cfg


def test_all_stages_on_image_labels_only(tmp_path, caplog, capsys):
    from weaksup.data.datasets import load_pennfudan, register_image_label_union
    from weaksup.data.datasets.mask_subset import register_instance_sem_seg
    from weaksup.methods.wei.demo_datasets import WEI_DEMO_CLASSES
    from weaksup.methods.wei.pipeline import run_wei_pipeline

    shared_path("nuts_coco")
    pf = load_pennfudan(str(shared_path("PennFudanPed")), "all")  # with masks: poisoned below
    nuts = DatasetCatalog.get("nuts_coco_train")
    _register("wei_t_pf", poisoned(pf[:3]), thing_classes=["person"])
    _register(
        "wei_t_nuts",
        poisoned(nuts[:3]),
        thing_classes=MetadataCatalog.get("nuts_coco_train").thing_classes,
    )
    register_image_label_union("wei_t_train", ["wei_t_pf", "wei_t_nuts"], WEI_DEMO_CLASSES)
    val = DatasetCatalog.get("wei_demo_val")
    _register("wei_t_val", [val[0], val[-1]], thing_classes=list(WEI_DEMO_CLASSES))
    register_instance_sem_seg("wei_t_val_sem_seg", "wei_t_val", str(tmp_path / "val_labels"))
    # scoring only: image labels of the val images, label maps of the (unpoisoned) training images
    register_image_label_union("wei_t_val_labels", ["wei_t_val"], WEI_DEMO_CLASSES)
    _register("wei_t_gt", pf[:3] + nuts[:3], thing_classes=list(WEI_DEMO_CLASSES))
    register_instance_sem_seg("wei_t_gt_sem_seg", "wei_t_gt", str(tmp_path / "gt_labels"))
    scoring = ["WEAKSUP.WEI.HCP_TEST_DATASET", "wei_t_val_labels"]
    scoring += ["WEAKSUP.WEI.LABEL_GT_DATASET", "wei_t_gt_sem_seg"]
    cfg = _config(tmp_path, "wei_t_train", "wei_t_val_sem_seg", scoring)
    out = tmp_path / "out"

    caplog.set_level(logging.INFO, logger="weaksup")
    results = run_wei_pipeline(cfg, None)
    schemes = ["AN_A", "SN_A", "AN_B", "SN_B", "AN_A_norefine", "SN_A_norefine"]
    assert sorted(results) == sorted(schemes)
    for s in schemes:
        check_sem_seg_result(results[s]["sem_seg"])
        assert (out / s / "model_final.pth").is_file()
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 3" in printed
    assert "HCP image-level classification on 2 validation images" in printed
    assert "Training labels against ground truth (6 training images" in printed
    mious = [line for line in printed.splitlines() if line.startswith("| mIoU |")]
    assert len(mious) == 3 and all("-" not in line.split("|", 2)[2] for line in mious)
    scores = json.loads((out / "wei_scores.json").read_text())
    assert len(scores["hcp"]["AP"]) == len(WEI_DEMO_CLASSES) and 0 <= scores["hcp"]["mAP"] <= 100
    labels = scores["labels"]
    assert sorted(labels) == sorted(
        ["maps", "maps w/o refinement", "rough masks", "background-only"]
    )
    # the floor: background IoU = its share of the pixels, over the classes present
    floor = labels["background-only"]
    assert floor["mIoU"] == pytest.approx(floor["IoU"][0] / np.isfinite(floor["IoU"]).sum())
    assert scores["background-only"]["sem_seg"]["mIoU"] > 0
    assert [line for line in printed.splitlines() if line.startswith("| x background-only |")]

    # stage 2 outputs: one map file and one rough mask per training image, on its classes
    keys = sorted(p.stem for p in (out / "maps").glob("*.npz"))
    assert len(keys) == 6 and len(list((out / "rough_masks").glob("*.png"))) == 6
    assert len(list((out / "rough_masks" / "vis").glob("*.jpg"))) == 6  # WEAKSUP.VIS.NUM_IMAGES
    with np.load(out / "maps" / f"{keys[0]}.npz") as z:
        maps, labels = z["maps"].astype(np.float32), z["labels"]
    assert maps.shape[0] == len(labels) + 1 and maps.min() >= 0
    np.testing.assert_allclose(maps[0], np.maximum(0, 1 - maps[1:].sum(0)), atol=2e-3)
    for p in (out / "rough_masks").glob("*.png"):
        values = set(np.unique(np.asarray(Image.open(p))).tolist())
        assert values <= {0} | {c + 1 for c in range(len(WEI_DEMO_CLASSES))}
    refinement = json.loads((out / "maps" / "refinement.json").read_text())
    for key, per_label in refinement["refined"].items():
        for k, kept in per_label.items():
            assert set(kept) <= set(refinement["all"][key][k]) and len(kept) >= 1
    # single-label schemes train on the 3 PennFudan images only
    assert "stage 3 (SN_B): 3 training images" in caplog.text
    assert "stage 3 (AN_B): 6 training images" in caplog.text

    # rerun: every stage reused; AN_B, as if killed after its first iteration, resumes from that
    # checkpoint
    for name in ("model_final.pth", "wei_results.json"):
        os.remove(out / "AN_B" / name)
    (out / "AN_B" / "last_checkpoint").write_text("model_0000000.pth")
    caplog.clear()
    again = run_wei_pipeline(cfg, None)
    assert "stage 1a: skipped" in caplog.text and "stage 1b: skipped" in caplog.text
    assert "stage 2a (proposal scores): skipped" in caplog.text
    assert all(f"stage 3 ({s}): skipped" in caplog.text for s in schemes if s != "AN_B")
    assert "stage 3 (AN_B): resuming from" in caplog.text and "model_0000000.pth" in caplog.text
    assert (out / "AN_B" / "model_final.pth").is_file()
    check_sem_seg_result(again["AN_B"]["sem_seg"])
    assert again["SN_B"]["sem_seg"]["mIoU"] == results["SN_B"]["sem_seg"]["mIoU"]

    # a lost rough mask is recomputed alone; AN_B, which trains on it, is redone (its label file
    # is a new file: cached stages key image files by size and mtime), and the log says why
    os.remove(out / "rough_masks" / f"{keys[0]}.png")
    caplog.clear()
    run_wei_pipeline(cfg, None)
    assert "1 images computed, 5 reused" in caplog.text
    assert "stage 3 (AN_B): running from scratch: changed input data" in caplog.text
