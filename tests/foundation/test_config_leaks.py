"""No shipped config trains on an image it evaluates on (issue 16, item 3).

For every YAML file in ``configs/``: every dataset named anywhere in the config other than
``DATASETS.TEST`` counts as training data, and so does every training set of an earlier stage
it loads (a stage config it names, a ``MODEL.WEIGHTS`` file under another config's
``OUTPUT_DIR``). Each (training, test) pair must share no photograph: compared on the real image
files where both datasets load here, else decided from the image lists the datasets declare
(:mod:`weaksup.data.datasets.image_sets`); a pair neither can decide fails.
"""

import functools
import glob
import os
from typing import Dict, List, Optional, Set, Tuple

import pytest
from detectron2.data import DatasetCatalog

from weaksup import load_config
from weaksup.data.datasets.image_sets import may_share_images, photo_keys

from conftest import REPO_ROOT, shared_path

CONFIGS = sorted(
    os.path.relpath(p, REPO_ROOT)
    for p in glob.glob(str(REPO_ROOT / "configs" / "**" / "*.yaml"), recursive=True)
)


def _leaves(node, prefix=""):
    for key, value in node.items():
        if hasattr(value, "items"):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, str):
                    yield prefix + key, v


@functools.lru_cache(maxsize=None)
def _config(path: str):
    return load_config(str(REPO_ROOT / path))


@functools.lru_cache(maxsize=None)
def _output_dirs() -> Dict[str, str]:
    dirs = {}
    for path in CONFIGS:
        out = os.path.normpath(_config(path).OUTPUT_DIR)
        if out != "output":
            dirs.setdefault(out, path)
    return dirs


def _earlier_stages(path: str) -> List[str]:
    """Configs whose outputs ``path`` loads: stage configs it names, the config whose OUTPUT_DIR
    holds its MODEL.WEIGHTS (the deepest one)."""
    cfg = _config(path)
    stages = [v for _, v in _leaves(cfg) if v.endswith(".yaml") and v in CONFIGS and v != path]
    weights = os.path.normpath(cfg.MODEL.WEIGHTS) if cfg.MODEL.WEIGHTS else ""
    owners = [d for d in _output_dirs() if weights.startswith(d + os.sep)]
    if owners:
        stages.append(_output_dirs()[max(owners, key=len)])
    return stages


# Keys that name datasets only evaluated on (never trained on), besides DATASETS.TEST.
EVALUATION_KEYS = ("DATASETS.TEST", "WEAKSUP.WEI.HCP_TEST_DATASET")


def _training_sets(path: str, seen: Tuple[str, ...] = ()) -> Set[str]:
    names = set(DatasetCatalog.list())
    cfg = _config(path)
    out = {v for key, v in _leaves(cfg) if v in names and key not in EVALUATION_KEYS}
    for stage in _earlier_stages(path):
        if stage not in seen:
            out |= _training_sets(stage, seen + (path,))
    return out


@functools.lru_cache(maxsize=None)
def _real_photos(name: str) -> Optional[frozenset]:
    """Photo keys of ``name``'s records, or None where its files are not here."""
    try:
        return frozenset(photo_keys(DatasetCatalog.get(name)))
    except (FileNotFoundError, OSError):
        return None


def _shared(train: str, test: str) -> Tuple[Optional[int], Optional[bool]]:
    a, b = _real_photos(train), _real_photos(test)
    real = None if a is None or b is None else len(a & b)
    return real, may_share_images(train, test)


def test_every_config_is_checked():
    assert len(CONFIGS) > 40
    with_test = [p for p in CONFIGS if _config(p).DATASETS.TEST]
    assert len(with_test) > 25, with_test


@pytest.mark.parametrize("path", CONFIGS)
def test_no_test_image_in_training(path):
    cfg = _config(path)
    problems = []
    for test in cfg.DATASETS.TEST:
        for train in sorted(_training_sets(path)):
            real, declared = _shared(train, test)
            if real:
                problems.append(f"{train} and {test} share {real} images")
            elif real is None and declared is None:
                shared_path()  # without the shared data the images cannot be compared: skipped
                problems.append(f"{train} / {test}: images not here and no image lists declared")
            elif real is None and declared:
                problems.append(f"{train} / {test}: their declared image lists overlap")
    assert not problems, f"{path}: " + "; ".join(problems)


