"""Wei et al., learning to segment from image-level labels: every stage behind one command.

``WEAKSUP.PIPELINE: "Wei"``; the config is the segmentation network's
(``SoftTargetSegmentor`` + ``SoftLabelSemSegFPNHead``), ``DATASETS.TRAIN`` one image-level dataset
(:mod:`weaksup.data.datasets.image_labels`: no box or mask is ever read), ``DATASETS.TEST``
semantic datasets. Stages, each cached under ``OUTPUT_DIR`` (a :class:`~weaksup.engine.stages.Stage`:
skipped only when made with the same settings and inputs, redone when one changed, resumed when
interrupted):

0. proposals of every training image (``proposals/``, :mod:`weaksup.pseudo.proposals`);
1. HCP image fine-tuning (``hcp_image/``), then hypothesis fine-tuning (``hcp_hypotheses/``)
   (:class:`~weaksup.methods.wei.hcp.HCP`, Sec. 3.1);
2. proposal scores, cross-image refinement, localization maps and rough masks
   (:mod:`.stage2`, Sec. 3.1-3.3);
3. one segmentation network per scheme of ``WEAKSUP.WEI.SCHEMES`` (Tab. 1: ``AN_A``, ``SN_A``,
   ``AN_B``, ``SN_B``; ``*_norefine`` for Tab. 3), each trained in ``<scheme>/``, evaluated on
   ``DATASETS.TEST`` (``wei_results.json``); then the tables are printed
   (:func:`format_wei_tables`, also ``tools/wei_table.py``).
"""

import json
import logging
import math
import os
import shutil
from argparse import Namespace
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping
from detectron2.utils import comm

from weaksup.data.datasets import register_or_replace
from weaksup.data.datasets.image_labels import IMAGE_LEVEL_KEYS, single_label_records
from weaksup.engine.launch import wait_for_all
from weaksup.pseudo.job import ImageTask
from weaksup.utils.file_io import write_json_atomic
from weaksup.utils.image_io import read_image_bgr
from weaksup.pseudo.proposals import PerImageFileJob, file_key, make_proposal_file
from weaksup.config import load_config
from weaksup.engine.pipeline import (
    PIPELINE_REGISTRY,
    run_training_stage,
    stage_config,
    stage_done,
    train_stage,
    training_stage,
)
from weaksup.engine.stages import Stage, run_stage
from weaksup.engine.trainer import WeaksupTrainer
from weaksup.utils.checkpoint import SafeDetectionCheckpointer

from .data import load_localization_maps
from .scoring import (
    format_hcp_table,
    format_label_quality_table,
    localization_label_map,
    multilabel_average_precision,
    score_label_maps,
)
from .stage2 import hcp_image_scores, refine, score_proposals, write_maps_and_masks

__all__ = [
    "WEI_SCHEMES",
    "WeiTrainer",
    "format_wei_tables",
    "load_wei_results",
    "load_wei_scores",
    "result_classes",
    "run_wei_pipeline",
]

logger = logging.getLogger(__name__)

# scheme -> (supervision, image subset): "A" localization maps (Eq. 4), "B" rough masks;
# "all" images or "single"-label images (Sec. 4.2); *_norefine: maps without refinement (Tab. 3).
WEI_SCHEMES = {
    "AN_A": ("maps", "all"),
    "SN_A": ("maps", "single"),
    "AN_B": ("rough_masks", "all"),
    "SN_B": ("rough_masks", "single"),
    "AN_A_norefine": ("maps_norefine", "all"),
    "SN_A_norefine": ("maps_norefine", "single"),
}
RESULTS_FILE = "wei_results.json"
# Scores of the intermediate stages against ground truth (HCP AP, training-label mIoU) and the
# test set's background-only floor, written by the pipeline, read by tools/wei_table.py.
SCORES_FILE = "wei_scores.json"
BASELINE = "background-only"


