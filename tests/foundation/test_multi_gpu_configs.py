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
