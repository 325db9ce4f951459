"""BoxCaseg stage 2: proxy masks for every GT box of a dataset (BoxCaseg Sec. 3.4).

A trained :class:`~weaksup.methods.boxcaseg.meta_arch.BoxCaseg` model segments a 320x320 crop at each GT
box (salient + transferred heads, Eq. 3), the masks are pasted back at image resolution, then the
pseudo-mask engine's rules apply per image: **merge** (:func:`weaksup.pseudo.merge_smaller_wins`:
a pixel claimed by several masks goes to the smallest object) and **drop** (proxy box agreement,
:func:`weaksup.pseudo.box_agreement`, below the threshold: ``mask_valid=False``, kept in the file).

The output is the pseudo-mask tool's json (:func:`weaksup.pseudo.job.pseudo_mask_json`): the
dataset as COCO json, each annotation with an RLE ``segmentation``, ``pseudo_method="boxcaseg"``,
``box_agreement``, ``mask_valid`` and ``fallback``. Generation is sharded over the processes of
the job (``--num-gpus`` / machines), batched on the device, resumable and shows a progress bar: it
is a :class:`~weaksup.pseudo.job.ShardedJob` run by
:func:`~weaksup.engine.pseudo_masks.run_sharded_job`, as the pseudo masks are (shards written
atomically to ``<output>.work/``, reused only by the same job; the output json marked with the
job's fingerprint, which also keys the model and the Sec. 3.4 settings).
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.data.datasets.coco import convert_to_coco_dict
from detectron2.utils import comm
from detectron2.utils.logger import create_small_table
from tqdm import tqdm

from weaksup.evaluation.box_mask_quality import summarize_mask_quality
from weaksup.evaluation.ground_truth import segmentation_to_rle
from weaksup.pseudo import box_agreement, merge_smaller_wins
from weaksup.engine.pseudo_masks import run_sharded_job
from weaksup.pseudo.job import ShardedJob
from weaksup.utils.file_io import file_identity
from weaksup.utils.rle import encode_mask

from .data import BoxCasegTestMapper

__all__ = [
    "PROXY_METHOD",
    "generate_proxy_masks",
    "merge_and_drop",
    "proxy_mask_quality",
]

logger = logging.getLogger(__name__)

PROXY_METHOD = "boxcaseg"


def merge_and_drop(
    masks: np.ndarray, boxes: np.ndarray, merge: bool, drop_threshold: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sec. 3.4 on one image's proxy masks: merge (smaller object wins), then drop.

    Args:
        masks: ``(N, H, W)`` bool masks at image resolution; boxes: ``(N, 4)`` ``XYXY_ABS``.

    Returns:
        the (merged) masks, their proxy box agreements (IoU of each mask's tight box with its
        box, measured after merging as the paper says) and ``mask_valid`` (agreement >= the
        threshold).
    """
    if merge:
        masks = merge_smaller_wins(masks)
    agreements = np.array([box_agreement(m, b) for m, b in zip(masks, boxes)], dtype=np.float64)
    return masks, agreements, agreements >= drop_threshold


def _job_key(dataset_name: str, weights: str, cfg: CfgNode, merge: bool, thr: float) -> Dict:
    """What the proxy masks depend on: the dataset, the model (its checkpoint file), the
    inference settings and Sec. 3.4's merge and drop."""
    return {
        "dataset": dataset_name,
        "weights": os.path.abspath(weights),
        "weights_stat": file_identity(weights),
        "test_size": cfg.INPUT.BOXCASEG.TEST_SIZE,
        "test_context": list(cfg.INPUT.BOXCASEG.TEST_CONTEXT),
        "alpha": cfg.MODEL.BOXCASEG.ALPHA,
        "mask_threshold": cfg.MODEL.BOXCASEG.MASK_THRESHOLD,
        "merge": merge,
        "drop_threshold": thr,
    }


@torch.no_grad()
def generate_proxy_masks(
    cfg: CfgNode,
    model: torch.nn.Module,
    dataset_name: str,
    output_json: str,
    *,
    weights: str = "",
    merge: bool = True,
    drop_threshold: float = 0.95,
    shard_size: int = 64,
    images_per_batch: int = 2,
    progress: bool = True,
) -> Optional[str]:
    """Proxy masks of every non-crowd GT box of ``dataset_name`` into ``output_json``.

    Call in every process of the job: process ``r`` of ``w`` computes shards ``r, r + w, ...``
    (shards already written by an interrupted run of the same job are reused), then the main
    process assembles the json; a finished output of the same job is kept. Crowd annotations get
    an empty mask flagged unusable (``fallback="crowd"``).

    Args:
        cfg: the BoxCaseg (stage-1) config (test size, loader workers, input format).
        model: the trained BoxCaseg model (eval mode is set here).
        weights: the checkpoint the model was loaded from; it keys the job so that shards or an
            output of another model are never reused.
        merge, drop_threshold: Sec. 3.4 (``cfg.WEAKSUP.BOXCASEG.PROXY``).
        shard_size: images per resumable shard file.
        images_per_batch: images per loader batch (their patches are batched together).

    Returns:
        ``output_json`` on the main process, None elsewhere.
    """
    coco = convert_to_coco_dict(dataset_name)  # annotation ids 1..N in dataset order
    dicts = DatasetCatalog.get(dataset_name)
    ann_ids, start = [], 0
    for d in dicts:
        n = len(d.get("annotations", []))
        ann_ids.append([a["id"] for a in coco["annotations"][start : start + n]])
        start += n
    job = ShardedJob(
        range(len(dicts)),
        _job_key(dataset_name, weights, cfg, merge, drop_threshold),
        output_json + ".work",
        shard_size,
    )
    model.eval()
    mapper = BoxCasegTestMapper(cfg, False)

    def compute(mine: List[int]) -> None:
        todo = job.pending(mine)
        logger.info(
            f"Proxy masks of {dataset_name}: {len(dicts)} images, {len(job.shards)} shards; this "
            f"process: {len(mine)} shards, {len(mine) - len(todo)} already done"
        )
        bar = tqdm(
            total=sum(len(ann_ids[i]) for k in todo for i in job.shards[k]),
            unit="inst",
            desc=f"proxy masks [{comm.get_rank()}]",
            disable=not progress,
        )
        # one loader (its workers started once) over the images of every pending shard, in order;
        # each shard is written as soon as its last image is done
        images = [i for k in todo for i in job.shards[k]]
        if not images:  # nothing left here (e.g. fewer shards than processes): no loader
            bar.close()
            return
        loader = build_detection_test_loader(
            [dicts[i] for i in images],
            mapper=mapper,
            sampler=torch.utils.data.SequentialSampler(images),
            batch_size=images_per_batch,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )
        shards, position, results = iter(todo), iter(images), []
        k = next(shards, None)
        for inputs in loader:
            for x, out in zip(inputs, model(inputs)):
                i = next(position)
                results += _image_results(
                    dicts[i], ann_ids[i], x, out["instances"], merge, drop_threshold
                )
                bar.update(len(ann_ids[i]))
                if i == job.shards[k][-1]:
                    job.write_shard(k, results)
                    k, results = next(shards, None), []
        bar.close()

    run_sharded_job(job, compute, coco, PROXY_METHOD, output_json, dataset=dataset_name)
    return output_json if comm.is_main_process() else None


