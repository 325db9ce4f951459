"""The DASNet meta-architecture: what each training stage trains, joint training's gradient path
through the attention, and the output format the evaluators read (Secs. 3.5, 3.4)."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from weaksup.utils.config_file import merge_config_file
from conftest import REPO_ROOT, shared_path
from weaksup import add_weaksup_config
from weaksup.data import build_mapper

STAGE2 = REPO_ROOT / "configs" / "DASNet" / "demo" / "pennfudan_stage2_seg_R18_FPN_GN.yaml"


def _cfg(*opts):
    cfg = get_cfg()
    add_weaksup_config(cfg)
    merge_config_file(cfg, str(STAGE2))
    cfg.merge_from_list(
        ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TRAIN", "(128,)"]
        + ["INPUT.MAX_SIZE_TRAIN", "160", "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST"]
        + ["160", "TEST.DETECTIONS_PER_IMAGE", "3", *opts]
    )
    return cfg


@pytest.fixture(scope="module")
def batch():
    shared_path("PennFudanPed")
    mapper = build_mapper(_cfg(), is_train=True)
    return [mapper(r) for r in DatasetCatalog.get("pennfudan_train_seg5_masks")[:2]]


def _trainable(model):
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_stages_freeze_what_they_do_not_train():
    det = build_model(_cfg("MODEL.DASNET.STAGE", "detection"))
    assert _trainable(det) == {"detector"}
    seg = build_model(_cfg())
    assert _trainable(seg) == {"decoder"}
    seg.train()
    assert not seg.detector.training and seg.decoder.training
    semantic_only = build_model(_cfg("MODEL.MASK_ON", "False"))
    assert not any(p.requires_grad for p in semantic_only.decoder.ps_predictor.parameters())
    assert _trainable(build_model(_cfg("MODEL.DASNET.STAGE", "joint"))) == {"detector", "decoder"}
    with pytest.raises(ValueError, match="STAGE"):
        build_model(_cfg("MODEL.DASNET.STAGE", "both"))
    with pytest.raises(ValueError, match="neither"):
        build_model(_cfg("MODEL.MASK_ON", "False", "MODEL.DASNET.SEMANTIC_ON", "False"))


def test_joint_training_reaches_the_backbone_through_the_attention(batch):
    torch.manual_seed(0)
    model = build_model(_cfg("MODEL.DASNET.STAGE", "joint"))
    model.train()
    with EventStorage():
        losses = model(batch)
    assert {"loss_cls", "loss_rpn_cls", "loss_sem_seg", "loss_instance_mask"} <= set(losses)
    # the segmentation loss alone gives the backbone a gradient (Sec. 3.5, joint training)
    losses["loss_sem_seg"].backward()
    grad = model.detector.backbone.bottom_up.stem.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.detector.roi_heads.box_predictor.cls_score.weight.grad is None


def test_segmentation_stage_leaves_the_detector_untouched(batch):
    torch.manual_seed(0)
    model = build_model(_cfg())
    model.train()
    with EventStorage():
        losses = model(batch)
    assert set(losses) == {"loss_sem_seg", "loss_instance_score", "loss_instance_mask"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.detector.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_inference_outputs_for_the_evaluators():
    shared_path("PennFudanPed")
    torch.manual_seed(0)
    cfg = _cfg()
    model = build_model(cfg).eval()
    record = DatasetCatalog.get("pennfudan_val_sem_seg")[0]
    with torch.no_grad():
        out = model([build_mapper(cfg, is_train=False)(record)])[0]
    inst = out["instances"]
    assert inst.image_size == (record["height"], record["width"])
    assert {"pred_boxes", "scores", "pred_classes", "pred_masks"} <= set(inst.get_fields())
    assert inst.pred_masks.shape == (len(inst), record["height"], record["width"])
    assert inst.pred_masks.dtype == torch.bool and len(inst) == 3
    sem = out["sem_seg"]
    assert sem.shape == (2, record["height"], record["width"])
    # one class: channel 1 is the class map, channel 0 one minus it (the multi-class rule is
    # checked in test_semantic_inference_takes_the_max_over_class_specific_maps)
    assert torch.allclose(sem[0], 1 - sem[1], atol=1e-5) and sem[1].max() > 0


def test_semantic_inference_takes_the_max_over_class_specific_maps():
    """Sec. 3.5 with 3 classes on a real image's features: channel c + 1 is the decoder's
    foreground probability with class c's boxes (score >= the threshold) in the attention, the
    same as with class c detected alone, 0 outside those boxes; channel 0 is one minus the max;
    a class detected only below the threshold has a zero map."""
    from detectron2.structures import Boxes, Instances

    shared_path("PennFudanPed")
    torch.manual_seed(0)
    cfg = _cfg("MODEL.ROI_HEADS.NUM_CLASSES", "3", "MODEL.MASK_ON", "False")
    model = build_model(cfg).eval()
    record = DatasetCatalog.get("pennfudan_val_sem_seg")[0]
    x = build_mapper(cfg, is_train=False)(record)
    images = model.detector.preprocess_image([x])
    with torch.no_grad():
        features = model.detector.backbone(images.tensor)
    feats = [features[f] for f in model.in_features]
    size = tuple(images.tensor.shape[-2:])

    def dets(rows):
        inst = Instances(size)
        inst.pred_boxes = Boxes(torch.tensor([r[0] for r in rows], dtype=torch.float32))
        inst.scores = torch.tensor([r[1] for r in rows])
        inst.pred_classes = torch.tensor([r[2] for r in rows])
        return inst

    rows = [
        ((10.0, 10.0, 60.0, 100.0), 0.9, 0),
        ((40.0, 20.0, 90.0, 110.0), 0.8, 2),
        ((70.0, 5.0, 120.0, 90.0), 0.7, 2),
        ((5.0, 50.0, 50.0, 120.0), 0.01, 1),  # below the threshold: no map for class 1
    ]
    with torch.no_grad():
        sem = model._semantic_inference(feats, [dets(rows)], size)[0]
        alone = {
            c: model._semantic_inference(feats, [dets([r for r in rows if r[2] == c])], size)[0]
            for c in (0, 2)
        }
    assert sem.shape == (4, *size)
    for c in (0, 2):
        torch.testing.assert_close(sem[c + 1], alone[c][c + 1])
        inside = torch.zeros(size, dtype=torch.bool)
        for (x0, y0, x1, y1), _, k in rows:
            if k == c:
                inside[int(y0) : int(y1), int(x0) : int(x1)] = True
        assert sem[c + 1][~inside].abs().max() == 0 and sem[c + 1][inside].max() > 0
    assert sem[2].abs().max() == 0
    torch.testing.assert_close(sem[0], 1 - sem[1:].max(dim=0).values)
    overlap = sem[1] * sem[3]  # the two classes' boxes overlap: both maps > 0 there
    assert overlap.max() > 0 and not torch.allclose(sem[1], sem[3])


def test_random_box_subset_draws_non_empty_subsets_of_the_class_boxes():
    """Sec. 4.1: a class-specific input holds a random number (1..n) of the class's boxes."""
    from detectron2.structures import BitMasks, Boxes, Instances

    model = build_model(_cfg("MODEL.DASNET.RANDOM_BOX_SUBSET", "True"))
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(
        torch.tensor([[0, 0, 8, 8], [10, 10, 20, 20], [30, 5, 40, 9], [2, 40, 9, 60]]).float()
    )
    inst.gt_classes = torch.tensor([0, 0, 0, 1])
    inst.gt_masks = BitMasks(torch.ones(4, 64, 64, dtype=torch.bool))
    inst.gt_mask_valid = torch.tensor([True, True, True, True])
    torch.manual_seed(0)
    sizes = set()
    for _ in range(40):
        queries, members = model._training_queries([inst], [None])
        assert queries.classes.tolist() == [0, 1]
        for q, index in enumerate(members):
            assert len(index) >= 1 and len(set(index.tolist())) == len(index)
            assert (inst.gt_classes[index] == queries.classes[q]).all()
            torch.testing.assert_close(
                queries.boxes[queries.box_query == q], inst.gt_boxes.tensor[index]
            )
        sizes.add(len(members[0]))
    assert sizes == {1, 2, 3}
    queries, members = build_model(_cfg())._training_queries([inst], [None])
    assert [m.tolist() for m in members] == [[0, 1, 2], [3]]


