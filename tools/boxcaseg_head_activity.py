#!/usr/bin/env python
"""Which BoxCaseg heads are alive: per stage-1 checkpoint and head, the share of the first hidden
layer's channels that are positive somewhere on box patches of a dataset, and the share of
positive values (``BoxCaseg.head_activity``).

A transferred head at ~0 % has every ReLU dead and predicts one constant map; this is how the
weight-transfer failure of docs/boxcaseg.md was found. Example (a run's checkpoints in order;
the pattern quoted, so the tool expands it)::

    DETECTRON2_DATASETS=../shared/data python tools/boxcaseg_head_activity.py \\
        --config-file configs/BoxCaseg/demo_pennfudan_ecssd_Lite0_FPN.yaml \\
        --weights "output/boxcaseg_demo_lite0/stage1/model_0*.pth"
"""

import argparse
import glob
import os
import sys
from typing import List, Sequence

import torch
from detectron2.data import DatasetCatalog

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from weaksup import load_config  # noqa: E402
from weaksup.engine import resolve_device  # noqa: E402
from weaksup.methods.boxcaseg.data import BoxCasegTestMapper  # noqa: E402
from weaksup.methods.boxcaseg.pipeline import BoxCasegTrainer  # noqa: E402
from weaksup.utils.checkpoint import SafeDetectionCheckpointer  # noqa: E402


def box_patches(cfg, model, records: Sequence[dict], max_patches: int) -> torch.Tensor:
    """Normalized test patches of the GT boxes of ``records``, at most ``max_patches``."""
    mapper, patches = BoxCasegTestMapper(cfg, False), []
    for r in records:
        x = mapper(r)
        boxes = x["instances"].gt_boxes.tensor
        if len(boxes):
            patches.append(model.crop_patches(x["image"], boxes.to(model.device)))
        if sum(len(p) for p in patches) >= max_patches:
            break
    if not patches:
        raise ValueError("no GT box in the dataset's records: nothing to crop")
    return torch.cat(patches)[:max_patches]


def activity_rows(cfg, weights: Sequence[str], records: Sequence[dict], max_patches: int) -> List:
    """``[weights, head, channels active %, positive %]`` per checkpoint and head."""
    model = BoxCasegTrainer.build_model(cfg).eval()
    rows = []
    for w in weights:
        if not os.path.isfile(w):
            raise FileNotFoundError(f"--weights {w}: no such file")
        SafeDetectionCheckpointer(model).load(w)
        patches = box_patches(cfg, model, records, max_patches)
        for head, (channels, values) in model.head_activity(patches).items():
            rows.append([w, head, 100 * channels, 100 * values])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, help="the stage-1 config of the weights")
    parser.add_argument(
        "--weights", required=True, help="a stage-1 checkpoint, or a glob pattern of several"
    )
    parser.add_argument("--dataset", default="ecssd_heldout_instances", help="boxes to crop")
    parser.add_argument("--max-patches", type=int, default=64, help="box patches to look at")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    cfg = load_config(args.config_file, args.opts)
    resolve_device(cfg)
    weights = sorted(glob.glob(args.weights))
    if not weights:
        raise FileNotFoundError(f"--weights {args.weights}: no such file")
    records = [r for r in DatasetCatalog.get(args.dataset) if r.get("annotations")]
    rows = activity_rows(cfg, weights, records, args.max_patches)
    print(f"\n{args.dataset}, up to {args.max_patches} box patches")
    print("| weights | head | channels active % | positive values % |\n|---|---|---|---|")
    for w, head, channels, values in rows:
        print(f"| {w} | {head} | {channels:.1f} | {values:.1f} |")


if __name__ == "__main__":
    main()
