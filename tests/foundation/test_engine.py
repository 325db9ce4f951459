"""Engine pieces: CPU DDP, atomic checkpoints, checkpoint stripping, loss curves, device choice."""

import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.utils import comm

from weaksup import add_weaksup_config
from weaksup.engine import AtomicDetectionCheckpointer, create_ddp_model, resolve_device
from weaksup.engine.loss_curve import plot_loss_curves, read_loss_series

from conftest import REPO_ROOT, curve_pixels, launch_on_cpu


def _ddp_worker(out_dir):
    torch.manual_seed(comm.get_rank())
    model = create_ddp_model(torch.nn.Linear(3, 1), broadcast_buffers=False)
    assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
    x = torch.full((2, 3), float(comm.get_rank() + 1))
    model(x).sum().backward()
    torch.save(model.module.weight.grad, os.path.join(out_dir, f"grad{comm.get_rank()}.pt"))


@pytest.mark.slow
def test_ddp_on_cpu_averages_gradients(tmp_path):
    """Two CPU processes over gloo (Detectron2's own create_ddp_model fails here)."""
    if torch.cuda.is_available():
        pytest.skip("tests the CPU path")
    launch_on_cpu(_ddp_worker, 2, str(tmp_path))
    g0, g1 = (torch.load(tmp_path / f"grad{r}.pt") for r in range(2))
    # per-rank gradients are 2*(r+1) for every weight; DDP averages them to 3
    assert torch.allclose(g0, torch.full((1, 3), 3.0)) and torch.allclose(g1, g0)


def test_single_process_model_is_not_wrapped():
    model = torch.nn.Linear(2, 2)
    assert create_ddp_model(model) is model


def test_atomic_checkpoints_and_strip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path), optimizer=optimizer)
    ckpt.save("model_final", iteration=41)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert ckpt.has_checkpoint() and ckpt.get_checkpoint_file().endswith("model_final.pth")
    full = torch.load(tmp_path / "model_final.pth", weights_only=False)
    assert full["iteration"] == 41 and "optimizer" in full

    released = tmp_path / "release" / "model.pth"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "strip_checkpoint.py"),
            str(tmp_path / "model_final.pth"),
            str(released),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sha256" in out.stdout
    stripped = torch.load(released, weights_only=False)
    assert set(stripped) == {"model", "__author__"}
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    DetectionCheckpointer(fresh).load(str(released))
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_strip_rejects_non_checkpoints(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "strip_checkpoint.py"),
            str(bad),
            str(tmp_path / "o.pth"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "notes.pth" in out.stderr and not (tmp_path / "o.pth").exists()


def test_loss_curves(tmp_path):
    records = [
        {"iteration": 19, "total_loss": 2.0, "loss_mask": 0.7, "lr": 0.01},
        {"iteration": 39, "total_loss": 1.5, "loss_mask": 0.6, "lr": 0.01},
        {"bbox/AP": 3.0},  # evaluation records without an iteration are skipped
    ]
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert read_loss_series(str(metrics)) == {
        "total_loss": [(19, 2.0), (39, 1.5)],
        "loss_mask": [(19, 0.7), (39, 0.6)],
    }
    png = plot_loss_curves(str(metrics), str(tmp_path / "loss.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # one line per loss, in matplotlib's first colours (sorted names: loss_mask C0, total C1)
    assert curve_pixels(png) == {"C0": True, "C1": True, "C2": False}
    metrics.write_text(json.dumps(records[0]) + "\n")  # one point per loss: no line to draw
    assert curve_pixels(plot_loss_curves(str(metrics), png)) == dict.fromkeys(
        ["C0", "C1", "C2"], False
    )
    metrics.write_text('{"iteration": 1, "total_loss": 1.0}\n{broken\n')
    with pytest.raises(ValueError, match="metrics.json:2"):
        read_loss_series(str(metrics))


def test_device_follows_the_machine():
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.DEVICE = "cuda"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(cfg) == expected and cfg.MODEL.DEVICE == expected


def test_last_checkpoint_never_names_a_partial_file(tmp_path, monkeypatch):
    """A kill between the rename and the tag leaves ``last_checkpoint`` at the previous complete
    checkpoint, never at the ``.partial`` file that no longer exists."""
    model = torch.nn.Linear(2, 2)
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000009")
    tags = []
    real_replace = os.replace

    def replace_then_kill(src, dst):
        real_replace(src, dst)
        if dst.endswith("model_0000019.pth"):
            tags.append((tmp_path / "last_checkpoint").read_text())
            raise KeyboardInterrupt  # killed right after the rename

    monkeypatch.setattr(os, "replace", replace_then_kill)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000019")
    monkeypatch.undo()
    assert tags == ["model_0000009.pth"]
    resumed = AtomicDetectionCheckpointer(torch.nn.Linear(2, 2), str(tmp_path))
    assert os.path.isfile(resumed.get_checkpoint_file())
    resumed.resume_or_load("", resume=True)
