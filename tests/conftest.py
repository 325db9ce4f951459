"""Shared test fixtures: the real data in ``../shared/data`` (skipped with a reason when absent)."""

import contextlib
import logging
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WEAKSUP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path under the shared data folder; skips the calling test when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"real test data not found at {path} (set WEAKSUP_SHARED_DATA to ../shared/data)"
        )
    return path


@pytest.fixture
def shared_data():
    """The function ``shared_path`` as a fixture: ``shared_data("PennFudanPed", "PNGImages")``."""
    return shared_path


def pennfudan_records(n: int):
    """The first ``n`` PennFudan images (by name, all splits) as loaded by weaksup, with their
    ground-truth instance masks decoded to bool arrays (one list per image)."""
    import pycocotools.mask as mask_util

    from weaksup.data.datasets.pennfudan import load_pennfudan

    records = load_pennfudan(str(shared_path("PennFudanPed")), "all")[:n]
    masks = [
        [mask_util.decode(a["segmentation"]).astype(bool) for a in r["annotations"]]
        for r in records
    ]
    return records, masks


def register_dataset(name: str, records, thing_classes):
    """(Re-)register ``records`` as dataset ``name`` with the given ``thing_classes``."""
    from weaksup.data.datasets import register_or_replace

    register_or_replace(name, lambda: records, thing_classes=thing_classes)


def free_port() -> int:
    """A free local TCP port: Detectron2's default ``--dist-url`` port is the same for every job
    of a user, so concurrent multi-process runs would collide on it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_train_net(config, *args) -> str:
    """Run ``train_net.py --config-file config *args`` on the shared PennFudan; return its log.
    Multi-process runs get a free ``--dist-url`` port unless one is given, and run CPU processes
    with CUDA hidden (``MODEL.DEVICE cpu``: a multi-process job stops when CUDA is asked for and
    missing; see :func:`launch_on_cpu`)."""
    import subprocess
    import sys

    if "--num-gpus" in args and "--dist-url" not in args:
        # before the args: trailing KEY VALUE overrides take the rest of the command line
        args = ("--dist-url", f"tcp://127.0.0.1:{free_port()}", *args)
    env = {**os.environ, "DETECTRON2_DATASETS": str(shared_path("PennFudanPed").parent)}
    if "--num-gpus" in args:
        args = (*args, "MODEL.DEVICE", "cpu")  # trailing: joins the KEY VALUE overrides
        env["CUDA_VISIBLE_DEVICES"] = ""
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_net.py"), "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=900,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    return log


def copypaste_lines(log: str):
    """The metric lines Detectron2 prints after evaluation (task names, keys and values)."""
    return [line.split("copypaste: ", 1)[1] for line in log.splitlines() if "copypaste: " in line]


def small_boxcaseg_cfg():
    """A BoxCaseg stage-1 config small enough to build and run on the CPU in tests."""
    from detectron2.config import get_cfg

    from weaksup import add_weaksup_config

    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.META_ARCHITECTURE = "BoxCaseg"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = "build_hrnet_backbone"
    cfg.MODEL.HRNET.WIDTH = 8
    cfg.MODEL.HRNET.NUM_MODULES = [1, 1, 1, 1]
    cfg.MODEL.HRNET.NUM_BLOCKS = [1, 1, 1, 1]
    cfg.MODEL.BOXCASEG.HEAD_CONV_DIM = 16
    cfg.MODEL.BOXCASEG.TRANSFER_HIDDEN_DIM = 8
    cfg.INPUT.BOXCASEG.TEST_SIZE = 32
    return cfg


def curve_pixels(png: str, min_pixels: int = 100) -> dict:
    """Whether each of matplotlib's first three line colours covers ``min_pixels`` of ``png``."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    colours = {"C0": (31, 119, 180), "C1": (255, 127, 14), "C2": (44, 160, 44)}
    return {
        name: int((np.abs(rgb - c).sum(-1) < 30).sum()) >= min_pixels for name, c in colours.items()
    }


def check_sem_seg_result(result: dict, printed: str = "") -> None:
    """Value checks of a ``SemSegEvaluator`` result (``{"mIoU", "IoU-<class>", "mACC",
    "ACC-<class>", ...}``, optionally with a ``sem_seg/`` prefix): mIoU and mACC are the means of
    the per-class values that are defined, pACC lies between the smallest and the largest class
    accuracy; ``printed`` (a copypaste line "mIoU,fwIoU,mACC,pACC" of values) shows the same."""
    import math

    r = {k.split("/", 1)[-1]: v for k, v in result.items()}
    ious = [v for k, v in r.items() if k.startswith("IoU-") and not math.isnan(v)]
    accs = [v for k, v in r.items() if k.startswith("ACC-") and not math.isnan(v)]
    assert ious and accs, result
    assert abs(r["mIoU"] - sum(ious) / len(ious)) < 1e-3, result
    assert abs(r["mACC"] - sum(accs) / len(accs)) < 1e-3, result
    assert min(accs) - 1e-3 <= r["pACC"] <= max(accs) + 1e-3, result
    if printed:
        values = [float(v) for v in printed.split(",")]
        expected = [r[k] for k in ("mIoU", "fwIoU", "mACC", "pACC")]
        assert all(abs(a - b) < 1e-3 for a, b in zip(values, expected)), (printed, expected)


