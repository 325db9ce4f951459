#!/usr/bin/env python
"""
A check of the GPU paths users can run on their CUDA machine (issue 29)::

    python datasets/make_rehearsal_data.py --output /tmp/rehearsal_datasets
    python benchmarks/gpu_check.py --datasets /tmp/rehearsal_datasets

1. CUDA is asserted (a machine without it: the check says so and exits 0);
2. one training step of every method's model (its paper config, tiny images, random-init trunk)
   in fp32 and under autocast: every loss finite, every trainable parameter gets a gradient,
   the inference outputs on the GPU;
3. the BoxCaseg pipeline (``configs/boxcaseg_coco.yaml``, as ``tools/rehearse.py`` composes it:
   its stage configs get the same schedule and size keys) with two processes (one per GPU; one
   process on a one-GPU machine) for two iterations per stage, then again with
   ``SOLVER.AMP.ENABLED True`` in the same folder (AMP is a training setting: every stage is
   redone, and the stage lines printed say so);
4. s/iter and peak GPU memory of the paper trunks at their paper batch per GPU and input size.

Prints one table per part; exits non-zero when a check fails.
"""

import argparse
import importlib
import logging
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, List, Sequence, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from rehearse import (  # noqa: E402
    BOXCASEG_STAGE1_PER_PROCESS,
    BOXCASEG_STAGE1_TINY,
    TINY,
    commands,
)

# each method's main model: (config, keys that make one training step possible outside its
# pipeline, e.g. a box mask source in place of a later stage's pseudo-mask json); its trainer
# class (the loader) is WeaksupTrainer unless TRAINERS names another
TRAINERS = {"BoxCaseg stage 1 HRNetV2-W48": "weaksup.methods.boxcaseg.pipeline.BoxCasegTrainer"}
# sizes the rehearsal's generic keys miss (BoxCaseg: 16 patches, 9:7, per process)
TINY_EXTRA = {
    "BoxCaseg stage 1 HRNetV2-W48": BOXCASEG_STAGE1_TINY
    + ["SOLVER.IMS_PER_BATCH", str(BOXCASEG_STAGE1_PER_PROCESS)]
}
MODELS: Dict[str, Tuple[str, List[str]]] = {
    "box Mask R-CNN R50-FPN": ("configs/PseudoMasks/box_mask_rcnn_R50_FPN_coco.yaml", []),
    "BoxCaseg stage 1 HRNetV2-W48": ("configs/BoxCaseg/coco_duts_single_HRNetV2_W48.yaml", []),
    "Proxy Mask R-CNN R101-FPN": (
        "configs/BoxCaseg/coco_proxy_mask_rcnn_R101_FPN.yaml",
        ["WEAKSUP.PIPELINE", "", "WEAKSUP.MASK_SOURCE", "box"],
    ),
    "Hybrid small Faster R-CNN R50-FPN": ("configs/Hybrid/voc_small_faster_rcnn_R50_FPN.yaml", []),
    "Hybrid large Mask R-CNN R50-EnhancedFPN": (
        "configs/Hybrid/voc_large_mask_rcnn_R50_EnhancedFPN.yaml",
        ["WEAKSUP.MASK_SOURCE", "box"],
    ),
    "BoxSup DeepLab R101-OS8": (
        "configs/BoxSup/voc_boxsup_R101_OS8.yaml",
        ["DATASETS.TRAIN", "('voc_2012_train_aug_sem_seg',)", "INPUT.CROP.SIZE", "(96, 96)"],
    ),
    "DASNet R50-FPN": ("configs/DASNet/voc_instance_seg1464_box16.5k_R50_FPN.yaml", []),
    "BoxInst R50-FPN": ("configs/BoxInst/boxinst_mask_rcnn_R50_FPN_coco.yaml", []),
}
# paper trunks at their paper batch per GPU: (model, README --num-gpus)
TRUNKS = {
    "box Mask R-CNN R50-FPN": 4,
    "BoxCaseg stage 1 HRNetV2-W48": 4,
    "Proxy Mask R-CNN R101-FPN": 4,
    "BoxSup DeepLab R101-OS8": 4,
    "BoxInst R50-FPN": 8,
}


def _config(name: str, device: str, opts: Sequence[str]):
    from weaksup.config import load_config

    path, extra = MODELS[name]
    return load_config(
        os.path.join(ROOT, path), list(extra) + list(opts) + ["MODEL.DEVICE", device]
    )


def _on_device(obj: Any, device: str) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.device.type == device
    if hasattr(obj, "get_fields"):
        return all(_on_device(v, device) for v in obj.get_fields().values())
    if hasattr(obj, "tensor"):
        return _on_device(obj.tensor, device)
    if isinstance(obj, dict):
        return all(_on_device(v, device) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_on_device(v, device) for v in obj)
    return True


