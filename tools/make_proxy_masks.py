#!/usr/bin/env python
"""BoxCaseg stage 2 alone: proxy masks of every GT box of the training sets (BoxCaseg Sec. 3.4).

Uses the stage-1 model of the pipeline config (``<OUTPUT_DIR>/stage1/model_final.pth``) and writes
``<OUTPUT_DIR>/proxy_masks/<dataset>.json`` in the pseudo-mask tool's format (COCO json, RLE masks,
``pseudo_method``, ``box_agreement``, ``mask_valid``, ``fallback``), merged ("smaller object
better") and dropped (proxy box agreement < ``WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD``). A file made
with the same settings and stage-1 model is kept (weaksup.engine.stages); an interrupted run
resumes from its finished shards. Quality (mIoU*, IoU@50,
IoU@75, drop rate) is logged for ``WEAKSUP.BOXCASEG.PROXY.GT_DATASETS``. Examples::

    python tools/make_proxy_masks.py --config-file configs/boxcaseg_coco.yaml --num-gpus 4
    DETECTRON2_DATASETS=../shared/data python tools/make_proxy_masks.py \\
        --config-file configs/boxcaseg_demo_pennfudan.yaml
"""

import os
import sys

from detectron2.engine import default_argument_parser

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_net import setup  # noqa: E402  (same config, logging and device set-up)

from weaksup.methods.boxcaseg.pipeline import make_proxy_masks, stage1_config  # noqa: E402
from weaksup.engine.launch import launch  # noqa: E402


def main(args):
    cfg = setup(args)
    return make_proxy_masks(cfg, stage1_config(cfg))[0]


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