def last_sem_seg_metrics(output_dir) -> dict:
    """The last ``sem_seg/*`` record of a run's ``metrics.json``."""
    import json

    records = [json.loads(l) for l in open(os.path.join(output_dir, "metrics.json"))]
    return [r for r in records if "sem_seg/mIoU" in r][-1]


def configured_crf(probs, image, crf_cfg):
    """``dense_crf`` of probabilities ``(C, H, W)`` on ``image`` with a ``MODEL.BOXSUP.CRF`` node's
    kernels, as ``BoxSupSegmentor`` applies it."""
    import torch

    from weaksup.modeling.dense_crf import dense_crf

    c = crf_cfg
    return dense_crf(
        torch.log(probs.clamp_min(1e-8)),
        image.float(),
        c.ITERATIONS,
        (c.BI_WEIGHT, c.BI_XY_STD, c.BI_RGB_STD),
        (c.POS_WEIGHT, c.POS_XY_STD),
        c.WINDOW_RADIUS,
        c.WINDOW_DILATION,
    )


def check_imagenet_trunk(checkpoint, prefix: str, fine_tuned: bool = True) -> None:
    """Value checks of a checkpoint trained from the ImageNet weights
    ``weaksup://ImageNetPretrained/efficientnet_lite0.pth`` with ``FREEZE_AT 2`` and frozen BN:
    it holds every tensor of the package's file (converted) under ``prefix`` (e.g.
    ``backbone.bottom_up.``); the frozen stem and res2 and every FrozenBN statistic still equal
    the package's; with ``fine_tuned``, some conv of res3..res5 was changed by training (the
    trunk trained, it was not just copied)."""
    import torch

    from weaksup.modeling.backbone.efficientnet import convert_efficientnet_pytorch_weights
    from weaksup.modeling.backbone.pretrained import package_weights_path

    package = convert_efficientnet_pytorch_weights(
        torch.load(package_weights_path("lite0"), map_location="cpu", weights_only=True), "lite0"
    )
    model = torch.load(str(checkpoint), map_location="cpu", weights_only=True)["model"]
    missing = [k for k in package if prefix + k not in model]
    assert not missing, f"{checkpoint}: backbone tensors missing: {missing[:5]}"
    changed = set()
    for key, ref in package.items():
        same = torch.equal(model[prefix + key], ref)
        if key.startswith(("stem", "res2")) or ".norm." in key:
            assert same, f"{checkpoint}: frozen {prefix + key} differs from the ImageNet weights"
        elif not same:
            changed.add(key)
    assert bool(changed) == fine_tuned, (checkpoint, sorted(changed)[:5])


class _Log(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def log_lines(name: str, level: int = logging.NOTSET):
    """The messages logged to logger ``name`` inside the block, as a list (``level``: the
    logger's level meanwhile; NOTSET leaves it as it is)."""
    handler, logger = _Log(), logging.getLogger(name)
    old = logger.level
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.fixture
def stage_log():
    """The messages of weaksup.engine.stages (skip / resume / rerun and why) during the test."""
    with log_lines("weaksup.engine.stages", logging.INFO) as lines:
        yield lines


def fake_training(monkeypatch, calls):
    """engine.pipeline.train_stage replaced: writes the files of a finished training, appending
    the stage's name to ``calls`` (a finished stage is only evaluated)."""
    from weaksup.engine import pipeline as engine_pipeline
    from weaksup.engine.pipeline import stage_done

    def train(trainer_cls, cfg, stage):
        if stage_done(cfg.OUTPUT_DIR):  # a finished stage is only evaluated
            return {"stage": stage}
        calls.append(stage)
        assert not os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "model_old.pth"))
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        Path(cfg.OUTPUT_DIR, "model_final.pth").write_bytes(stage.encode())
        Path(cfg.OUTPUT_DIR, "last_checkpoint").write_text("model_final.pth")
        return {"stage": stage}

    monkeypatch.setattr(engine_pipeline, "train_stage", train)