class WeiTrainer(WeaksupTrainer):
    """:class:`WeaksupTrainer` with the paper's larger learning rate on the last layer
    (Sec. 4.2): HCP's classifier (``MODEL.HCP.CLASSIFIER_LR_FACTOR``) or the segmentation
    head's classifier convs (``WEAKSUP.WEI.PREDICTOR_LR_FACTOR``; the FPN head's ``predictor``,
    the ASPP head's per-branch classifiers)."""

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        if cfg.MODEL.META_ARCHITECTURE == "HCP":
            factor = cfg.MODEL.HCP.CLASSIFIER_LR_FACTOR
            last = {f"classifier.{n}" for n, _ in model.classifier.named_parameters()}
        else:  # the head's classifier convs: those with one output channel per class
            factor = cfg.WEAKSUP.WEI.PREDICTOR_LR_FACTOR
            num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
            last = {
                f"sem_seg_head.{m}.{n}"
                for m, mod in model.sem_seg_head.named_modules()
                if isinstance(mod, torch.nn.Conv2d) and mod.out_channels == num_classes
                for n, _ in mod.named_parameters(recurse=False)
            }
        if not last:
            raise ValueError(f"{type(model).__name__}: no last layer found for its lr factor")
        params = get_default_optimizer_params(
            model,
            base_lr=cfg.SOLVER.BASE_LR,
            weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
            weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
            lr_factor_func=lambda name: factor if name in last else 1.0,
        )
        return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(
            params,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )


def _register(name: str, records: List[Dict], **metadata) -> str:
    return register_or_replace(name, lambda: records, **metadata)


def _image_level_records(name: str) -> List[Dict]:
    records = DatasetCatalog.get(name)
    for r in records:
        extra = sorted(set(r) - set(IMAGE_LEVEL_KEYS))
        if extra:
            raise ValueError(
                f"{name}: image {r.get('file_name')!r} carries {extra}; the Wei et al. pipeline "
                "trains on image-level datasets only (register_image_labels)"
            )
    return records


def hcp_config(cfg: CfgNode, path: str, subdir: str, opts: Sequence[str]) -> CfgNode:
    """An HCP stage config: the file ``path`` + ``opts``, no evaluation, output
    ``<OUTPUT_DIR>/<subdir>``, the job-wide command-line overrides
    (:func:`~weaksup.engine.pipeline.stage_config`)."""
    opts = ["DATASETS.TEST", "()"] + list(opts)
    out = os.path.join(cfg.OUTPUT_DIR, subdir)
    return stage_config(load_config(path, opts), out, cfg, opts, subdir)


def _proposal_item(item, num: int, max_side: int, mcg_dir: str) -> None:
    task, path = item
    # called only when the candidates must be made
    loader = partial(read_image_bgr, task.file_name, task.height, task.width, task.image_id)
    make_proposal_file(
        loader, task.file_name, task.height, task.width, path, num, max_side, mcg_dir
    )


def run_proposals(
    cfg: CfgNode, dataset: str, records: List[Dict], folder: str
) -> Tuple[List[Dict], Stage]:
    """Stage 0: a proposal file per training image of ``records`` (of ``dataset``, whose content
    keys the stage; main process; resumable, parallel). The later stages read it, so they are
    redone with it."""
    w = cfg.WEAKSUP.WEI
    out = [
        {**r, "proposal_file": os.path.join(folder, file_key(r["image_id"]) + ".npz")}
        for r in records
    ]
    settings = dict(
        num=w.NUM_CANDIDATES,
        side=w.CANDIDATE_MAX_SIDE,
        mcg=w.MCG_DIR,
        images=sorted(file_key(r["image_id"]) for r in records),
    )
    stage = Stage("stage 0 (proposals)", folder, settings, is_dir=True, datasets=[dataset])

    def body() -> None:
        if not comm.is_main_process():
            return
        # ImageTask: the image to read, size-checked against the record
        items = [
            (ImageTask(r["image_id"], r["file_name"], r["height"], r["width"], (), ()), path)
            for r, path in ((r, r["proposal_file"]) for r in out)
        ]
        fn = partial(
            _proposal_item,
            num=w.NUM_CANDIDATES,
            max_side=w.CANDIDATE_MAX_SIDE,
            mcg_dir=w.MCG_DIR,
        )
        job = PerImageFileJob(fn, lambda item: item[1], "proposals")
        n = job.run(items, num_workers=w.NUM_WORKERS)
        logger.info(
            f"stage 0: proposals of {len(items)} images, {n} computed, {len(items) - n} reused"
        )

    run_stage(stage, body, output_done=lambda: all(os.path.isfile(r["proposal_file"]) for r in out))
    return out, stage


