#!/usr/bin/env python
"""Pseudo masks from boxes for a whole COCO-format dataset (weaksup's pseudo-mask engine).

Examples::

    python tools/make_pseudo_masks.py --input-json train.json --image-root images/ \\
        --method grabcut --output pseudo/train_grabcut.json --num-workers 2
    python tools/make_pseudo_masks.py --dataset pennfudan_train --method ellipse --output out.json
    # after a kill: finished shards are kept next to the output, --resume computes the rest
    python tools/make_pseudo_masks.py ... --resume
    # two machines (gloo): the same command on each, --machine-rank 0 / 1; rank 0 writes
    python tools/make_pseudo_masks.py ... --num-machines 2 --machine-rank 0 --dist-url tcp://h:1234

The output is the input json with each annotation's ``segmentation`` replaced by its pseudo mask
(compressed RLE, ``area`` = its pixel count) and ``pseudo_method``, ``box_agreement``,
``mask_valid``, ``fallback`` added; images, categories and annotation ids are unchanged.
Ground-truth masks of the input are dropped before any method runs (``--visualize`` draws their
outline, nothing else reads them). Boxes are checked as by every weaksup loader
(:func:`sanitize_dataset_dicts`: clipped to the image, zero-area / inverted / outside boxes dropped,
one counted warning); an annotation whose box is dropped keeps its id in the output with an empty
mask, ``mask_valid=False`` and ``fallback="empty_box"``. A missing, empty, truncated (JPEG, PNG) or
unreadable image stops the job with an error naming the file and image id (shards done so far are
kept for ``--resume``). A second job on the same output (the same machine rank) is refused while
the first runs (:func:`output_lock`).
Method parameters are the fields of :class:`PseudoMaskConfig`, one option each
(``--valid-threshold 0.95``, ``--merge-smaller true``, ...).
"""

import argparse
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch.distributed as dist
from detectron2.utils.logger import setup_logger

from weaksup.engine.pseudo_masks import build_tasks, dataset_coco
from weaksup.evaluation.ground_truth import segmentation_to_bitmask
from weaksup.pseudo import METHODS
from weaksup.pseudo.config_args import add_config_arguments, config_from_args
from weaksup.pseudo.job import PseudoMaskJob
from weaksup.pseudo.visualize import draw_pseudo_masks
from weaksup.utils.coco_json import load_coco_file
from weaksup.utils.file_io import check_output_file, write_atomic
from weaksup.utils.file_lock import output_lock
from weaksup.utils.image_io import read_image_bgr

logger = logging.getLogger("weaksup.make_pseudo_masks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input-json", help="COCO instances json (its masks are never used)")
    src.add_argument("--dataset", help="a registered Detectron2 dataset instead of a json")
    parser.add_argument("--image-root", default="", help="folder of the json's file names")
    parser.add_argument("--method", required=True, choices=sorted(METHODS))
    parser.add_argument("--output", required=True, help="output json (written atomically)")
    parser.add_argument("--num-workers", type=int, default=0, help="processes (0: this one)")
    parser.add_argument("--resume", action="store_true", help="reuse finished shards")
    parser.add_argument("--shard-size", type=int, default=32, help="images per shard file")
    parser.add_argument("--seed", type=int, default=0, help="job seed (+ annotation id)")
    parser.add_argument("--visualize", metavar="DIR", help="write overlays of a sample here")
    parser.add_argument("--num-visualize", type=int, default=16, help="images drawn")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0)
    parser.add_argument("--dist-url", default="tcp://127.0.0.1:29511", help="gloo init method")
    add_config_arguments(parser)
    return parser


def load_input(args: argparse.Namespace) -> Tuple[Dict[str, Any], str, str]:
    """The input as a COCO dict, a name for messages, and the image root."""
    if args.dataset:
        return dataset_coco(args.dataset), f"dataset {args.dataset!r}", ""
    return load_coco_file(args.input_json), args.input_json, args.image_root


def write_overlays(
    coco: Dict[str, Any], job: PseudoMaskJob, results: List[Dict], out_dir: str, count: int
) -> None:
    """Overlays (:func:`draw_pseudo_masks`) of ``count`` images evenly spread over the job."""
    by_id = {r["id"]: r for r in results}
    gt = {a["id"]: a.get("segmentation") for a in coco["annotations"]}
    picks = np.unique(np.linspace(0, len(job.tasks) - 1, min(count, len(job.tasks))).astype(int))
    for i in picks:
        task = job.tasks[i]
        ids = task.ann_ids + task.dropped_ann_ids
        gt_masks = []
        for ann_id in ids:
            try:
                gt_masks.append(segmentation_to_bitmask(gt[ann_id], task.height, task.width))
            except (ValueError, TypeError, KeyError):  # no (or an unusable) GT mask: no outline
                gt_masks.append(None)
        image = draw_pseudo_masks(
            read_image_bgr(task.file_name, task.height, task.width, task.image_id),
            [mask_util.decode(by_id[a]["segmentation"]).astype(bool) for a in ids],
            task.boxes,
            [by_id[a]["mask_valid"] for a in ids],
            gt_masks,
        )
        path = os.path.join(out_dir, f"{task.image_id}.png")
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"cannot encode the overlay {path}")
        write_atomic(png.tobytes(), path)
    logger.info(f"Wrote {len(picks)} overlays to {out_dir}")


def run(args: argparse.Namespace) -> None:
    """Make the pseudo masks (this machine's shards), gather on rank 0 and write the output."""
    distributed = args.num_machines > 1
    if distributed:
        dist.init_process_group(
            "gloo", init_method=args.dist_url, world_size=args.num_machines, rank=args.machine_rank
        )
    rank, world = args.machine_rank, args.num_machines
    check_output_file(args.output, "--output")  # before the work, not after it
    if args.visualize:
        check_output_file(os.path.join(args.visualize, "overlay.png"), "--visualize")
    # one job per output (per machine rank: the machines of one job share the output)
    lock_name = args.output if world == 1 else f"{args.output}.rank{rank}"
    with output_lock(lock_name, "--output"):
        _run_locked(args, rank, world, distributed)


def _run_locked(args: argparse.Namespace, rank: int, world: int, distributed: bool) -> None:
    coco, source, image_root = load_input(args)
    job = PseudoMaskJob(
        build_tasks(coco, image_root, source),
        args.method,
        config_from_args(args),
        args.seed,
        work_dir=args.output + ".work",
        shard_size=args.shard_size,
    )
    mine = list(range(rank, len(job.shards), world))
    logger.info(
        f"{args.method}: {sum(t.num_instances for t in job.tasks)} instances in "
        f"{len(job.tasks)} images, {len(job.shards)} shards ({len(mine)} on rank {rank})"
    )
    done = job.run(mine, args.resume, args.num_workers, progress=not args.no_progress)
    shards = [done]
    if distributed:
        shards = [None] * world if rank == 0 else None
        dist.gather_object(done, shards, dst=0)
    if rank == 0:
        results = [r for part in shards for k in sorted(part) for r in part[k]]
        job.write_output(coco, results, args.method, args.output)
        logger.info(f"Wrote {args.output}")
        if args.visualize:
            write_overlays(coco, job, results, args.visualize, args.num_visualize)
    if distributed:
        dist.barrier()  # rank 0 has written the output: the shards are no longer needed
    job.cleanup(mine)
    if distributed:
        dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logger(name="weaksup", distributed_rank=args.machine_rank)
    run(args)


def cli() -> int:
    """The console script: exit status 0 once the job is done (errors raise)."""
    main()
    return 0


if __name__ == "__main__":
    cli()
