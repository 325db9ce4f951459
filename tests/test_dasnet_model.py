"""The DASNet meta-architecture: what each training stage trains, joint training's gradient path
through the attention, and the output format the evaluators read (Secs. 3.5, 3.4)."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from conftest import REPO_ROOT, shared_path
from weaksup import add_weaksup_config
from weaksup.data import build_mapper

STAGE2 = REPO_ROOT / "configs" / "DASNet" / "demo" / "pennfudan_stage2_seg_R18_FPN_GN.yaml"


def _cfg(*opts):
    cfg = get_cfg()
    add_weaksup_config(cfg)
    cfg.merge_from_file(str(STAGE2))
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
    assert all(p.grad is not None for p in model.decoder.parameters())


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
    # channel 0 is one minus the best class map: the argmax is the max over class maps
    assert torch.allclose(sem[0], 1 - sem[1], atol=1e-5)
