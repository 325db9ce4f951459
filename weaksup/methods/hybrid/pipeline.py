"""Hybrid networks end to end (Liao et al. Sec. 1-2, Tab. 1-2): cached stages behind one command.

The config holding ``WEAKSUP.PIPELINE: "Hybrid"`` is the fused model's (``HybridNetwork``); its
``DATASETS.TRAIN`` (one box-only dataset) trains every branch and its ``DATASETS.TEST`` /
``WEAKSUP.EVALUATORS`` evaluate every model:

1. **pseudo masks**: GrabCut (``WEAKSUP.HYBRID.PSEUDO.METHOD``) for every training box, flagged
   valid when IoU(tight box, box) >= ``MODEL.HYBRID.VALID_THRESHOLD`` (Sec. 1), written to
   ``<OUTPUT_DIR>/pseudo_masks/<dataset>.json``; the validity statistics of Sec. 1 are logged;
2. **baseline**: ``WEAKSUP.HYBRID.BASELINE_CONFIG``, Mask R-CNN on all GrabCut masks
   (``<OUTPUT_DIR>/baseline``);
3. **large branch**: ``WEAKSUP.HYBRID.LARGE_CONFIG``, Mask R-CNN + Enhanced-FPN on the instances
   with valid masks only (``WEAKSUP.HYBRID.LARGE_TRAIN_INSTANCES "valid"``, Sec. 2.1, the paper
   config; ``<OUTPUT_DIR>/large_valid``) or on every box, valid masks alone training the mask
   head (``"all"``; ``<OUTPUT_DIR>/large``);
4. **small branch**: ``WEAKSUP.HYBRID.SMALL_CONFIG``, Faster R-CNN on the boxes of the invalid
   instances only (``WEAKSUP.HYBRID.SMALL_TRAIN_INSTANCES "invalid"``, Sec. 2, the paper config;
   ``<OUTPUT_DIR>/small_invalid``) or of all (``"all"``; ``<OUTPUT_DIR>/small``);
5. **fused**: this config's ``HybridNetwork`` with the two trained branches, evaluated; then the
   ablation table (Tab. 1-2 metrics for baseline / small / large / fused) is printed and written
   to ``<OUTPUT_DIR>/ablation.md``. With ``WEAKSUP.HYBRID.SPLIT_ABLATION`` the branches are also
   trained and fused on the other split (the paper's if the config's is not, else all / all),
   rows marked with their split.

Each branch config gets, after its own ``*_OPTS``, this config's datasets, evaluators and the
stage-1 json (``WEAKSUP.PSEUDO_MASKS``). Stages are skipped when their result exists (a pseudo
json of the same job; ``model_final.pth`` named by ``last_checkpoint``), resumed otherwise
(finished shards; last checkpoint), and the log says which stage runs and why. Trained stages
are evaluated again on every run (that is how the table is made), so a rerun with another
``DATASETS.TEST`` prints the table for that dataset without training anything.
"""

import json
import logging
import math
import os
from argparse import Namespace
from typing import Any, Dict, List, Mapping

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm
from tabulate import tabulate

from weaksup.pseudo import PseudoMaskConfig
from weaksup.utils.file_io import write_atomic
from weaksup.config import load_config
from weaksup.data.datasets import register_or_replace
from weaksup.engine.overlays import write_prediction_overlays
from weaksup.engine.launch import wait_for_all
from weaksup.engine.pipeline import PIPELINE_REGISTRY, run_training_stage, stage_config
from weaksup.engine.pseudo_masks import run_pseudo_mask_stage
from weaksup.engine.trainer import WeaksupTrainer

__all__ = [
    "ABLATION_COLUMNS",
    "format_ablation_table",
    "register_validity_view",
    "run_hybrid_pipeline",
]

logger = logging.getLogger(__name__)

# Table columns: (header, evaluator task, metric key) - Tab. 1 (VOC mAP^r, ABO), Tab. 2 (mask AP).
ABLATION_COLUMNS = (
    ("mAP^r_0.5", "voc_instance", "mAP@0.5"),
    ("mAP^r_0.75", "voc_instance", "mAP@0.75"),
    ("ABO", "voc_instance", "ABO"),
    ("AP", "segm", "AP"),
    ("AP_S", "segm", "APs"),
    ("AP_L", "segm", "APl"),
)
# Rows of Tab. 2, in order: pipeline stage -> the paper's name.
ABLATION_ROWS = (
    ("baseline", "baseline (Mask R-CNN, all GrabCut masks)"),
    ("small", "small branch (Faster R-CNN + GrabCut)"),
    ("large", "large branch (Enhanced-FPN, valid masks)"),
    ("fused", "fused (ours)"),
)
INVALID_SUFFIX = "_hybrid_invalid"
# (large branch, small branch) training instances of Sec. 2: valid masks / invalid masks.
PAPER_SPLIT = ("valid", "invalid")


