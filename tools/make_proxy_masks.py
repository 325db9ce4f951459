#!/usr/bin/env python
"""BoxCaseg stage 2 alone: proxy masks of GT boxes with a trained stage-1 network (Sec. 3.4).

Two uses:

* the pipeline's stage 2: proxy masks of every training set of the pipeline config, with its
  stage-1 model (``<OUTPUT_DIR>/stage1/model_final.pth``), into
  ``<OUTPUT_DIR>/proxy_masks/<dataset>.json``; a file made with the same settings and stage-1
  model is kept (weaksup.engine.stages); quality (mIoU*, IoU@50, IoU@75, drop rate) is logged for
  ``WEAKSUP.BOXCASEG.PROXY.GT_DATASETS``;
* any box json (``--input-json`` / ``--image-root``, its masks never read) labelled with a
  stage-1 checkpoint (``--weights``, default the pipeline's) into ``--output``, so your own boxes
  get proxy masks that ``tools/eval_pseudo_masks.py`` can score and ``WEAKSUP.MASK_SOURCE
  pseudo_json`` can train on.

Either way the json is the pseudo-mask tool's format (COCO json, RLE masks, ``pseudo_method``,
``box_agreement``, ``mask_valid``, ``fallback``), merged ("smaller object better") and dropped
(proxy box agreement < ``WEAKSUP.BOXCASEG.PROXY.DROP_THRESHOLD``); an interrupted run resumes from
its finished shards. Examples::

    python tools/make_proxy_masks.py --config-file configs/boxcaseg_coco.yaml --num-gpus 4
    DETECTRON2_DATASETS=../shared/data python tools/make_proxy_masks.py \\
        --config-file configs/BoxCaseg/demo_pennfudan_Lite0_FPN.yaml
    python tools/make_proxy_masks.py --config-file configs/BoxCaseg/demo_pennfudan_Lite0_FPN.yaml \\
        --input-json my_boxes.json --image-root images/ --weights stage1/model_final.pth \\
        --output my_boxes_proxy.json
"""

import os

from weaksup.data.datasets import register_coco_boxonly
from weaksup.methods.boxcaseg.pipeline import BoxCasegTrainer, make_proxy_masks, stage1_config
from weaksup.methods.boxcaseg.proxy_masks import generate_proxy_masks
from weaksup.tools.train_net import build_parser, launch_job, setup  # as train_net.py
from weaksup.utils.checkpoint import SafeDetectionCheckpointer

INPUT_DATASET = "make_proxy_masks_input_boxonly"


def label_json(cfg, cfg1, args) -> str:
    """Proxy masks of the boxes of ``args.input_json`` with ``args.weights`` into ``args.output``."""
    for path, what in ((args.input_json, "--input-json"), (args.weights, "--weights")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} {path}: no such file")
    register_coco_boxonly(INPUT_DATASET, {}, args.input_json, args.image_root)
    model = BoxCasegTrainer.build_model(cfg1)
    SafeDetectionCheckpointer(model).load(args.weights)
    p = cfg.WEAKSUP.BOXCASEG.PROXY
    return generate_proxy_masks(
        cfg1,
        model,
        INPUT_DATASET,
        args.output,
        weights=args.weights,
        merge=p.MERGE,
        drop_threshold=p.DROP_THRESHOLD,
        shard_size=p.SHARD_SIZE,
    )


def main(args):
    cfg = setup(args)
    cfg1 = stage1_config(cfg)
    if args.input_json:
        if not args.output:
            raise ValueError("--input-json needs --output (the proxy-mask json to write)")
        args.weights = args.weights or os.path.join(cfg1.OUTPUT_DIR, "model_final.pth")
        return label_json(cfg, cfg1, args)
    return make_proxy_masks(cfg, cfg1)[0]


def cli(argv=None) -> None:
    """Parse the arguments (``train_net.py``'s and the ones above) and launch :func:`main`."""
    parser = build_parser()
    parser.add_argument("--input-json", default="", help="COCO json of boxes to label (any data)")
    parser.add_argument("--image-root", default="", help="folder of the json's file names")
    parser.add_argument("--weights", default="", help="stage-1 checkpoint (with --input-json)")
    parser.add_argument("--output", default="", help="proxy-mask json to write (--input-json)")
    launch_job(main, parser.parse_args(argv))


if __name__ == "__main__":
    cli()
