#!/usr/bin/env python
"""Train and evaluate weaksup models with Detectron2's trainer (``setup`` and ``main`` are in
tools/train_net.py, installed as ``weaksup.tools.train_net`` and the ``weaksup-train`` command).

Examples:
    # the README demo: pseudo masks of PennFudan's boxes, then a Mask R-CNN trained on them
    python train_net.py --config-file configs/PseudoMasks/demo/pennfudan_consensus_mask_rcnn_Lite0_FPN.yaml
    # several processes: GPUs with CUDA, CPU processes over gloo without
    python train_net.py --config-file configs/boxcaseg_coco.yaml --num-gpus 4
    # your own box-only data (COCO json; see README "Your own data")
    python train_net.py --config-file CONFIG --register mine_train_boxonly=train.json:images
    # resume, or evaluate a checkpoint
    python train_net.py --config-file CONFIG --resume
    python train_net.py --config-file CONFIG --eval-only MODEL.WEIGHTS output/model_final.pth
    # collectives inside training time out after --dist-timeout minutes (default 30)
    python train_net.py --config-file CONFIG --num-gpus 8 --dist-timeout 60
"""

from weaksup.tools.train_net import cli, main, setup  # noqa: F401  (main, setup: as Detectron2's)

if __name__ == "__main__":
    cli()
