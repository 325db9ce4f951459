"""The rehearsal of the README's multi-GPU commands (issue 29): every such command has one, and
each runs with ``--num-gpus 2`` (two CPU processes over gloo) on the mini datasets of
``datasets/make_rehearsal_data.py``, through every stage and evaluator of its config."""

import importlib.util
import json
import re

import pytest

from conftest import REPO_ROOT, shared_path


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rehearse = _load("tools/rehearse.py", "rehearse")


def test_every_documented_multi_gpu_command_is_rehearsed():
    """Every paper config the README or docs/ run with ``--num-gpus`` (CPU demos aside)."""
    text = "".join(p.read_text() for p in [REPO_ROOT / "README.md", *REPO_ROOT.glob("docs/*.md")])
    commands = set(re.findall(r"train_net\.py --config-file (configs/\S+\.yaml) --num-gpus", text))
    commands = {c for c in commands if "demo" not in c}
    rehearsed = {steps[0]["config"] for steps in rehearse.REHEARSALS.values()}
    assert len(commands) >= 7
    missing = sorted(commands - rehearsed)
    assert not missing, f"multi-GPU commands without a rehearsal: {missing}"


@pytest.fixture(scope="module")
def rehearsal_datasets(tmp_path_factory):
    for name in ("PennFudanPed", "ECSSD", "labelme_voc3"):
        shared_path(name)
    out = tmp_path_factory.mktemp("rehearsal") / "datasets"
    _load("datasets/make_rehearsal_data.py", "make_rehearsal_data").main(["--output", str(out)])
    return out


def test_rehearsal_data_layout(rehearsal_datasets):
    root = rehearsal_datasets
    train = json.loads((root / "coco/annotations/instances_train2017.json").read_text())
    assert len(train["categories"]) == 80 and train["annotations"]
    assert all((root / "coco/train2017" / i["file_name"]).is_file() for i in train["images"])
    aug = json.loads((root / "VOC2012/weaksup/instances_train_aug.json").read_text())
    sbd = (root / "benchmark_RELEASE/dataset/train.txt").read_text().split()
    assert sbd and set(sbd) <= {i["file_name"][:-4] for i in aug["images"]}
    assert (root / "DUTS/DUTS-TR/duts_single.txt").read_text().split()


# one per pipeline (~6 min together on 2 cores); the VOC twins of the COCO commands (same
# pipeline code, 28-53 s each) run with tools/rehearse.py
ONE_PER_PIPELINE = [n for n in sorted(rehearse.REHEARSALS) if n not in rehearse.SAME_PIPELINE]


@pytest.mark.slow
@pytest.mark.parametrize("name", ONE_PER_PIPELINE)
def test_rehearsal(name, rehearsal_datasets, tmp_path):
    assert rehearse.rehearse(name, str(rehearsal_datasets), str(tmp_path), timeout=600)
