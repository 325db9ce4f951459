"""Pseudo masks of a registered dataset: the dataset as pseudo-mask tasks (shared with
``tools/make_pseudo_masks.py``) and a job run inside a training job (a pipeline's pseudo-mask
stage).

The work is :class:`weaksup.pseudo.job.PseudoMaskJob`'s (per-annotation seeds, shards written
atomically, resume); :func:`run_sharded_job` runs any :class:`~weaksup.pseudo.job.ShardedJob`
(these pseudo masks, or a method's own such as proxy masks) inside a ``train_net.py`` job: every
process (``--num-gpus`` / machines) computes shards ``rank, rank + world, ...`` and the main
process assembles the json. The output is the pseudo-mask tool's json; ``info.job_fingerprint``
records the job (method, parameters, seed, boxes), so a finished file is reused only for the
same job.
"""

import json
import logging
import os
from dataclasses import asdict
from typing import Any, Callable, Dict, List

from detectron2.data import DatasetCatalog
from detectron2.data.datasets.coco import convert_to_coco_dict
from detectron2.structures import BoxMode
from detectron2.utils import comm
from tabulate import tabulate

from ..data.datasets import sanitize_dataset_dicts
from ..pseudo import PseudoMaskConfig
from ..pseudo.job import ImageTask, PseudoMaskJob, ShardedJob, job_output_complete
from ..pseudo.validity import validity_statistics
from ..utils.coco_json import check_coco_dict
from .launch import broadcast_from_main, check_shared_folder, wait_for_all
from .stages import Stage, run_stage

__all__ = [
    "build_tasks",
    "dataset_coco",
    "generate_pseudo_masks",
    "log_pseudo_mask_validity",
    "pseudo_mask_validity",
    "run_pseudo_mask_stage",
    "run_sharded_job",
]

logger = logging.getLogger(__name__)


def dataset_coco(dataset_name: str) -> Dict[str, Any]:
    """A registered dataset as a COCO dict (absolute file names): Detectron2's converter, with the
    loader's own annotation ids when it keeps them (so pseudo masks match the dataset by id)."""
    coco = convert_to_coco_dict(dataset_name)
    annotations = [a for r in DatasetCatalog.get(dataset_name) for a in r.get("annotations", [])]
    if annotations and all("id" in a for a in annotations):
        for coco_ann, ann in zip(coco["annotations"], annotations):
            coco_ann["id"] = ann["id"]
    return coco


def build_tasks(coco: Dict[str, Any], image_root: str, source: str) -> List[ImageTask]:
    """One :class:`ImageTask` per image: boxes sanitized as by every weaksup loader, ground-truth
    segmentations not copied (no method can see them). ``coco`` is checked first
    (:func:`check_coco_dict`: unique ids, known images and classes, boxes of 4 numbers): the output
    json must not list a class or image the input lacks."""
    check_coco_dict(coco, source)
    records = {
        img["id"]: {
            "image_id": img["id"],
            "file_name": os.path.join(image_root, img["file_name"]),
            "height": img["height"],
            "width": img["width"],
            "annotations": [],
        }
        for img in coco["images"]
    }
    for ann in coco["annotations"]:
        if "id" not in ann:  # pseudo masks are matched to annotations by id
            raise ValueError(f"{source}: annotation without an id: {ann}")
        records[ann["image_id"]]["annotations"].append(
            {
                "id": ann["id"],
                "bbox": list(ann["bbox"]),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": ann["category_id"],
            }
        )
    all_ids = {r["image_id"]: [a["id"] for a in r["annotations"]] for r in records.values()}
    sanitize_dataset_dicts(list(records.values()), source, None)
    tasks = []
    for r in records.values():
        kept = {a["id"] for a in r["annotations"]}
        tasks.append(
            ImageTask(
                image_id=r["image_id"],
                file_name=r["file_name"],
                height=r["height"],
                width=r["width"],
                ann_ids=tuple(a["id"] for a in r["annotations"]),
                boxes=tuple(tuple(float(v) for v in a["bbox"]) for a in r["annotations"]),
                dropped_ann_ids=tuple(i for i in all_ids[r["image_id"]] if i not in kept),
            )
        )
    return tasks