def _image_results(
    record: Dict, ann_ids: List[int], inputs: Dict, instances, merge: bool, drop_threshold: float
) -> List[Dict[str, Any]]:
    """Json-ready results (pseudo-mask tool format) of one image's annotations, in order."""
    h, w = record["height"], record["width"]
    masks = instances.pred_masks.cpu().numpy().astype(bool).reshape(-1, h, w)
    boxes = inputs["instances"].gt_boxes.tensor.numpy().astype(np.float64)
    masks, agreements, valid = merge_and_drop(masks, boxes, merge, drop_threshold)
    by_index = {int(j): n for n, j in enumerate(instances.gt_index.tolist())}
    empty = None
    results = []
    for j, ann_id in enumerate(ann_ids):
        if j in by_index:
            n = by_index[j]
            mask = masks[n]
            entry = (encode_mask(mask), int(mask.sum()), float(agreements[n]), bool(valid[n]), None)
        else:  # crowd: not segmented, never trains a mask
            empty = empty or encode_mask(np.zeros((h, w), dtype=bool))
            entry = (empty, 0, 0.0, False, "crowd")
        results.append(
            dict(
                zip(
                    ("id", "segmentation", "area", "box_agreement", "mask_valid", "fallback"),
                    (ann_id, *entry),
                )
            )
        )
    return results


def proxy_mask_quality(
    proxy_json: str, gt_dataset: str, class_names: Optional[Sequence[str]] = None
) -> Dict[str, float]:
    """Quality of a proxy-mask json against the GT masks of ``gt_dataset`` (same images, matched
    by image id and annotation order): mIoU*, IoU@50, IoU@75 of all proxy masks, of the kept ones
    (``mask_valid``), and the drop rate, in percent (BoxCaseg Sec. 4, Tab. 8)."""
    with open(proxy_json) as f:
        proxy = json.load(f)
    by_image: Dict[Any, List[Dict]] = {}
    for a in proxy["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    ious, classes, valid = [], [], []  # IoUs of compressed RLEs: no mask decoded at full size
    for d in DatasetCatalog.get(gt_dataset):
        anns = by_image.get(d["image_id"], [])
        if len(anns) != len(d.get("annotations", [])):
            raise ValueError(
                f"{proxy_json}: image {d['image_id']} has {len(anns)} annotations, "
                f"{gt_dataset} has {len(d.get('annotations', []))}"
            )
        h, w = d["height"], d["width"]
        pairs = [(p, g) for p, g in zip(anns, d.get("annotations", [])) if not g.get("iscrowd", 0)]
        for p, _ in pairs:
            if list(p["segmentation"].get("size", [])) != [h, w]:
                raise ValueError(
                    f"{proxy_json}: annotation id {p.get('id')!r}: mask size "
                    f"{p['segmentation'].get('size')} != image {d['image_id']}'s {[h, w]}"
                )
        if pairs:
            iou = mask_util.iou(
                [p["segmentation"] for p, _ in pairs],
                [segmentation_to_rle(g["segmentation"], h, w) for _, g in pairs],
                [0] * len(pairs),
            )
            ious.append(np.diag(np.asarray(iou).reshape(len(pairs), len(pairs))))
        classes += [g["category_id"] for _, g in pairs]
        valid += [bool(p["mask_valid"]) for p, _ in pairs]
    if class_names is None:
        class_names = MetadataCatalog.get(gt_dataset).get("thing_classes")
    ious, classes, valid = np.concatenate(ious + [np.zeros(0)]), np.array(classes), np.array(valid)
    report = summarize_mask_quality(ious, classes, class_names)
    report = {k: v for k, v in report.items() if not k.startswith("mIoU-")}
    if valid.any():
        kept = summarize_mask_quality(ious[valid], classes[valid], class_names)
        report.update({f"kept {k}": v for k, v in kept.items() if not k.startswith("mIoU-")})
    report["drop rate"] = float((~valid).mean() * 100)
    report["instances"] = float(len(valid))
    logger.info(
        f"Proxy-mask quality of {proxy_json} vs {gt_dataset}:\n" + create_small_table(report)
    )
    return report