def test_real_check_sees_a_leak(shared_data):
    """The check on real files finds PennFudan val inside PennFudan 'all'."""
    shared_data("PennFudanPed")
    from weaksup.data.datasets.pennfudan import load_pennfudan

    everything = photo_keys(load_pennfudan(str(shared_data("PennFudanPed")), "all"))
    val = _real_photos("pennfudan_val")
    assert len(val) == 42 and val <= everything
    assert _shared("pennfudan_train", "pennfudan_val") == (0, False)
    assert _shared("pennfudan_train_seg5_masks", "pennfudan_val_sem_seg") == (0, False)


def test_declared_voc_lists():
    """Box16.5k (Detectron2's VOC 2007 + 2012 trainval) holds VOC 2012 seg val; the splits
    without it, and train_aug, do not."""
    val = "voc_2012_val_sem_seg"
    assert may_share_images("voc_2012_trainval", val)
    assert may_share_images("voc_2007_trainval", val)  # VOC 2012's 2007_* photos
    assert may_share_images("voc_2007_test", "voc_2012_val_instance")
    for train in (
        "voc_2012_trainval_minus_seg_val",
        "voc_2007_trainval_minus_voc12_seg_val",
        "voc_2007_test_minus_voc12_seg_val",
        "voc_2012_train_aug_seg1464_masks",
        "voc_2012_train_aug_image_labels",
        "coco_2017_train_voc20_boxonly",
    ):
        assert may_share_images(train, val) is False, train
    assert may_share_images("coco_2017_val_voc20", "coco_2017_val")


def test_exclude_voc_photos_matches_2007_copies(tmp_path):
    """A VOC 2012 seg-val list entry ``2007_000033`` removes VOC 2007's ``000033`` and VOC 2012's
    ``2007_000033``; other photos stay."""
    from conftest import register_dataset

    from weaksup.data.datasets.image_sets import exclude_voc_photos

    files = [
        "VOC2007/JPEGImages/000033.jpg",
        "VOC2007/JPEGImages/000034.jpg",
        "VOC2012/JPEGImages/2007_000033.jpg",
        "VOC2012/JPEGImages/2008_000033.jpg",
    ]
    register_dataset("_leak_voc", [{"file_name": str(tmp_path / f)} for f in files], ["a"])
    val = tmp_path / "val.txt"
    val.write_text("2007_000033\n2008_000002\n")
    kept = [
        os.path.relpath(r["file_name"], tmp_path)
        for r in exclude_voc_photos(["_leak_voc"], str(val))
    ]
    assert kept == [files[1], files[3]]
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        exclude_voc_photos(["_leak_voc"], str(tmp_path / "missing.txt"))


def test_boxsup_plus_is_the_semi_supervised_model():
    """BoxSup+ (Tab. 4) = VOC 10k masks + VOC 2007 + COCO boxes, tested on 3 scales."""
    plus = _config("configs/BoxSup/voc_boxsup_plus_R101_OS8.yaml")
    semi = _config("configs/BoxSup/voc_voc07_coco_semi_R101_OS8.yaml")
    assert plus.DATASETS.TRAIN == semi.DATASETS.TRAIN
    assert "voc_2012_train_aug_seg10k" in plus.DATASETS.TRAIN  # masks on all of train_aug
    assert {"coco_2017_train_voc20_boxonly", "voc_2007_test_minus_voc12_seg_val"} <= set(
        plus.DATASETS.TRAIN
    )
    assert list(plus.MODEL.BOXSUP.TEST_SCALES) == [0.8, 1.0, 1.2]
    assert list(semi.MODEL.BOXSUP.TEST_SCALES) == [1.0]
    assert plus.MODEL.BOXSUP.CRF.ENABLED and not plus.WEAKSUP.BOXSUP.IGNORE_GT_MASKS


def test_coco_on_the_voc_classes(shared_data):
    """The class-subset view on real COCO json data: nuts_coco's 'fig' renamed, others dropped,
    every image kept (also those left without an annotation)."""
    from conftest import register_dataset

    from weaksup.data.datasets.coco import load_class_subset

    shared_data("nuts_coco")

    records = DatasetCatalog.get("nuts_coco_train")
    register_dataset("_nuts_all", records, ["date", "fig", "hazelnut"])
    out = load_class_subset("_nuts_all", {"fig": "b"}, ["a", "b"], box_only=True)
    assert len(out) == len(records)
    figs = sum(a["category_id"] == 1 for r in records for a in r["annotations"])
    assert figs > 0 and sum(len(r["annotations"]) for r in out) == figs
    assert all(
        a["category_id"] == 1 and "segmentation" not in a for r in out for a in r["annotations"]
    )
