"""The built wheel, installed into a fresh venv next to the same torch and Detectron2, works
outside the clone: packaged configs found by ``weaksup.model_zoo``, and the console scripts
train (a few iterations of a packaged demo config), predict, export and make pseudo masks from a
folder that is not the repository."""

import glob
import json
import os
import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO_ROOT, shared_path

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=600):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (cmd, (out.stdout + out.stderr)[-4000:])
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin folder): the wheel built from the clone (not editable), installed
    into a new venv whose only other packages are this interpreter's (torch, Detectron2, ...)
    reached through a path entry, so its .pth files (the editable weaksup) are not read."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(REPO_ROOT),
        ],
        cwd=tmp,
        env=os.environ,
    )
    (wheel,) = glob.glob(str(tmp / "dist" / "weaksup-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=os.environ)
    py = str(venv / "bin" / "python")
    site = _run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, os.environ
    )
    with open(os.path.join(site.strip(), "outer_site.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
        cwd=tmp,
        env=os.environ,
    )
    return py, str(venv / "bin")


def test_wheel_runs_outside_the_clone(installed, tmp_path):
    py, bin_dir = installed
    work = tmp_path / "elsewhere"  # not the repository: nothing of the clone is reachable
    work.mkdir()
    data = shared_path("PennFudanPed").parent
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "DETECTRON2_DATASETS": str(data),
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
    }
    where = _run(
        [
            py,
            "-c",
            "import weaksup, weaksup.tools; from weaksup.model_zoo import get_config_file;"
            " print(weaksup.__file__); print(get_config_file('PseudoMasks/demo/"
            "pennfudan_box_mask_rcnn_Lite0_FPN.yaml'))",
        ],
        work,
        env,
    ).split()
    assert all(str(REPO_ROOT) not in p and "site-packages" in p for p in where), where
    assert os.path.isfile(where[1]) and not os.path.islink(where[1])

    # train a few iterations of a packaged demo config, named as in the clone
    _run(
        [
            "weaksup-train",
            "--config-file",
            "configs/PseudoMasks/demo/pennfudan_box_mask_rcnn_Lite0_FPN.yaml",
            "SOLVER.MAX_ITER",
            "2",
            "SOLVER.IMS_PER_BATCH",
            "1",
            "DATASETS.TEST",
            "()",
            "INPUT.MIN_SIZE_TRAIN",
            "(160,)",
            "INPUT.MAX_SIZE_TRAIN",
            "224",
            "DATALOADER.NUM_WORKERS",
            "0",
            "WEAKSUP.HOOKS",
            "[]",
            "OUTPUT_DIR",
            "run",
        ],
        work,
        env,
    )
    assert (work / "run" / "model_final.pth").is_file() and (work / "run" / "config.yaml").is_file()

    images = sorted(glob.glob(str(data / "PennFudanPed" / "PNGImages" / "*.png")))[:2]
    weights = ["MODEL.WEIGHTS", "run/model_final.pth"]
    _run(
        [
            "weaksup-predict",
            "--config-file",
            "run/config.yaml",
            "--input",
            *images,
            "--output",
            "pred",
            *weights,
        ],
        work,
        env,
    )
    assert json.loads((work / "pred" / "images.json").read_text())["images"]
    _run(
        [
            "weaksup-export",
            "--config-file",
            "run/config.yaml",
            "--format",
            "torchscript",
            "--sample-image",
            images[0],
            "--output",
            "exp",
            *weights,
        ],
        work,
        env,
    )
    assert (work / "exp" / "model.ts").is_file()

    nuts = shared_path("nuts_coco", "data")
    _run(
        [
            "weaksup-pseudo-masks",
            "--input-json",
            str(nuts / "trainval.json"),
            "--image-root",
            str(nuts / "images"),
            "--method",
            "ellipse",
            "--output",
            "pseudo.json",
        ],
        work,
        env,
    )
    pseudo = json.loads((work / "pseudo.json").read_text())
    assert pseudo["annotations"] and all("mask_valid" in a for a in pseudo["annotations"])