def stage_cfg(path: str, tmp_path, *opts):
    """The frozen config of the repo's ``path`` with ``opts``, writing under ``tmp_path``; skips
    the test without the shared data (a training stage reads its datasets' content)."""
    from weaksup import load_config

    shared_path()

    cfg = load_config(str(REPO_ROOT / path), list(opts))
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.freeze()
    return cfg


def launch_on_cpu(main_func, num_processes: int, *args, timeout=None) -> None:
    """Run ``main_func(*args)`` in ``num_processes`` CPU processes (gloo) through weaksup's
    ``launch``, with CUDA hidden from them: Detectron2's launch asks for one GPU per process and
    NCCL whenever CUDA is visible, so a multi-process test would fail on a 1-GPU machine."""
    from weaksup.engine.launch import launch

    kwargs = {"timeout": timeout} if timeout is not None else {}
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # read by the spawned processes at start
    try:
        launch(
            main_func,
            num_processes,
            dist_url=f"tcp://127.0.0.1:{free_port()}",
            args=args,
            **kwargs,
        )
    finally:
        if old is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


WORLD_SIZES = (1, 2, 3, 4, 8)


def check_world_sizes(name: str, cfg, readme_gpus: int) -> None:
    """A training config whose batch follows the world size (Detectron2's
    ``SOLVER.REFERENCE_WORLD_SIZE``): at 1, 2, 3, 4, 8 and the README's process count, the batch
    per process stays ``IMS_PER_BATCH / REFERENCE_WORLD_SIZE``, the learning rate scales
    linearly and the iteration counts inversely, the methods' own
    (``WEAKSUP.ITERATION_KEYS``) with ``SOLVER.MAX_ITER``, as ``WeaksupTrainer`` scales them.
    Returns nothing; asserts, naming ``name``."""
    from weaksup.engine import WeaksupTrainer
    from weaksup.engine.pipeline import config_value

    s = cfg.SOLVER
    assert s.REFERENCE_WORLD_SIZE, f"{name}: batch fixed whatever the world size"
    assert s.IMS_PER_BATCH % s.REFERENCE_WORLD_SIZE == 0, name
    per_process = s.IMS_PER_BATCH // s.REFERENCE_WORLD_SIZE
    for world in WORLD_SIZES + (readme_gpus,):
        scaled = WeaksupTrainer.auto_scale_workers(cfg, world)
        assert scaled.SOLVER.IMS_PER_BATCH == per_process * world, f"{name} x{world}"
        assert scaled.SOLVER.BASE_LR == pytest.approx(s.BASE_LR * world / s.REFERENCE_WORLD_SIZE)
        for key in cfg.WEAKSUP.ITERATION_KEYS:
            iters = config_value(cfg, key)
            expected = max(1, round(iters * s.REFERENCE_WORLD_SIZE / world)) if iters else 0
            assert config_value(scaled, key) == expected, f"{name} x{world}: {key}"


def check_stages_seeded(pipeline: str, stages) -> None:
    """Every shipped config (bases left out) that runs ``pipeline``, and each of its stage configs
    (``stages(cfg)``: ``{name: config}``, as the pipeline composes them), has a seed: a run
    repeats. Call with the repository as the working directory (stage configs name paths in it)."""
    import glob

    from weaksup import load_config

    paths = sorted(glob.glob("configs/**/*.yaml", recursive=True))
    cfgs = {p: load_config(p) for p in paths if "/Base-" not in p}
    cfgs = {p: c for p, c in cfgs.items() if c.WEAKSUP.PIPELINE == pipeline}
    assert cfgs, pipeline
    for path, cfg in cfgs.items():
        assert cfg.SEED >= 0, path
        for name, stage in stages(cfg).items():
            assert stage.SEED >= 0, f"{path}: {name} is a new random run each time"


def source_lines_matching(pattern, folders, skip=lambda path: False):
    """``"file:line: text"`` of every line of ``train_net.py`` and the ``.py`` files under
    ``folders`` (of the repo) that ``pattern`` (a compiled regex) matches; ``skip(path)`` leaves
    a file out (the one place allowed to do what the pattern finds)."""
    files = [REPO_ROOT / "train_net.py"] + [
        p for d in folders for p in (REPO_ROOT / d).rglob("*.py") if not skip(p)
    ]
    return [
        f"{p.relative_to(REPO_ROOT)}:{i}: {line.strip()}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def untrained_checkpoint(config, path, *opts) -> str:
    """Save the freshly initialised model of ``config`` (+ ``KEY VALUE`` overrides) as a complete
    checkpoint at ``path``: every parameter present, none trained (output paths of tools)."""
    import torch
    from detectron2.modeling import build_model

    from weaksup import load_config

    cfg = load_config(str(config), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *opts])
    torch.save({"model": build_model(cfg).state_dict()}, path)
    return str(path)
