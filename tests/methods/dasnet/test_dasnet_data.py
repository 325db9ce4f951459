"""DASNet's heterogeneous training sets: the mask subset is seeded and per class, and no mask
outside it reaches a loss (weaksup/data/datasets/mask_subset.py, DASNet Sec. 4.1)."""

import copy

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import BitMasks
from detectron2.utils.events import EventStorage

from weaksup.utils.config_file import merge_config_file
from conftest import REPO_ROOT, register_dataset, shared_path
from weaksup import add_weaksup_config
from weaksup.data import build_mapper
from weaksup.data.datasets import load_coco_json
from weaksup.data.datasets.mask_subset import (
    apply_mask_subset,
    instance_label_map,
    load_mask_subset,
    register_mask_subset,
    select_per_class,
)

STAGE2 = REPO_ROOT / "configs" / "DASNet" / "demo" / "pennfudan_stage2_seg_R18_FPN_GN.yaml"


def _record(image_id, classes):
    annos = [
        {"category_id": c, "bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 4, 0, 4, 4]]}
        for c in classes
    ]
    return {"image_id": image_id, "file_name": f"{image_id}.jpg", "annotations": annos}


@pytest.fixture(scope="module")
def nuts():
    root = shared_path("nuts_coco", "data")
    return load_coco_json(str(root / "trainval.json"), str(root / "images"))


def test_per_class_selection_is_seeded_and_per_class(nuts):
    chosen = select_per_class(nuts, 2, seed=0)
    assert chosen == select_per_class(nuts, 2, seed=0)  # fixed seed, same subset
    assert len(chosen) == len(set(chosen)) == 2 * 3  # k images for each of the 3 classes
    by_id = {r["image_id"]: r for r in nuts}
    classes = sorted({a["category_id"] for r in nuts for a in r["annotations"]})
    for c, drawn in zip(classes, [chosen[0:2], chosen[2:4], chosen[4:6]]):
        assert all(c in {a["category_id"] for a in by_id[i]["annotations"]} for i in drawn)
    assert any(select_per_class(nuts, 2, seed=s) != chosen for s in range(1, 6))


def test_per_class_selection_never_draws_an_image_twice():
    dicts = [_record(0, [0, 1]), _record(1, [0, 1]), _record(2, [1]), _record(3, [0])]
    for seed in range(10):
        chosen = select_per_class(dicts, 1, seed)
        assert len(chosen) == 2 and len(set(chosen)) == 2
    # k = 3: class 0 takes all its images (0, 1, 3), class 1 only has image 2 left to draw
    chosen = select_per_class(dicts, 3, 0)
    assert sorted(chosen[:3]) == [0, 1, 3] and chosen[3:] == [2]


def test_apply_mask_subset_drops_masks_and_label_maps_outside():
    dicts = [{**_record(i, [0]), "sem_seg_file_name": f"{i}.png"} for i in range(3)]
    dicts[2]["annotations"][0]["mask_valid"] = True
    original = copy.deepcopy(dicts)
    out = apply_mask_subset(dicts, [1])
    assert dicts == original  # inputs untouched
    assert "segmentation" in out[1]["annotations"][0] and out[1]["sem_seg_file_name"] == "1.png"
    for r in (out[0], out[2]):
        assert set(r["annotations"][0]) == {"category_id", "bbox"}
        assert "sem_seg_file_name" not in r
    assert [r["image_id"] for r in apply_mask_subset(dicts, [1], subset_only=True)] == [1]


def test_instance_label_map():
    record = {
        "height": 4,
        "width": 5,
        "annotations": [
            {"category_id": 2, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
            {"category_id": 0, "iscrowd": 1, "segmentation": [[3, 2, 5, 2, 5, 4, 3, 4]]},
        ],
    }
    label = instance_label_map(record)
    assert label.dtype.name == "uint8" and label.shape == (4, 5)
    assert (label[:2, :2] == 3).all() and (label[2:, 3:] == 255).all()
    assert label.sum() == 4 * 3 + 4 * 255


@pytest.mark.parametrize("n", [5, 20])
def test_pennfudan_seg_views(n):
    shared_path("PennFudanPed")
    subset = DatasetCatalog.get(f"pennfudan_train_seg{n}_masks")
    hetero = DatasetCatalog.get(f"pennfudan_train_seg{n}")
    ids = {r["image_id"] for r in subset}
    assert len(ids) == n and len(hetero) == 128
    for r in hetero:
        has = ["segmentation" in a for a in r["annotations"]]
        assert all(has) if r["image_id"] in ids else not any(has)
    assert MetadataCatalog.get(f"pennfudan_train_seg{n}").thing_classes == ["person"]


@pytest.fixture(scope="module")
def stage2():
    """The demo's stage-2 model (untrained, CPU, small inputs) and its training mapper."""
    shared_path("PennFudanPed")
    cfg = get_cfg()
    add_weaksup_config(cfg)
    merge_config_file(cfg, str(STAGE2))
    cfg.merge_from_list(
        ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TRAIN", "(128,)"]
        + ["INPUT.MAX_SIZE_TRAIN", "160", "INPUT.RANDOM_FLIP", "none"]
    )
    torch.manual_seed(0)
    return build_model(cfg), build_mapper(cfg, is_train=True)


def _losses(model, batch, seed=0):
    torch.manual_seed(seed)  # the instance branch samples boxes at random
    with EventStorage():
        return {k: v.item() for k, v in model(batch).items()}


def test_no_mask_outside_the_subset_reaches_the_loss(stage2):
    model, mapper = stage2
    records = DatasetCatalog.get("pennfudan_train_seg5")
    subset = {r["image_id"] for r in DatasetCatalog.get("pennfudan_train_seg5_masks")}
    inside = [r for r in records if r["image_id"] in subset][:1]
    outside = [r for r in records if r["image_id"] not in subset][:2]
    batch = [mapper(r) for r in inside + outside]
    # data: the instances of images outside the subset are all flagged, those inside none
    for r, b in zip(inside + outside, batch):
        flags = b["instances"].gt_mask_valid
        assert len(flags) and (flags.all() if r["image_id"] in subset else not flags.any())
    losses = _losses(model, batch)
    assert set(losses) == {"loss_sem_seg", "loss_instance_score", "loss_instance_mask"}

    # replacing the placeholders of the outside images by anything leaves every loss unchanged
    corrupted = [batch[0]]
    for b in batch[1:]:
        inst = copy.deepcopy(b["instances"])
        inst.gt_masks = BitMasks(torch.rand_like(inst.gt_masks.tensor.float()) > 0.5)
        corrupted.append({**b, "instances": inst})
    assert _losses(model, corrupted) == losses
    # ... and images outside the subset alone give zero losses
    assert all(v == 0 for v in _losses(model, batch[1:]).values())
    # while the subset's masks do reach them (the check above could not pass by accident)
    inst = copy.deepcopy(batch[0]["instances"])
    inst.gt_masks = BitMasks(~inst.gt_masks.tensor)
    changed = _losses(model, [{**batch[0], "instances": inst}] + batch[1:])
    assert all(changed[k] != losses[k] for k in ("loss_sem_seg", "loss_instance_mask"))


def test_semantic_targets_from_label_maps_and_unusable_masks(stage2):
    model, _ = stage2
    from detectron2.structures import Boxes, Instances

    from weaksup.methods.dasnet.attention import AttentionQueries

    inst = Instances((6, 8))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0], [4.0, 2.0, 8.0, 6.0]]))
    inst.gt_classes = torch.tensor([0, 0])
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_mask_valid = torch.tensor([True, False])
    queries = AttentionQueries(
        torch.tensor([0]), torch.tensor([0]), inst.gt_boxes.tensor, torch.tensor([0, 0])
    )
    # from instance masks: box 0 is trained (mask inside, background around), box 1 (unusable
    # mask) and everything outside the boxes are ignored, as is the padding (rows 6, 7)
    t = model._semantic_targets(queries, [inst], [None], (8, 8))[0]
    expected = torch.full((8, 8), 255)
    expected[:4, :4] = 0
    expected[1:3, 1:3] = 1
    assert torch.equal(t, expected)
    # from a label map (class 0 is value 1): unlabelled (255) pixels are ignored too
    label = torch.zeros(6, 8, dtype=torch.long)
    label[2:5, 5:7] = 1
    label[2, 4] = 255
    t = model._semantic_targets(queries, [inst], [label], (8, 8))[0]
    expected = torch.full((8, 8), 255)
    expected[:4, :4] = 0
    expected[2:6, 4:8] = 0
    expected[2:5, 5:7] = 1
    expected[2, 4] = 255
    assert torch.equal(t, expected)