def run_hcp(
    cfg: CfgNode, train_name: str, num_classes: int, proposals: Stage
) -> Tuple[CfgNode, Stage]:
    """Stage 1: HCP image fine-tuning, then hypothesis fine-tuning from its final weights;
    returns the latter's config and stage."""
    opts = ["DATASETS.TRAIN", f"('{train_name}',)", "MODEL.HCP.NUM_CLASSES", str(num_classes)]
    cfg_img = hcp_config(
        cfg, cfg.WEAKSUP.WEI.HCP_IMAGE_CONFIG, "hcp_image", opts + ["MODEL.HCP.MODE", "image"]
    )
    img = training_stage(cfg_img, "stage 1a", [proposals])
    run_training_stage(WeiTrainer, cfg_img, img, "HCP image fine-tuning")
    weights = os.path.join(cfg_img.OUTPUT_DIR, "model_final.pth")
    opts += ["MODEL.HCP.MODE", "hypotheses", "MODEL.WEIGHTS", weights]
    cfg_hyp = hcp_config(cfg, cfg.WEAKSUP.WEI.HCP_HYPOTHESES_CONFIG, "hcp_hypotheses", opts)
    hyp = training_stage(cfg_hyp, "stage 1b", [img, proposals])
    run_training_stage(WeiTrainer, cfg_hyp, hyp, "HCP hypothesis fine-tuning")
    return cfg_hyp, hyp


def _all_files(folder: str, keys: Sequence[str], ext: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, k + ext)) for k in keys)


def run_localization(
    cfg: CfgNode, cfg_hcp: CfgNode, records: List[Dict], hcp: Stage
) -> Tuple[Dict[str, str], Stage]:
    """Stage 2 (:mod:`.stage2`): proposal scores, then refinement, localization maps and rough
    masks, two cached stages; returns the folders of maps / rough masks and the last stage."""
    w = cfg.WEAKSUP.WEI
    weights = os.path.join(cfg_hcp.OUTPUT_DIR, "model_final.pth")
    score_settings = {
        "thresh": w.SCORE_THRESH,
        "min_candidates": w.MIN_CANDIDATES,
        "test_size": [cfg_hcp.INPUT.MIN_SIZE_TEST, cfg_hcp.INPUT.MAX_SIZE_TEST],
        "images": sorted(file_key(r["image_id"]) for r in records),
    }
    score_dir = os.path.join(cfg.OUTPUT_DIR, "scores")
    scores = Stage("stage 2a (proposal scores)", score_dir, score_settings, [hcp], is_dir=True)

    def score() -> None:
        model = WeiTrainer.build_model(cfg_hcp)
        SafeDetectionCheckpointer(model).load(weights)
        score_proposals(cfg_hcp, model, records, score_dir, w.SCORE_THRESH, w.MIN_CANDIDATES)

    keys = [file_key(r["image_id"]) for r in records]
    run_stage(scores, score, output_done=lambda: _all_files(score_dir, keys, ".npz"))
    names = ["maps", "rough_masks"] + (["maps_norefine"] if w.ABLATION else [])
    out_dirs = {n: os.path.join(cfg.OUTPUT_DIR, n) for n in names}
    settings = dict(
        energy=w.PCA_ENERGY,
        keep=w.REFINE_KEEP,
        order=w.REFINE_ORDER,
        top_k=w.ROUGH_TOP_K,
        folders=names,
    )

    def clear() -> None:
        for folder in out_dirs.values():
            shutil.rmtree(folder, ignore_errors=True)

    maps = Stage(
        "stage 2b (maps and masks)", out_dirs["maps"], settings, [scores], is_dir=True, clear=clear
    )

    def make_maps() -> None:
        if not comm.is_main_process():
            return
        for folder in out_dirs.values():
            os.makedirs(folder, exist_ok=True)
        refinement = refine(
            records,
            score_dir,
            w.SCORE_THRESH,
            w.MIN_CANDIDATES,
            w.PCA_ENERGY,
            w.REFINE_KEEP,
            w.REFINE_ORDER,
        )
        write_json_atomic(refinement, os.path.join(out_dirs["maps"], "refinement.json"))
        write_maps_and_masks(
            records,
            refinement,
            score_dir,
            out_dirs,
            w.ROUGH_TOP_K,
            w.NUM_WORKERS,
            num_vis=cfg.WEAKSUP.VIS.NUM_IMAGES,
        )

    def maps_done() -> bool:
        return all(
            _all_files(folder, keys, ".png" if name == "rough_masks" else ".npz")
            for name, folder in out_dirs.items()
        )

    run_stage(maps, make_maps, output_done=maps_done)
    return out_dirs, maps


