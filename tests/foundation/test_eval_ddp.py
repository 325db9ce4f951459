"""weaksup's own evaluators gather over DDP ranks: 2 CPU processes (gloo) give 1 process's result."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluators
from detectron2.structures import Instances
from detectron2.utils import comm
from scipy import ndimage

from conftest import launch_on_cpu, pennfudan_records, register_dataset
from weaksup.evaluation import BoxMaskQualityEvaluator, VOCInstanceEvaluator

DATASET = "weaksup_test_eval_ddp_pennfudan"


def _evaluate(out_dir: str) -> None:
    """Evaluate eroded PennFudan masks (scores rounded, so they tie across images) with this
    process's share of the images, interleaved so no rank sees them in dataset order."""
    records, gt_masks = pennfudan_records(12)
    if DATASET not in DatasetCatalog.list():
        register_dataset(DATASET, records, ["person"])
    evaluator = DatasetEvaluators([VOCInstanceEvaluator(DATASET), BoxMaskQualityEvaluator(DATASET)])
    evaluator.reset()
    rank, world_size = comm.get_rank(), comm.get_world_size()
    for i in range(rank, len(records), world_size):
        masks = [
            ndimage.binary_erosion(m, iterations=1 + 2 * (k % 3)) for k, m in enumerate(gt_masks[i])
        ]
        inst = Instances(masks[0].shape)
        inst.pred_masks = torch.from_numpy(np.array(masks))
        inst.scores = torch.tensor([0.5 + 0.1 * (k % 3) for k in range(len(masks))])
        inst.pred_classes = torch.zeros(len(masks), dtype=torch.int64)
        evaluator.process([{"image_id": records[i]["image_id"]}], [{"instances": inst}])
    results = evaluator.evaluate()
    Path(out_dir, f"{world_size}-{rank}.json").write_text(json.dumps(results))


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(tmp_path):
    _evaluate(str(tmp_path))
    launch_on_cpu(_evaluate, 2, str(tmp_path))
    single = json.loads((tmp_path / "1-0.json").read_text())
    assert set(single) == {"voc_instance", "box_mask_quality"}
    assert 0 < single["voc_instance"]["mAP@0.75"] < single["voc_instance"]["mAP@0.25"]
    assert json.loads((tmp_path / "2-0.json").read_text()) == single
    assert json.loads((tmp_path / "2-1.json").read_text()) == {}