def test_retinanet_detection_module(batch):
    """Sec. 3.2 allows any detector: RetinaNet (a DenseDetector) as the detection module, jointly
    trained (every module gets a gradient) and run at inference."""
    cfg = _cfg(
        "MODEL.DASNET.DETECTOR", "RetinaNet", "MODEL.DASNET.STAGE", "joint",
        "MODEL.BACKBONE.NAME", "build_retinanet_resnet_fpn_backbone",
        "MODEL.RETINANET.NUM_CLASSES", "1", "MODEL.RETINANET.NUM_CONVS", "1",
        "MODEL.RETINANET.SCORE_THRESH_TEST", "0.0",
        "MODEL.DASNET.IN_FEATURES", "['p3', 'p4', 'p5', 'p6']",
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg)
    assert type(model.detector).__name__ == "RetinaNet" and model.num_classes == 1
    model.train()
    with EventStorage():
        losses = model(batch)
    assert {"loss_cls", "loss_box_reg", "loss_sem_seg", "loss_instance_mask"} <= set(losses)
    sum(losses.values()).backward()
    for name in ("detector.head", "detector.backbone.bottom_up", "decoder"):
        module = model.get_submodule(name)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    model.eval()
    with torch.no_grad():
        out = model([{k: x[k] for k in ("image", "height", "width")} for x in batch])
    for x, o in zip(batch, out):
        assert o["sem_seg"].shape == (2, x["height"], x["width"])
        inst = o["instances"]
        assert len(inst) == 3 and inst.pred_masks.shape[1:] == (x["height"], x["width"])