def _label_map(path: str) -> np.ndarray:
    try:
        return np.asarray(Image.open(path))
    except OSError as e:
        raise ValueError(f"{path}: not a readable label map ({e})") from e


def score_hcp(cfg_hcp: CfgNode, dataset: str, classes: Sequence[str]) -> Dict[str, Any]:
    """HCP's per-class AP on the image-level dataset ``dataset`` (whole-image scores of the
    final HCP weights); main process."""
    records = DatasetCatalog.get(dataset)
    test_classes = list(MetadataCatalog.get(dataset).thing_classes)
    if test_classes != list(classes):
        raise ValueError(
            f"WEAKSUP.WEI.HCP_TEST_DATASET {dataset}: classes {test_classes} != {classes}"
        )
    model = WeiTrainer.build_model(cfg_hcp)
    SafeDetectionCheckpointer(model).load(os.path.join(cfg_hcp.OUTPUT_DIR, "model_final.pth"))
    scores = hcp_image_scores(cfg_hcp, model, records)
    labels = np.zeros(scores.shape, dtype=bool)
    for i, r in enumerate(records):
        labels[i, list(r["image_labels"])] = True
    ap = multilabel_average_precision(scores, labels)
    m = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    return {"dataset": dataset, "images": len(records), "AP": ap.tolist(), "mAP": m}


def score_training_labels(
    records: List[Dict], out_dirs: Dict[str, str], gt_dataset: str, num_classes: int
) -> Dict[str, Dict]:
    """mIoU of the stage-2 labels of the training images (argmax of the maps of Eq. 2 with and
    without refinement, rough masks) against the label maps of ``gt_dataset`` (matched by
    ``file_name``; images it lacks are left out); main process."""
    gt = {r["file_name"]: r["sem_seg_file_name"] for r in DatasetCatalog.get(gt_dataset)}
    scored = [r for r in records if r["file_name"] in gt]
    if not scored:
        raise ValueError(f"WEAKSUP.WEI.LABEL_GT_DATASET {gt_dataset}: no training image in it")
    ignore = MetadataCatalog.get(gt_dataset).get("ignore_label", 255)

    def maps(folder):
        def read(r):
            z = load_localization_maps(os.path.join(folder, file_key(r["image_id"]) + ".npz"))
            return localization_label_map(z["maps"], z["labels"])

        return read

    sources = {"maps": maps(out_dirs["maps"])}
    if "maps_norefine" in out_dirs:
        sources = {"maps w/o refinement": maps(out_dirs["maps_norefine"]), **sources}
    sources["rough masks"] = lambda r: _label_map(
        os.path.join(out_dirs["rough_masks"], file_key(r["image_id"]) + ".png")
    )
    return score_label_maps(
        scored, lambda r: _label_map(gt[r["file_name"]]), sources, num_classes, ignore
    )


def background_only_results(dataset: str, stuff: Sequence[str]) -> Dict[str, Any]:
    """The ``sem_seg`` metrics of predicting background everywhere on ``dataset`` (the floor
    the segmentation networks must clear), in the evaluator's format."""
    records = DatasetCatalog.get(dataset)
    ignore = MetadataCatalog.get(dataset).get("ignore_label", 255)
    q = score_label_maps(
        records, lambda r: _label_map(r["sem_seg_file_name"]), {}, len(stuff), ignore
    )[BASELINE]
    metrics = {f"IoU-{c}": v for c, v in zip(stuff, q["IoU"])}
    return {"sem_seg": {"mIoU": q["mIoU"], **metrics}}


def scheme_records(records: List[Dict], scheme: str, out_dirs: Dict[str, str]) -> List[Dict]:
    """Training records of ``scheme`` (:data:`WEI_SCHEMES`)."""
    source, subset = WEI_SCHEMES[scheme]
    if subset == "single":
        records = single_label_records(records)
    key = "sem_seg_file_name" if source == "rough_masks" else "localization_map_file"
    ext = ".png" if source == "rough_masks" else ".npz"
    return [
        {
            "file_name": r["file_name"],
            "height": r["height"],
            "width": r["width"],
            "image_id": r["image_id"],
            key: os.path.join(out_dirs[source], file_key(r["image_id"]) + ext),
        }
        for r in records
    ]