def format_ablation_table(results: Mapping[str, Mapping[str, Any]], dataset: str = "") -> str:
    """Tab. 1-2's metrics (percent) of each model's evaluation results, as a markdown table.

    Args:
        results: stage name (``baseline``, ``small``, ``large``, ``fused``, each optionally
            followed by `` [<split>]``, e.g. ``small [all]``; absent rows are left out) -> that
            model's results on one dataset (``{"segm": {...}, "voc_instance": ...}``). A metric
            the results lack, or NaN / negative (COCO's -1: no object of that size), is shown as
            ``-``.
    """
    rows = []
    for key, name in ABLATION_ROWS:
        variants = [key] + sorted(k for k in results if k.startswith(key + " ["))
        for k in variants:
            if k not in results:
                continue
            row = [name + k[len(key) :]]
            for _, task, metric in ABLATION_COLUMNS:
                value = results[k].get(task, {}).get(metric)
                ok = isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
                row.append(f"{value:.2f}" if ok else "-")
            rows.append(row)
    title = f"Hybrid ablation on {dataset}\n" if dataset else ""
    headers = ["model"] + [c[0] for c in ABLATION_COLUMNS]
    return title + tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def register_validity_view(dataset_name: str, pseudo_json: str, keep_valid: bool) -> str:
    """Register ``<dataset_name>_hybrid_{in,}valid``: the dataset with only the annotations whose
    pseudo mask (matched by annotation id in ``pseudo_json``) is valid / invalid; images left
    without annotations are dropped (Detectron2's loader drops them anyway)."""
    with open(pseudo_json) as f:
        valid = {a["id"]: bool(a["mask_valid"]) for a in json.load(f)["annotations"]}
    name = dataset_name + ("_hybrid_valid" if keep_valid else INVALID_SUFFIX)

    def load() -> List[Dict]:
        records = []
        for r in DatasetCatalog.get(dataset_name):
            for a in r.get("annotations", []):
                if a.get("id") not in valid:
                    raise KeyError(
                        f"{pseudo_json} has no annotation with id {a.get('id')!r} of "
                        f"{dataset_name} (image {r.get('file_name')})"
                    )
            anns = [a for a in r.get("annotations", []) if valid[a["id"]] == keep_valid]
            if anns:
                records.append({**r, "annotations": anns})
        logger.info(
            f"{name}: {len(records)} images with {'valid' if keep_valid else 'invalid'} masks"
        )
        return records

    meta = MetadataCatalog.get(dataset_name).as_dict()
    return register_or_replace(name, load, **{k: v for k, v in meta.items() if k != "name"})


def _branch_config(cfg: CfgNode, which: str, train: str, pseudo_json: str, out: str) -> CfgNode:
    h, stages = cfg.MODEL.HYBRID, cfg.WEAKSUP.HYBRID
    path, opts = {
        "baseline": (stages.BASELINE_CONFIG, stages.BASELINE_OPTS),
        "large": (stages.LARGE_CONFIG, stages.LARGE_OPTS),
        "small": (stages.SMALL_CONFIG, stages.SMALL_OPTS),
    }[which]
    pipeline = [
        "DATASETS.TRAIN", (train,),
        "DATASETS.TEST", tuple(cfg.DATASETS.TEST),
        "WEAKSUP.EVALUATORS", list(cfg.WEAKSUP.EVALUATORS),
        "WEAKSUP.PSEUDO_MASKS", pseudo_json,
        "MODEL.HYBRID.VALID_THRESHOLD", h.VALID_THRESHOLD,
    ]  # fmt: skip
    opts = list(opts) + pipeline
    return stage_config(load_config(path, opts), os.path.join(cfg.OUTPUT_DIR, out), cfg, opts, out)


def _per_dataset(cfg: CfgNode, results: Any) -> Dict[str, Dict]:
    """Detectron2's test results keyed by dataset (it unwraps a single dataset's)."""
    if not results:
        return {}
    return {cfg.DATASETS.TEST[0]: results} if len(cfg.DATASETS.TEST) == 1 else dict(results)