def test_register_mask_subset_options(nuts):
    register_dataset("test_dasnet_nuts", nuts, ["date", "fig", "hazelnut"])
    register_mask_subset("test_dasnet_nuts_k1", "test_dasnet_nuts", per_class=1, seed=3)
    out = DatasetCatalog.get("test_dasnet_nuts_k1")
    assert sum(any("segmentation" in a for a in r["annotations"]) for r in out) == 3
    assert MetadataCatalog.get("test_dasnet_nuts_k1").mask_subset["per_class"] == 1
    with pytest.raises(ValueError, match="not both"):
        load_mask_subset("test_dasnet_nuts", per_class=1, image_list="x.txt")


def test_voc_label_maps_only_on_the_listed_images(stage2, tmp_path):
    """The VOC route: a list file (as the 1,464 set) picks the images that keep masks and the
    label maps joined from the semantic split; the mapper then gives ``sem_seg`` for them only."""
    import importlib.util

    from weaksup.data.datasets import register_voc_instance, register_voc_sem_seg

    spec = importlib.util.spec_from_file_location(
        "prepare_voc_sbd", REPO_ROOT / "datasets" / "prepare_voc_sbd.py"
    )
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    voc = shared_path("labelme_voc3", "examples", "instance_segmentation", "data_dataset_voc")
    out = tmp_path / "out"
    prep.convert(str(voc), None, str(out), ["all"])
    names = (voc / "class_names.txt").read_text().split("\n")[1:]
    image_root = str(voc / "JPEGImages")
    for name in ("test_dasnet_voc3", "test_dasnet_voc3_sem", "test_dasnet_voc3_list"):
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    register_voc_instance(
        "test_dasnet_voc3", str(out / "instances_all.json"), image_root, False, names
    )
    register_voc_sem_seg(
        "test_dasnet_voc3_sem", str(out / "sem_seg_all.json"), image_root, str(out)
    )
    (tmp_path / "train.txt").write_text("2011_000025\n")
    register_mask_subset(
        "test_dasnet_voc3_list",
        "test_dasnet_voc3",
        image_list=str(tmp_path / "train.txt"),
        sem_seg_dataset="test_dasnet_voc3_sem",
    )
    assert MetadataCatalog.get("test_dasnet_voc3_list").ignore_label == 255
    _, mapper = stage2
    for record in DatasetCatalog.get("test_dasnet_voc3_list"):
        mapped = mapper(record)
        listed = record["file_name"].endswith("2011_000025.jpg")
        assert ("sem_seg" in mapped) == listed
        assert bool(mapped["instances"].gt_mask_valid.all()) == listed
        assert listed or not mapped["instances"].gt_mask_valid.any()
        if listed:  # the label map's classes are those of the instances (VOC index = id + 1)
            values = set(torch.unique(mapped["sem_seg"]).tolist()) - {0, 255}
            assert values == {c + 1 for c in mapped["instances"].gt_classes.tolist()}