def _schemes(cfg: CfgNode) -> List[str]:
    schemes = list(cfg.WEAKSUP.WEI.SCHEMES)
    unknown = [s for s in schemes if s not in WEI_SCHEMES]
    if unknown:
        raise ValueError(f"WEAKSUP.WEI.SCHEMES: unknown {unknown}; known: {list(WEI_SCHEMES)}")
    if cfg.WEAKSUP.WEI.ABLATION:
        schemes += [s + "_norefine" for s in schemes if s.endswith("_A")]
    return schemes


def _check_test_classes(cfg: CfgNode, stuff: Sequence[str]) -> None:
    for name in cfg.DATASETS.TEST:
        got = list(MetadataCatalog.get(name).get("stuff_classes", []))
        if got != list(stuff):
            raise ValueError(
                f"test dataset {name} has stuff_classes {got}; the training classes give {stuff}"
            )


@PIPELINE_REGISTRY.register("Wei")
def run_wei_pipeline(cfg: CfgNode, args: Namespace) -> Dict[str, Any]:
    """Stages 0-3 with caching (module docstring); returns ``{scheme: evaluation results}``."""
    if len(cfg.DATASETS.TRAIN) != 1:
        raise ValueError(f"DATASETS.TRAIN must name one image-level dataset: {cfg.DATASETS.TRAIN}")
    train_name = cfg.DATASETS.TRAIN[0]
    classes = list(MetadataCatalog.get(train_name).thing_classes)
    stuff = ["background"] + classes
    _check_test_classes(cfg, stuff)
    schemes = _schemes(cfg)
    records, proposals = run_proposals(
        cfg, train_name, _image_level_records(train_name), os.path.join(cfg.OUTPUT_DIR, "proposals")
    )
    hcp_train = _register(train_name + "_wei_proposals", records, thing_classes=classes)
    cfg_hcp, hcp = run_hcp(cfg, hcp_train, len(classes), proposals)
    w = cfg.WEAKSUP.WEI
    scores: Dict[str, Any] = {}
    if w.HCP_TEST_DATASET and comm.is_main_process():
        scores["hcp"] = score_hcp(cfg_hcp, w.HCP_TEST_DATASET, classes)
        logger.info("stage 1 scores:\n" + _hcp_table(scores["hcp"], classes))
    out_dirs, maps = run_localization(cfg, cfg_hcp, records, hcp)
    if w.LABEL_GT_DATASET and comm.is_main_process():
        scores["labels"] = score_training_labels(records, out_dirs, w.LABEL_GT_DATASET, len(stuff))
        logger.info("stage 2 scores:\n" + format_label_quality_table(scores["labels"], stuff))
    results = {}
    for scheme in schemes:
        cfg_s = cfg.clone()
        cfg_s.defrost()
        name = _register(
            f"{train_name}_wei_{scheme}",
            scheme_records(records, scheme, out_dirs),
            stuff_classes=stuff,
            ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        )
        cfg_s.DATASETS.TRAIN = (name,)
        cfg_s.MODEL.SEM_SEG_HEAD.NUM_CLASSES = len(stuff)
        cfg_s.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, scheme)
        cfg_s.freeze()
        path = os.path.join(cfg_s.OUTPUT_DIR, RESULTS_FILE)

        def train(cfg_s=cfg_s, name=name, scheme=scheme, path=path):
            logger.info(f"stage 3 ({scheme}): {len(DatasetCatalog.get(name))} training images")
            res = train_stage(WeiTrainer, cfg_s, f"stage 3 ({scheme})")
            if comm.is_main_process():
                write_json_atomic(res, path)
            return res

        def load(path=path):
            with open(path) as f:
                return json.load(f)

        results[scheme] = run_stage(
            training_stage(cfg_s, f"stage 3 ({scheme})", [maps]),
            train,
            output_done=lambda cfg_s=cfg_s, path=path: stage_done(cfg_s.OUTPUT_DIR)
            and os.path.isfile(path),
            skipped=load,
        )
    wait_for_all()
    if comm.is_main_process():
        if cfg.DATASETS.TEST:
            scores[BASELINE] = background_only_results(cfg.DATASETS.TEST[0], stuff)
        write_json_atomic({"classes": classes, **scores}, os.path.join(cfg.OUTPUT_DIR, SCORES_FILE))
        tables = format_wei_tables(results, stuff, scores)
        logger.info("Wei et al. results:\n" + tables)
        print(tables, flush=True)
    return results


