#!/usr/bin/env python
"""The "training masks" table of MODEL_ZOO.md from finished ``train_net.py`` runs: each run's
final evaluation (the last record of its ``metrics.json``), one row per training-mask source
(runs of several seeds averaged, with their spread), and each row's mask AP as a share of the
fully supervised run's.

    python tools/training_masks_table.py --reference "ground truth" \\
        "filled box=output/zoo/box_s1,output/zoo/box_s2" "consensus=output/zoo/consensus_s1" \\
        "ground truth=output/zoo/gt"
"""

import argparse
import json
import os
import sys
from typing import Dict, List, Sequence

import numpy as np

# (column, metrics.json key) in table order
COLUMNS = (
    ("box AP", "bbox/AP"),
    ("mask AP", "segm/AP"),
    ("mask AP50", "segm/AP50"),
    ("mask AP75", "segm/AP75"),
    ("mAP^r@0.5", "voc_instance/mAP@0.5"),
    ("mAP^r@0.75", "voc_instance/mAP@0.75"),
    ("ABO", "voc_instance/ABO"),
)


def final_metrics(output_dir: str) -> Dict[str, float]:
    """The last record of ``output_dir/metrics.json`` holding every metric of :data:`COLUMNS`."""
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no metrics.json (is {output_dir} a finished run?)")
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    for record in reversed(records):
        if all(key in record for _, key in COLUMNS):
            return {key: float(record[key]) for _, key in COLUMNS}
    raise ValueError(f"{path}: no record with the final evaluation ({[k for _, k in COLUMNS]})")


def _cell(values: np.ndarray, suffix: str = "") -> str:
    """``mean`` of one run, ``mean ± half range`` of several."""
    cell = f"{values.mean():.1f}"
    if len(values) > 1:
        cell += f" ± {(values.max() - values.min()) / 2:.1f}"
    return cell + suffix


def format_table(rows: Dict[str, List[Dict[str, float]]], reference: str) -> str:
    """Markdown table of the rows' means over their runs, plus their mask AP as a share of
    ``reference``'s (mean) mask AP."""
    if reference not in rows:
        raise ValueError(f"reference row {reference!r} is not among {sorted(rows)}")
    ref_ap = np.mean([r["segm/AP"] for r in rows[reference]])
    header = ["training masks", "runs"] + [c for c, _ in COLUMNS] + ["share of GT mask AP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, runs in rows.items():
        cells = [name, str(len(runs))]
        cells += [_cell(np.array([r[key] for r in runs])) for _, key in COLUMNS]
        cells.append(_cell(np.array([r["segm/AP"] for r in runs]) / ref_ap * 100, " %"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="+", help='"NAME=DIR[,DIR...]" (several dirs: seeds)')
    parser.add_argument("--reference", required=True, help="the fully supervised row's NAME")
    args = parser.parse_args(argv)
    rows = {}
    for spec in args.rows:
        if "=" not in spec:
            parser.error(f"{spec!r}: expected NAME=DIR[,DIR...]")
        name, dirs = spec.split("=", 1)
        rows[name] = [final_metrics(d) for d in dirs.split(",")]
    table = format_table(rows, args.reference)
    print(table)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