@PIPELINE_REGISTRY.register("Hybrid")
def run_hybrid_pipeline(cfg: CfgNode, args: Namespace) -> Dict[str, Any]:
    """Stages 1-5 with caching (module docstring); returns every model's evaluation results,
    ``{stage: {dataset: results}}`` (filled on the main process)."""
    h, stages = cfg.MODEL.HYBRID, cfg.WEAKSUP.HYBRID
    if len(cfg.DATASETS.TRAIN) != 1:
        raise ValueError(
            f"the Hybrid pipeline trains on one dataset, got DATASETS.TRAIN {cfg.DATASETS.TRAIN}"
        )
    for key, allowed in (("LARGE", ("all", "valid")), ("SMALL", ("all", "invalid"))):
        value = stages.get(f"{key}_TRAIN_INSTANCES")
        if value not in allowed:
            raise ValueError(
                f"WEAKSUP.HYBRID.{key}_TRAIN_INSTANCES must be one of {allowed}, got {value!r}"
            )
    train = cfg.DATASETS.TRAIN[0]
    pseudo_json = os.path.join(cfg.OUTPUT_DIR, "pseudo_masks", f"{train}.json")
    pseudo = run_pseudo_mask_stage(
        "stage 1",
        train,
        pseudo_json,
        stages.PSEUDO.METHOD,
        PseudoMaskConfig(valid_threshold=h.VALID_THRESHOLD),
        seed=stages.PSEUDO.SEED,
        shard_size=stages.PSEUDO.SHARD_SIZE,
        num_workers=stages.PSEUDO.NUM_WORKERS,
        title=f"Validity of the pseudo masks of {train} (Hybrid Sec. 1)",
    )

    def view(instances: str):
        """The training data of ``instances`` and the suffix of its folder (each branch's folder
        names its training instances, so switching retrains it)."""
        if instances == "all":
            return train, ""
        keep = instances == "valid"
        return register_validity_view(train, pseudo_json, keep_valid=keep), "_" + instances

    split = (stages.LARGE_TRAIN_INSTANCES, stages.SMALL_TRAIN_INSTANCES)
    splits = [split]
    if stages.SPLIT_ABLATION:
        splits.append(("all", "all") if split == PAPER_SPLIT else PAPER_SPLIT)
    results = {}
    sub = _branch_config(cfg, "baseline", train, pseudo_json, "baseline")
    trained = run_training_stage(
        WeaksupTrainer, sub, "baseline", "training the baseline Mask R-CNN on all GrabCut masks",
        evaluate_when_done=True, inputs=[pseudo],
    )  # fmt: skip
    results["baseline"] = _per_dataset(cfg, trained)
    wait_for_all()
    for large, small in splits:
        tag = "" if (large, small) == split else f" [large: {large}, small: {small}]"
        dirs = {}
        for which, instances, title in (
            ("large", large, "large branch (Mask R-CNN on {}, valid masks only)"),
            ("small", small, "small branch (Faster R-CNN on {})"),
        ):
            data, suffix = view(instances)
            dirs[which] = which + suffix
            sub = _branch_config(cfg, which, data, pseudo_json, dirs[which])
            trained = run_training_stage(
                WeaksupTrainer, sub, which, "training the " + title.format(data),
                evaluate_when_done=True, inputs=[pseudo],
            )  # fmt: skip
            results[which + tag] = _per_dataset(cfg, trained)
            wait_for_all()
        fused = cfg.clone()
        fused.defrost()
        fused.MODEL.HYBRID.LARGE_WEIGHTS = os.path.join(
            cfg.OUTPUT_DIR, dirs["large"], "model_final.pth"
        )
        fused.MODEL.HYBRID.SMALL_WEIGHTS = os.path.join(
            cfg.OUTPUT_DIR, dirs["small"], "model_final.pth"
        )
        fused.freeze()
        logger.info(f"fused{tag}: evaluating the two trained branches together (HybridNetwork)")
        model = WeaksupTrainer.build_model(fused)
        results["fused" + tag] = _per_dataset(cfg, WeaksupTrainer.test(fused, model))
        if not tag:
            primary = (fused, model)
    fused, model = primary
    if comm.is_main_process():
        write_prediction_overlays(fused, model, os.path.join(cfg.OUTPUT_DIR, "overlays"))
        tables = [
            format_ablation_table({k: v[d] for k, v in results.items() if d in v}, d)
            for d in cfg.DATASETS.TEST
        ]
        text = "\n\n".join(tables)
        logger.info("Hybrid ablation (Tab. 1-2 metrics):\n" + text)
        write_atomic((text + "\n").encode(), os.path.join(cfg.OUTPUT_DIR, "ablation.md"))
    wait_for_all()
    return results
