"""Loss curves drawn from Detectron2's ``metrics.json``."""

import json
import os
from collections import defaultdict
from typing import Dict, List, Tuple

from detectron2.config import CfgNode
from detectron2.engine import HookBase
from detectron2.utils import comm

from .hook_registry import HOOK_REGISTRY

__all__ = ["plot_loss_curves", "LossCurve"]


def read_loss_series(metrics_file: str) -> Dict[str, List[Tuple[int, float]]]:
    """``{loss name: [(iteration, value), ...]}`` for every ``*loss*`` scalar in a metrics.json."""
    series = defaultdict(list)
    with open(metrics_file) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{metrics_file}:{line_no}: not a JSON record ({e})") from e
            if "iteration" not in record:
                continue
            for key, value in record.items():
                if "loss" in key and isinstance(value, (int, float)):
                    series[key].append((record["iteration"], float(value)))
    return dict(series)


def plot_loss_curves(metrics_file: str, output_file: str) -> str:
    """Plot every loss in ``metrics_file`` against the iteration into ``output_file`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_loss_series(metrics_file)
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in sorted(series.items()):
        its, values = zip(*points)
        ax.plot(its, values, label=name, linewidth=2.0 if name == "total_loss" else 1.0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    tmp = output_file + ".partial.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, output_file)
    return output_file


@HOOK_REGISTRY.register()
class LossCurve(HookBase):
    """After training, draw ``OUTPUT_DIR/metrics.json`` into ``OUTPUT_DIR/loss_curves.png``."""

    def __init__(self, cfg: CfgNode):
        self._output_dir = cfg.OUTPUT_DIR

    def after_train(self):
        metrics = os.path.join(self._output_dir, "metrics.json")
        if comm.is_main_process() and os.path.exists(metrics):
            plot_loss_curves(metrics, os.path.join(self._output_dir, "loss_curves.png"))