def test_box_attention_off_gives_the_decoder_the_whole_maps():
    """MODEL.DASNET.BOX_ATTENTION False (the ablation of Eq. 1): each query's decoder input is its
    image's maps, unmasked; on, it is zero outside the query's boxes and equal inside."""
    from weaksup.methods.dasnet.attention import AttentionQueries

    on, off = build_model(_cfg()), build_model(_cfg("MODEL.DASNET.BOX_ATTENTION", "False"))
    assert on.box_attention and not off.box_attention
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)]
    queries = AttentionQueries(
        image_index=torch.tensor([1, 0]),
        classes=torch.tensor([0, 0]),
        boxes=torch.tensor([[0.0, 0.0, 32.0, 32.0], [32.0, 32.0, 64.0, 64.0]]),
        box_query=torch.tensor([0, 1]),
    )
    for f, g in zip(feats, off._attend(feats, queries, (64, 64))):
        torch.testing.assert_close(g, f[[1, 0]])
    fine = on._attend(feats, queries, (64, 64))[0]  # stride 8: the box is the top-left 4 x 4
    torch.testing.assert_close(fine[0, :, :4, :4], feats[0][1, :, :4, :4])
    assert fine[0, :, 4:].abs().sum() == 0 and fine[0, :, :, 4:].abs().sum() == 0
    torch.testing.assert_close(fine[1, :, 4:, 4:], feats[0][0, :, 4:, 4:])
    assert fine[1, :, :4].abs().sum() == 0


def test_polygon_targets_follow_the_boxes_device():
    """Polygon ``gt_masks`` (COCO / VOC json) are rasterised on the CPU; the dense targets must
    land on the device of the instances (on a GPU they are indexed with CUDA masks). The meta
    device stands in for CUDA on a CPU machine."""
    from detectron2.structures import Boxes, Instances, PolygonMasks

    from weaksup.methods.dasnet.meta_arch import _dense_masks

    inst = Instances((8, 10))
    inst.gt_boxes = Boxes(torch.tensor([[1.0, 1.0, 6.0, 5.0]], device="meta"))
    inst.gt_masks = PolygonMasks([[[1.0, 1.0, 6.0, 1.0, 6.0, 5.0, 1.0, 5.0]]])
    dense = _dense_masks(inst, 12, 16)
    assert dense.device.type == "meta" and dense.shape == (1, 12, 16)