def run_sharded_job(
    job: ShardedJob,
    compute: Callable[[List[int]], Any],
    coco: Dict[str, Any],
    method: str,
    output_json: str,
    **info: Any,
) -> bool:
    """Run a :class:`~weaksup.pseudo.job.ShardedJob` in every process of a training job: skipped
    when ``output_json`` is this job's finished output (:func:`job_output_complete`); otherwise
    another job's shards are cleared, each process ``compute`` s its shards (``rank, rank +
    world, ...``; it writes the missing ones, so an interrupted run resumes) and the main process
    writes the output json and removes the work dir. Returns whether the job ran.

    The main process decides whether the job is done and every process follows (a file another
    process sees differently cannot split them); the output's folder must be the same for all
    (:func:`~weaksup.engine.launch.check_shared_folder`). Processes wait for the main one's
    assembly without the process-group timeout (:func:`~weaksup.engine.launch.wait_for_all`)."""
    check_shared_folder(os.path.dirname(os.path.abspath(output_json)), "pseudo-mask output folder")
    done = comm.is_main_process() and job_output_complete(output_json, job.fingerprint)
    if broadcast_from_main(done):
        return False
    if comm.is_main_process():
        job.reset_if_foreign()
    wait_for_all()
    compute(job.shards_of(comm.get_rank(), comm.get_world_size()))
    wait_for_all()
    if comm.is_main_process():
        job.write_output(coco, job.collect(), method, output_json, **info)
        job.cleanup(range(len(job.shards)))
        logger.info(f"Wrote {output_json}")
    wait_for_all()
    return True


def generate_pseudo_masks(
    dataset_name: str,
    output_json: str,
    method: str,
    cfg: PseudoMaskConfig = PseudoMaskConfig(),
    *,
    seed: int = 0,
    shard_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
) -> bool:
    """Pseudo masks of every box of ``dataset_name`` with the engine's ``method`` into
    ``output_json``; call it in every process of the job.

    Skipped when ``output_json`` holds this very job's result; otherwise finished shards of an
    interrupted run of the same job are reused (another job's work dir is cleared first).

    Returns:
        True when the masks were (re)computed, False when the existing file was kept.
    """
    coco = dataset_coco(dataset_name)
    job = PseudoMaskJob(
        build_tasks(coco, "", f"dataset {dataset_name!r}"),
        method,
        cfg,
        seed,
        work_dir=output_json + ".work",
        shard_size=shard_size,
    )

    def compute(mine: List[int]) -> None:
        logger.info(
            f"Pseudo masks ({method}) of {dataset_name}: {len(job.tasks)} images, "
            f"{len(job.shards)} shards, {len(mine)} in this process"
        )
        job.run(mine, resume=True, num_workers=num_workers, progress=progress)

    return run_sharded_job(job, compute, coco, method, output_json)


def run_pseudo_mask_stage(
    name: str,
    dataset_name: str,
    output_json: str,
    method: str,
    cfg: PseudoMaskConfig,
    *,
    seed: int,
    shard_size: int,
    num_workers: int,
    title: str,
) -> Stage:
    """Run the cached stage ``name``: the pseudo masks of every box of ``dataset_name``
    (:func:`generate_pseudo_masks` as a :class:`~weaksup.engine.stages.Stage`: skipped when up to
    date, resumed when interrupted), then their validity logged under ``title``. Call it in every
    process; returns the stage, the input of the stages trained on it."""
    # settings: the dataset, the method, its parameters and the seed (the shard size and the
    # worker count change nothing in the output); the dataset is read by content (boxes, images)
    settings = {"dataset": dataset_name, "method": method, "cfg": asdict(cfg), "seed": seed}
    stage = Stage(name, output_json, settings, datasets=[dataset_name])
    logger.info(f"{name}: pseudo masks ({method}) of {dataset_name}")
    run_stage(
        stage,
        lambda: generate_pseudo_masks(
            dataset_name,
            output_json,
            method,
            cfg,
            seed=seed,
            shard_size=shard_size,
            num_workers=num_workers,
        ),
    )
    log_pseudo_mask_validity(output_json, title)
    return stage


def pseudo_mask_validity(path: str) -> Dict[str, float]:
    """Hybrid Sec. 1's validity statistics (:func:`validity_statistics`) of a pseudo-mask json,
    from its ``mask_valid`` flags and its boxes (annotations whose box was dropped excluded)."""
    with open(path) as f:
        anns = [a for a in json.load(f)["annotations"] if a.get("fallback") != "empty_box"]
    return validity_statistics(
        [a["mask_valid"] for a in anns], [a["bbox"][2] * a["bbox"][3] for a in anns]
    )


def log_pseudo_mask_validity(path: str, title: str) -> None:
    """Log :func:`pseudo_mask_validity` of ``path`` as a table headed ``title`` (main process)."""
    if comm.is_main_process():
        stats = pseudo_mask_validity(path)
        logger.info(
            f"{title}:\n" + tabulate(list(stats.items()), headers=["", "%"], floatfmt=".1f")
        )
