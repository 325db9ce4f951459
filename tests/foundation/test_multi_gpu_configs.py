"""The README's multi-GPU commands of one training (no pipeline) as configs: each runs at 1, 2,
3, 4 and 8 processes (Detectron2's ``SOLVER.REFERENCE_WORLD_SIZE`` rule). The pipelines' stage
configs are checked in their methods' tests (``test_*_multi_gpu.py``)."""

import pytest

from conftest import REPO_ROOT, check_world_sizes
from weaksup import load_config

# (config, --num-gpus) of the README's multi-GPU commands, and the VOC configs of the same methods
COMMANDS = [
    ("configs/PseudoMasks/box_mask_rcnn_R50_FPN_coco.yaml", 4),
    ("configs/PseudoMasks/box_mask_rcnn_R50_FPN_voc.yaml", 4),
    ("configs/BoxSup/voc_boxsup_R101_OS8.yaml", 4),
    ("configs/BoxInst/boxinst_mask_rcnn_R50_FPN_coco.yaml", 8),
    ("configs/BoxInst/boxinst_mask_rcnn_R50_FPN_voc.yaml", 8),
    ("configs/DASNet/voc_stage1_det_box16.5k_R50_FPN.yaml", 8),
    ("configs/DASNet/voc_instance_seg1464_box16.5k_R50_FPN.yaml", 8),
    ("configs/DASNet/voc_semantic_seg10k_box16.5k_R50_FPN.yaml", 8),
]


@pytest.mark.parametrize("path,gpus", COMMANDS)
def test_runs_at_1_2_3_4_and_8_processes(path, gpus):
    cfg = load_config(str(REPO_ROOT / path))
    assert not cfg.WEAKSUP.PIPELINE, f"{path}: a pipeline, checked in its method's tests"
    check_world_sizes(path, cfg, gpus)


def test_method_iteration_counts_follow_the_world_size():
    """``WEAKSUP.ITERATION_KEYS`` (BoxInst's pairwise warm-up, BoxSup's epoch length) scale as
    Detectron2 scales ``SOLVER.MAX_ITER``; 0 ("derive it") stays 0, a count never drops to 0."""
    from weaksup.engine import WeaksupTrainer

    cfg = load_config(str(REPO_ROOT / "configs/BoxInst/boxinst_mask_rcnn_R50_FPN_coco.yaml"))
    assert cfg.SOLVER.REFERENCE_WORLD_SIZE == 8 and cfg.MODEL.BOXINST.PAIRWISE.WARMUP_ITERS == 10000
    four = WeaksupTrainer.auto_scale_workers(cfg, 4)
    assert four.MODEL.BOXINST.PAIRWISE.WARMUP_ITERS == 20000
    assert four.SOLVER.MAX_ITER == 2 * cfg.SOLVER.MAX_ITER
    assert WeaksupTrainer.auto_scale_workers(cfg, 3).MODEL.BOXINST.PAIRWISE.WARMUP_ITERS == 26667
    assert WeaksupTrainer.auto_scale_workers(cfg, 8) is cfg  # the reference size: unchanged
    boxsup = load_config(str(REPO_ROOT / "configs/BoxSup/voc_boxsup_R101_OS8.yaml"))
    assert boxsup.SOLVER.REFERENCE_WORLD_SIZE == 4 and boxsup.WEAKSUP.BOXSUP.EPOCH_ITERS == 0
    assert WeaksupTrainer.auto_scale_workers(boxsup, 8).WEAKSUP.BOXSUP.EPOCH_ITERS == 0
    boxsup.WEAKSUP.BOXSUP.EPOCH_ITERS = 48
    assert WeaksupTrainer.auto_scale_workers(boxsup, 8).WEAKSUP.BOXSUP.EPOCH_ITERS == 24
    assert WeaksupTrainer.auto_scale_workers(boxsup, 1).WEAKSUP.BOXSUP.EPOCH_ITERS == 192
    boxsup.WEAKSUP.BOXSUP.EPOCH_ITERS = 1
    assert WeaksupTrainer.auto_scale_workers(boxsup, 8).WEAKSUP.BOXSUP.EPOCH_ITERS == 1
    boxsup.WEAKSUP.ITERATION_KEYS = ["WEAKSUP.BOXSUP.NO_SUCH_KEY"]
    with pytest.raises(KeyError, match="NO_SUCH_KEY"):
        WeaksupTrainer.auto_scale_workers(boxsup, 8)
