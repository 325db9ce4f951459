"""No code runs from a checkpoint file: `.pkl` / `.pth` weights, `last_checkpoint`, strip tool."""

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from weaksup.engine import AtomicDetectionCheckpointer
from weaksup.utils.checkpoint import SafeDetectionCheckpointer, load_checkpoint_file

from conftest import REPO_ROOT, source_lines_matching


class _Payload:
    """Unpickling this object calls ``exec``, which creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def _evil_pkl(path, marker):
    weights = {k: v.numpy() for k, v in _model().state_dict().items()}
    with open(path, "wb") as f:
        pickle.dump({"model": weights, "__author__": _Payload(marker)}, f, protocol=2)


def _evil_pth(path, marker):
    torch.save({"model": _model().state_dict(), "iteration": _Payload(marker)}, path)


def test_payload_runs_with_plain_pickle(tmp_path):
    """The payload is real: a plain unpickler creates the marker (what Detectron2 does)."""
    marker = tmp_path / "pwned"
    _evil_pkl(tmp_path / "evil.pkl", marker)
    with open(tmp_path / "evil.pkl", "rb") as f:
        pickle.load(f, encoding="latin1")
    assert marker.exists()


@pytest.mark.parametrize("make,name", [(_evil_pkl, "evil.pkl"), (_evil_pth, "evil.pth")])
def test_model_weights_payload_refused(tmp_path, make, name):
    marker = tmp_path / "pwned"
    make(tmp_path / name, marker)
    for checkpointer in (SafeDetectionCheckpointer, AtomicDetectionCheckpointer):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / name)) + ".*refused"):
            checkpointer(_model(), str(tmp_path / "out")).resume_or_load(
                str(tmp_path / name), resume=False
            )
    assert not marker.exists()


@pytest.mark.parametrize("make,name", [(_evil_pkl, "model_0000009.pkl"), (_evil_pth, "m.pth")])
def test_resume_payload_refused(tmp_path, make, name):
    """``--resume`` loads the file named in ``last_checkpoint`` (the trainer's checkpointer)."""
    marker = tmp_path / "pwned"
    make(tmp_path / name, marker)
    (tmp_path / "last_checkpoint").write_text(name)
    ckpt = AtomicDetectionCheckpointer(_model(), str(tmp_path))
    with pytest.raises(ValueError, match=re.escape(name) + ".*refused"):
        ckpt.resume_or_load("", resume=True)
    assert not marker.exists()


def test_strip_checkpoint_payload_refused(tmp_path):
    marker = tmp_path / "pwned"
    _evil_pth(tmp_path / "model_final.pth", marker)
    out = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "strip_checkpoint.py"),
            str(tmp_path / "model_final.pth"),
            str(tmp_path / "release.pth"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "model_final.pth" in out.stderr and "refused" in out.stderr
    assert not marker.exists() and not (tmp_path / "release.pth").exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_model_zoo_pkl_loads(tmp_path, protocol):
    """Detectron2 model-zoo ``.pkl`` files (dicts of numpy arrays and strings) still load."""
    source = _model()
    zoo = {
        "model": {k: v.numpy() for k, v in source.state_dict().items()},
        "__author__": "Detectron2 Model Zoo",
        "matching_heuristics": True,
    }
    with open(tmp_path / "zoo.pkl", "wb") as f:
        pickle.dump(zoo, f, protocol=protocol)
    target = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    SafeDetectionCheckpointer(target).load(str(tmp_path / "zoo.pkl"))
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)


def test_caffe2_blobs_pkl_loads(tmp_path):
    source = _model()
    blobs = {k: v.numpy() for k, v in source.state_dict().items()}
    blobs["0.weight_momentum"] = np.zeros(3)
    with open(tmp_path / "c2.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    data = SafeDetectionCheckpointer(_model())._load_file(str(tmp_path / "c2.pkl"))
    assert data["__author__"] == "Caffe2" and "0.weight_momentum" not in data["model"]
    assert np.array_equal(data["model"]["0.weight"], blobs["0.weight"])


@pytest.mark.parametrize(
    "name,content,problem",
    [
        ("notes.pkl", b"these are my notes\n", "not a checkpoint"),
        ("notes.pth", b"these are my notes\n", "not a checkpoint"),
        ("empty.pth", b"", "not a checkpoint"),
        ("list.pkl", pickle.dumps([1, 2]), "holds a list"),
    ],
)
def test_non_checkpoints_named(tmp_path, name, content, problem):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / name)) + ".*" + problem):
        SafeDetectionCheckpointer(_model()).load(str(tmp_path / name))


def test_truncated_pth_named(tmp_path):
    torch.save({"model": _model().state_dict()}, tmp_path / "m.pth")
    data = (tmp_path / "m.pth").read_bytes()
    (tmp_path / "m.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "m.pth"))):
        load_checkpoint_file(str(tmp_path / "m.pth"))


def test_no_unsafe_loading_left():
    """Every checkpoint load in weaksup, its tools and train_net goes through the safe loader."""
    unsafe = re.compile(
        r"(?<![`\w])DetectionCheckpointer\(|weights_only=False|pickle\.load\(|"
        r"torch\.load\((?![^)]*weights_only=True)|"
        r"DefaultPredictor\((?!.*# weights: none)"  # it loads MODEL.WEIGHTS with Detectron2's
    )
    found = source_lines_matching(
        unsafe,
        ("weaksup", "tools", "benchmarks", "datasets"),
        lambda p: p.name == "checkpoint.py" and p.parent.name == "utils",
    )
    assert not found, found


def test_pyth_payload_refused_even_when_torch_is_told_to_unpickle(tmp_path, monkeypatch):
    """Issue 31 item 2: Detectron2 reads pycls ``.pyth`` files with a bare ``torch.load``; with
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (torch's own hint) a payload in one ran."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    torch.save(
        {"model_state": _model().state_dict(), "epoch": _Payload(marker)}, tmp_path / "e.pyth"
    )
    for checkpointer in (SafeDetectionCheckpointer, AtomicDetectionCheckpointer):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "e.pyth")) + ".*refused"):
            checkpointer(_model(), str(tmp_path / "out")).resume_or_load(
                str(tmp_path / "e.pyth"), resume=False
            )
    assert not marker.exists()


def test_pycls_pyth_loads(tmp_path):
    source = _model()
    torch.save({"model_state": source.state_dict(), "epoch": 3}, tmp_path / "m.pyth")
    target = _model()
    torch.nn.init.zeros_(target[0].weight)
    SafeDetectionCheckpointer(target).load(str(tmp_path / "m.pyth"))
    assert torch.equal(target[0].weight, source[0].weight)
