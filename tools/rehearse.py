#!/usr/bin/env python
"""
Rehearse the multi-GPU paper commands of the README and docs/ on the mini datasets of
``datasets/make_rehearsal_data.py`` (issue 29): each command as the README gives it, with
``--num-gpus 2`` (two CPU processes over gloo) and only schedule and size keys changed
(iterations, learning rate, image sizes, batch; the ImageNet EfficientNet-Lite0 in place of a
ResNet trunk, HRNet at random init) and ``SyncBN`` made Detectron2's ``naiveSyncBN`` (torch's
needs CUDA), through every stage and every evaluator of its config::

    python datasets/make_rehearsal_data.py --output /tmp/rehearsal_datasets
    python tools/rehearse.py --datasets /tmp/rehearsal_datasets [--only box_mask_rcnn_coco ...]

Each rehearsal runs in its own ``OUTPUT_DIR`` under ``--output`` and prints one line with its
wall time; a failure prints the command and the log's last lines and the tool exits non-zero.
What it cannot show (NCCL, SyncBatchNorm on GPUs, GPU memory) is listed in docs/foundation.md.
"""

import argparse
import os
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# schedule and size keys only: two iterations, small images, no pretrained file, no loader
# workers, evaluation once at the end (the device and the batch, one image per process at the
# config's SOLVER.REFERENCE_WORLD_SIZE, are set apart)
TINY = [
    "SOLVER.MAX_ITER", "2",
    "SOLVER.STEPS", "()",
    "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.BASE_LR", "0.0001",  # random-init trunks diverge at the paper rates in one step
    "SOLVER.CHECKPOINT_PERIOD", "1000",
    "TEST.EVAL_PERIOD", "0",
    "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "192",
    "INPUT.MIN_SIZE_TEST", "128",
    "INPUT.MAX_SIZE_TEST", "192",
    "MODEL.WEIGHTS", "",
    "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip

# BoxCaseg stage 1 mixes 9 box and 7 salient patches in each process's batch: 16 small patches
BOXCASEG_STAGE1_PER_PROCESS = 16
BOXCASEG_STAGE1_TINY = [
    "INPUT.BOXCASEG.PATCH_SIZE", "64",
    "INPUT.BOXCASEG.SALIENT_RESIZE", "72",
    "INPUT.BOXCASEG.TEST_SIZE", "64",
]  # fmt: skip

# name -> the README command's steps: each a config file, the keys its rehearsal adds (a size
# key the generic ones miss) and the keys naming the stage configs a pipeline loads itself, with
# the stage's own extra keys (each gets a copy with the schedule and size keys:
# OUTPUT_DIR/<stage>.yaml)
REHEARSALS: Dict[str, List[Dict]] = {
    "box_mask_rcnn_coco": [{"config": "configs/PseudoMasks/box_mask_rcnn_R50_FPN_coco.yaml"}],
    "box_mask_rcnn_voc": [{"config": "configs/PseudoMasks/box_mask_rcnn_R50_FPN_voc.yaml"}],
    "boxinst_coco": [{"config": "configs/BoxInst/boxinst_mask_rcnn_R50_FPN_coco.yaml"}],
    "boxinst_voc": [{"config": "configs/BoxInst/boxinst_mask_rcnn_R50_FPN_voc.yaml"}],
    "boxsup_voc": [
        {
            "config": "configs/BoxSup/voc_boxsup_R101_OS8.yaml",
            "opts": ["INPUT.CROP.SIZE", "(96, 96)", "INPUT.MIN_SIZE_TEST", "0"],
        }
    ],
    "dasnet_voc": [
        {"config": "configs/DASNet/voc_stage1_det_box16.5k_R50_FPN.yaml", "dir": "stage1"},
        {
            "config": "configs/DASNet/voc_instance_seg1464_box16.5k_R50_FPN.yaml",
            "opts": ["MODEL.WEIGHTS", "{out}/stage1/model_final.pth"],
        },
    ],
    "boxcaseg_coco": [
        {
            "config": "configs/boxcaseg_coco.yaml",
            "stages": {"WEAKSUP.BOXCASEG.STAGE1_CONFIG": BOXCASEG_STAGE1_TINY},
            "opts": ["INPUT.BOXCASEG.TEST_SIZE", "64"],
        }
    ],
    "boxcaseg_voc": [
        {
            "config": "configs/BoxCaseg/voc_proxy_mask_rcnn_R101_FPN.yaml",
            "stages": {"WEAKSUP.BOXCASEG.STAGE1_CONFIG": BOXCASEG_STAGE1_TINY},
            "opts": ["INPUT.BOXCASEG.TEST_SIZE", "64"],
        }
    ],
    "hybrid_voc": [
        {
            "config": "configs/Hybrid/voc_pipeline_R50_FPN.yaml",
            "stages": {
                "WEAKSUP.HYBRID.LARGE_CONFIG": [],
                "WEAKSUP.HYBRID.SMALL_CONFIG": [],
                "WEAKSUP.HYBRID.BASELINE_CONFIG": [],
            },
        }
    ],
    "wei_voc": [
        {
            "config": "configs/Wei/voc_deeplab_R101_OS8.yaml",
            "opts": ["WEAKSUP.WEI.NUM_CANDIDATES", "50", "INPUT.MIN_SIZE_TEST", "0"],
            "stages": {"WEAKSUP.WEI.HCP_IMAGE_CONFIG": [], "WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG": []},
        }
    ],
}

# rehearsals whose pipeline another one runs (the VOC twin of a COCO command): the CI test
# runs one rehearsal per pipeline
SAME_PIPELINE = {
    "box_mask_rcnn_voc": "box_mask_rcnn_coco",
    "boxinst_voc": "boxinst_coco",
    "boxcaseg_voc": "boxcaseg_coco",
}


def cpu_norms(cfg, prefix: str = "") -> List[str]:
    """``KEY naiveSyncBN`` for every ``SyncBN`` of ``cfg``: torch's SyncBatchNorm needs CUDA
    modules under DDP; Detectron2's all-reduce version syncs CPU processes over gloo."""
    out = []
    for k, v in cfg.items():
        if hasattr(v, "items"):
            out += cpu_norms(v, f"{prefix}{k}.")
        elif v == "SyncBN":
            out += [f"{prefix}{k}", "naiveSyncBN"]
    return out


# ResNet trunks -> the ImageNet EfficientNet-Lite0 (random-init ResNets with frozen BN give
# infinite boxes within a step); HRNet stays, random init with BN
LITE0_FOR = {
    "build_resnet_fpn_backbone": "build_efficientnet_fpn_backbone",
    "build_resnet_enhanced_fpn_backbone": "build_efficientnet_enhanced_fpn_backbone",
    "build_resnet_backbone": "build_efficientnet_backbone",
    "build_dilated_resnet_backbone": "build_efficientnet_backbone",
}


def lite0_trunk(cfg) -> List[str]:
    """The keys that put the ImageNet Lite0 trunk in place of ``cfg``'s ResNet (same output
    names, strides and output stride), none for other trunks."""
    name = cfg.MODEL.BACKBONE.NAME
    if name not in LITE0_FOR:
        return []
    out = ["MODEL.BACKBONE.NAME", LITE0_FOR[name]]
    out += ["MODEL.WEIGHTS", "weaksup://ImageNetPretrained/efficientnet_lite0.pth"]
    out += [
        "MODEL.PIXEL_MEAN",
        "[123.675, 116.28, 103.53]",
        "MODEL.PIXEL_STD",
        "[58.395, 57.12, 57.375]",
    ]
    out += ["INPUT.FORMAT", "RGB", "MODEL.EFFICIENTNET.VARIANT", "lite0"]
    out += ["MODEL.EFFICIENTNET.OUT_FEATURES", str(list(cfg.MODEL.RESNETS.OUT_FEATURES))]
    if name == "build_dilated_resnet_backbone":
        out += ["MODEL.EFFICIENTNET.OUTPUT_STRIDE", str(cfg.MODEL.RESNETS.OUTPUT_STRIDE)]
    return out


def batch(cfg, per_process: int = 1) -> List[str]:
    """``SOLVER.IMS_PER_BATCH`` giving ``per_process`` images per process: at the config's
    ``SOLVER.REFERENCE_WORLD_SIZE`` (Detectron2 rescales it to the 2 processes), else at 2."""
    return ["SOLVER.IMS_PER_BATCH", str(per_process * (cfg.SOLVER.REFERENCE_WORLD_SIZE or 2))]


def _device_keys(cfg, device: str) -> List[str]:
    """``MODEL.DEVICE device``; on the CPU also :func:`cpu_norms`."""
    return (cpu_norms(cfg) if device == "cpu" else []) + ["MODEL.DEVICE", device]


def _stage_copy(path: str, out_dir: str, key: str, extra: Sequence[str], device: str) -> str:
    """The stage config ``path`` with the rehearsal's keys, written whole into ``out_dir``."""
    from weaksup.config import load_config

    cfg = load_config(os.path.join(ROOT, path), TINY + list(extra))
    per_process = BOXCASEG_STAGE1_PER_PROCESS if key.endswith("BOXCASEG.STAGE1_CONFIG") else 1
    cfg.merge_from_list(_device_keys(cfg, device) + lite0_trunk(cfg) + batch(cfg, per_process))
    copy = os.path.join(out_dir, key.split(".")[-1].lower() + ".yaml")
    with open(copy, "w") as f:
        f.write(cfg.dump())
    return copy


def commands(name: str, output_dir: str, device: str = "cpu", num_gpus: int = 2) -> List[List[str]]:
    """The rehearsal's ``train_net.py`` command lines, one per README step, with ``num_gpus``
    processes on ``device`` (``benchmarks/gpu_check.py`` runs them on CUDA); a pipeline's stage
    configs are written with the same keys into ``output_dir``."""
    from weaksup.config import load_config
    from weaksup.engine.pipeline import config_value

    out = []
    for step in REHEARSALS[name]:
        step_dir = os.path.join(output_dir, step.get("dir", ""))
        os.makedirs(step_dir, exist_ok=True)
        opts = [o.replace("{out}", output_dir) for o in step.get("opts", [])]
        cfg = load_config(os.path.join(ROOT, step["config"]))
        opts = _device_keys(cfg, device) + lite0_trunk(cfg) + batch(cfg) + opts
        if step.get("stages"):
            for key, extra in step["stages"].items():
                copy = _stage_copy(config_value(cfg, key), output_dir, key, extra, device)
                opts += [key, copy]
        out.append(
            [sys.executable, os.path.join(ROOT, "train_net.py")]
            + ["--config-file", os.path.join(ROOT, step["config"])]
            + ["--num-gpus", str(num_gpus)]
            + TINY
            + opts
            + ["OUTPUT_DIR", step_dir]
        )
    return out


def rehearse(name: str, datasets: str, output: str, timeout: float) -> bool:
    out_dir = os.path.join(os.path.abspath(output), name)
    os.makedirs(out_dir, exist_ok=True)
    env = {**os.environ, "DETECTRON2_DATASETS": datasets, "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    log_path = os.path.join(out_dir, "rehearsal.log")
    start = time.perf_counter()
    rc = 0
    with open(log_path, "w") as log:
        for cmd in commands(name, out_dir):
            log.write(shlex.join(cmd) + "\n")
            log.flush()
            try:
                rc = subprocess.run(
                    cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            if rc != 0:
                break
    wall = time.perf_counter() - start
    if rc == 0:
        print(f"{name}: passed in {wall:.0f} s ({log_path})", flush=True)
        return True
    with open(log_path) as f:
        tail = f.readlines()[-40:]
    print(f"{name}: FAILED ({rc}) after {wall:.0f} s; log {log_path}:\n" + "".join(tail))
    return False


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", required=True, help="made by make_rehearsal_data.py")
    parser.add_argument("--output", default="output/rehearsal")
    parser.add_argument("--only", nargs="+", choices=sorted(REHEARSALS), default=sorted(REHEARSALS))
    parser.add_argument("--timeout", type=float, default=900, help="seconds per rehearsal")
    args = parser.parse_args(argv)
    results = [
        rehearse(n, os.path.abspath(args.datasets), args.output, args.timeout) for n in args.only
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