def load_wei_results(output_dir: str) -> Dict[str, Any]:
    """The evaluation results of every scheme trained under ``output_dir``."""
    out = {}
    for scheme in WEI_SCHEMES:
        path = os.path.join(output_dir, scheme, RESULTS_FILE)
        if os.path.isfile(path):
            with open(path) as f:
                out[scheme] = json.load(f)
    return out


def load_wei_scores(output_dir: str) -> Dict[str, Any]:
    """The pipeline's ``wei_scores.json`` under ``output_dir`` (``{}`` if there is none)."""
    path = os.path.join(output_dir, SCORES_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _hcp_table(hcp: Dict[str, Any], classes: Sequence[str]) -> str:
    return format_hcp_table(hcp["AP"], classes, hcp["images"])


def result_classes(results: Dict[str, Any]) -> List[str]:
    """Class names in the order of the ``IoU-<class>`` entries of the first scheme's results."""
    for res in results.values():
        return [k[len("IoU-") :] for k in _sem_seg(res) if k.startswith("IoU-")]
    return []


def _sem_seg(res: Dict[str, Any]) -> Dict[str, float]:
    """The ``sem_seg`` metrics of one scheme (the first test dataset's when there are several)."""
    if "sem_seg" in res:
        return res["sem_seg"]
    for v in res.values():
        if isinstance(v, dict) and "sem_seg" in v:
            return v["sem_seg"]
    return {}


def _table(title: str, columns: List[str], results: Dict[str, Any], stuff: Sequence[str]) -> str:
    rows = [f"{title}", "| class | " + " | ".join(columns) + " |"]
    rows.append("|---" * (len(columns) + 1) + "|")
    metrics = {c: _sem_seg(results.get(c, {})) for c in columns}

    def cell(value):
        return (
            "-"
            if value is None or (isinstance(value, float) and math.isnan(value))
            else f"{value:.1f}"
        )

    for name in list(stuff) + ["mIoU"]:
        key = "mIoU" if name == "mIoU" else f"IoU-{name}"
        rows.append(f"| {name} | " + " | ".join(cell(metrics[c].get(key)) for c in columns) + " |")
    floor = metrics.get(BASELINE, {}).get("mIoU")
    if floor:  # each network's mIoU as a multiple of predicting background everywhere
        ratios = [metrics[c].get("mIoU") for c in columns]
        rows.append(
            f"| x {BASELINE} | "
            + " | ".join("-" if r is None else f"{r / floor:.2f}" for r in ratios)
            + " |"
        )
    return "\n".join(rows)


def format_wei_tables(
    results: Dict[str, Any], stuff: Sequence[str], scores: Optional[Dict[str, Any]] = None
) -> str:
    """Tab. 1 (IoU per class and mIoU of AN_A, SN_A, AN_B, SN_B) and Tab. 3 (the *_A schemes
    without / with the cross-image refinement) as markdown, missing schemes left out; with the
    pipeline's ``scores`` (:data:`SCORES_FILE`) also HCP's AP, the training labels' mIoU and a
    background-only column (and each mIoU as a multiple of it)."""
    scores = scores or {}
    out = []
    if "hcp" in scores:
        out.append(_hcp_table(scores["hcp"], stuff[1:]))
    if "labels" in scores:
        out.append(format_label_quality_table(scores["labels"], stuff))
    results = dict(results)
    extra = []
    if BASELINE in scores:
        results[BASELINE] = scores[BASELINE]
        extra = [BASELINE]
    t1 = [s for s in ("AN_A", "SN_A", "AN_B", "SN_B") if s in results]
    out.append(_table("Table 1: IoU (%) per training scheme", t1 + extra, results, stuff))
    t3 = []
    for s in ("AN_A", "SN_A"):
        if s in results and s + "_norefine" in results:
            t3 += [s + "_norefine", s]
    if t3:
        out.append(
            _table(
                "Table 3: without (*_norefine) / with cross-image refinement",
                t3 + extra,
                results,
                stuff,
            )
        )
    return "\n\n".join(out)