def train_step(name: str, cfg, amp: bool, steps: int = 1) -> Dict[str, Any]:
    """``steps`` training steps of model ``name`` (``cfg``) on its training loader; the checks
    of part 2, the mean s/iter after the first step and the peak memory."""
    module, cls = TRAINERS.get(name, "weaksup.engine.trainer.WeaksupTrainer").rsplit(".", 1)
    trainer = getattr(importlib.import_module(module), cls)
    device = torch.device(cfg.MODEL.DEVICE)
    model = trainer.build_model(cfg)
    loader = iter(trainer.build_train_loader(cfg))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], {}
    for i in range(steps):
        batch = next(loader)
        start = time.perf_counter()
        model.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            losses = model(batch)
        sum(losses.values()).backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        outputs = model(batch[:1])
    return {
        "finite": all(bool(torch.isfinite(v).all()) for v in losses.values()),
        "losses": {k: float(v) for k, v in losses.items()},
        "no_grad": no_grad,
        "outputs_on_device": _on_device(outputs, device.type),
        "s_per_iter": sum(times[1:]) / max(1, len(times) - 1) if steps > 1 else times[0],
        "peak_gb": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        ),
    }


def check_models(device: str) -> bool:
    ok = True
    print("\n| model | precision | losses finite | params without grad | outputs on device |")
    print("|---|---|---|---|---|")
    for name in MODELS:
        for amp in (False, True):
            try:
                opts = TINY + ["SOLVER.IMS_PER_BATCH", "2"] + TINY_EXTRA.get(name, [])
                r = train_step(name, _config(name, device, opts), amp)
                good = r["finite"] and not r["no_grad"] and r["outputs_on_device"]
                row = [r["finite"], ", ".join(r["no_grad"][:3]) or "none", r["outputs_on_device"]]
            except Exception as e:  # report every model, then fail
                good, row = False, [f"ERROR {type(e).__name__}: {e}"[:200], "", ""]
            ok &= good
            print(
                f"| {name} | {'autocast' if amp else 'fp32'} | " + " | ".join(map(str, row)) + " |"
            )
    return ok


def check_pipeline(datasets: str, output: str, device: str) -> bool:
    gpus = max(1, min(2, torch.cuda.device_count())) if device == "cuda" else 2
    # the rehearsal's command: its stage configs get the same schedule and size keys (a pipeline
    # forwards only job-wide keys to them: with the command line's keys alone, stage 1 would
    # train 20,000 iterations of 64 patches)
    (command,) = commands(
        "boxcaseg_coco", os.path.join(os.path.abspath(output), "boxcaseg"), device, gpus
    )
    ok = True
    for amp in ("False", "True"):
        cmd = command + ["SOLVER.AMP.ENABLED", amp]
        env = {**os.environ, "DETECTRON2_DATASETS": datasets}
        start = time.perf_counter()
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        log = run.stdout + run.stderr
        # what each stage did (run, resumed, skipped and why): the stage mechanism's log lines
        plain = re.sub(r"\x1b\[[0-9;]*m", "", log).splitlines()
        stages = [l.split("]: ", 1)[-1] for l in plain if "weaksup.engine.stages]" in l]
        print(
            f"\nBoxCaseg pipeline, {gpus} processes, AMP {amp}: exit {run.returncode}, "
            f"{time.perf_counter() - start:.0f} s"
        )
        print("\n".join(stages) if run.returncode == 0 else log[-3000:])
        ok &= run.returncode == 0
    return ok


def trunk_speed(device: str) -> None:
    print("\n| trunk | images per GPU | input | s/iter | peak GB |")
    print("|---|---|---|---|---|")
    for name, gpus in TRUNKS.items():
        cfg = _config(name, device, ["MODEL.WEIGHTS", "", "DATALOADER.NUM_WORKERS", "2"])
        per_gpu = max(1, cfg.SOLVER.IMS_PER_BATCH // gpus)
        cfg.SOLVER.IMS_PER_BATCH = per_gpu
        try:
            r = train_step(name, cfg, bool(cfg.SOLVER.AMP.ENABLED), steps=6)
            row = f"{r['s_per_iter']:.3f} | {r['peak_gb']:.1f}"
        except Exception as e:
            row = f"ERROR {type(e).__name__}: {str(e)[:150]} |"
        print(f"| {name} | {per_gpu} | {tuple(cfg.INPUT.MIN_SIZE_TRAIN)} | {row} |")


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=os.environ.get("DETECTRON2_DATASETS", ""))
    parser.add_argument("--output", default="output/gpu_check")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: develop here
    parser.add_argument("--parts", nargs="+", default=["models", "pipeline", "speed"])
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device here (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda}; torch.cuda.is_available() is False): nothing to check. "
            "Run it on a machine with a GPU."
        )
        return 0
    if not args.datasets or not os.path.isdir(os.path.join(args.datasets, "coco")):
        parser.error("--datasets: a folder made by datasets/make_rehearsal_data.py")
    os.environ["DETECTRON2_DATASETS"] = os.path.abspath(args.datasets)
    logging.basicConfig(level=logging.WARNING)
    import weaksup.data  # noqa: F401  (registers the datasets, with DETECTRON2_DATASETS set)

    if args.device == "cuda":
        print(
            f"CUDA: {torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s), "
            f"torch {torch.__version__}, CUDA {torch.version.cuda}"
        )
    ok = True
    if "models" in args.parts:
        ok &= check_models(args.device)
    if "pipeline" in args.parts:
        ok &= check_pipeline(os.path.abspath(args.datasets), args.output, args.device)
    if "speed" in args.parts:
        trunk_speed(args.device)
    print("\ngpu_check: " + ("all checks passed" if ok else "FAILED (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
