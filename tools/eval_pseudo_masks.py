#!/usr/bin/env python
"""Quality of a pseudo-mask json against the ground truth it was made from.

    python tools/eval_pseudo_masks.py --gt instances_train.json --pred train_grabcut.json

Annotations are matched by id (the two files must hold the same ids, images and image sizes, and
each matched pair the same image and box, else the ids that disagree are named; crowd annotations
of the GT are skipped). Prints, overall and by COCO size (small < 32^2 <= medium
< 96^2 <= large, by the GT mask's pixel area):

* mIoU (mean over instances), mIoU*, IoU@50, IoU@75 (BoxCaseg Sec. 4,
  :func:`summarize_mask_quality`), in percent;
* Hybrid Sec. 1's validity statistics: a mask is invalid when the IoU of its tight box with the GT
  box (clipped to the image) is below 0.5; the share invalid overall, among boxes under / over
  64x64 px (box area < 4096 px / >= 4096 px) and the share of the invalid ones that are small;
  plus the share the pseudo-mask file itself flags unusable (``mask_valid`` False).
"""

import argparse
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from tabulate import tabulate

from weaksup.evaluation.box_mask_quality import (
    COCO_SIZE_RANGES,
    paired_mask_iou,
    summarize_mask_quality,
)
from weaksup.evaluation.ground_truth import segmentation_to_bitmask
from weaksup.pseudo.geometry import box_agreement
from weaksup.pseudo.validity import validity_statistics
from weaksup.utils.coco_json import load_coco_file

QUALITY_KEYS = ("mIoU*", "IoU@50", "IoU@75")


def load_coco(path: str, require_categories: bool = True) -> Dict[str, Any]:
    """The COCO json ``path``, checked by :func:`load_coco_file` (ids, images, boxes, classes)."""
    return load_coco_file(path, require_categories)


def _mask(ann: Dict[str, Any], h: int, w: int, path: str) -> np.ndarray:
    try:
        return segmentation_to_bitmask(ann["segmentation"], h, w)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: annotation id {ann.get('id')!r}: no usable mask ({e})") from e


def _disagreeing_pairs(
    gt_anns: Dict[Any, Dict[str, Any]], pred_anns: Dict[Any, Dict[str, Any]]
) -> List[str]:
    """The annotation ids whose GT and pred annotations differ in image or box (a file whose ids
    were renumbered or shuffled would otherwise be scored against the wrong instances)."""
    problems = []
    for ann_id, g in gt_anns.items():
        p = pred_anns[ann_id]
        if p.get("image_id") != g.get("image_id"):
            problems.append(f"{ann_id!r} (image {p.get('image_id')!r} vs {g.get('image_id')!r})")
        elif not np.allclose(p.get("bbox", []), g.get("bbox", []), atol=1e-3, equal_nan=True):
            problems.append(f"{ann_id!r} (box {p.get('bbox')} vs {g.get('bbox')})")
    return problems


def _size(size) -> str:
    return "missing" if size is None else f"{size[1]}x{size[0]}"


def paired_instances(
    gt: Dict[str, Any], pred: Dict[str, Any], gt_path: str = "GT", pred_path: str = "pred"
) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Instance IoUs of the non-crowd GT annotations with the pred annotations of the same id,
    and per instance: ``classes`` (contiguous), ``area`` (GT mask), ``box_area`` (GT box),
    ``valid`` (Hybrid validity), ``flagged`` (the pred file's ``mask_valid`` is False)."""
    gt_anns = {a["id"]: a for a in gt["annotations"]}
    pred_anns = {a["id"]: a for a in pred["annotations"]}
    if gt_anns.keys() != pred_anns.keys():
        missing = sorted(gt_anns.keys() - pred_anns.keys(), key=str)
        extra = sorted(pred_anns.keys() - gt_anns.keys(), key=str)
        raise ValueError(
            f"{pred_path} and {gt_path} hold different annotation ids: {len(missing)} missing "
            f"from {pred_path} {missing[:10]}, {len(extra)} not in {gt_path} {extra[:10]}"
        )
    disagreeing = _disagreeing_pairs(gt_anns, pred_anns)
    if disagreeing:
        raise ValueError(
            f"{pred_path} and {gt_path} disagree on the image or box of {len(disagreeing)} "
            f"annotation id(s) (pred vs GT): {'; '.join(disagreeing[:10])}"
            + ("; ..." if len(disagreeing) > 10 else "")
            + ": the pseudo masks were not made from this GT file"
        )
    sizes = {i["id"]: (i["height"], i["width"]) for i in gt["images"]}
    pred_sizes = {i["id"]: (i["height"], i["width"]) for i in pred["images"]}
    if sizes != pred_sizes:
        names = {i["id"]: i.get("file_name") for i in gt["images"] + pred["images"]}
        differ = [
            f"image id {i} ({names[i]!r}): {_size(pred_sizes.get(i))} vs {_size(sizes.get(i))}"
            for i in sorted(set(sizes) | set(pred_sizes), key=str)
            if sizes.get(i) != pred_sizes.get(i)
        ]
        raise ValueError(
            f"{pred_path} and {gt_path} hold different images or image sizes (pred vs GT): "
            + "; ".join(differ[:10])
            + ("; ..." if len(differ) > 10 else "")
        )
    category_index = {
        c["id"]: k for k, c in enumerate(sorted(gt["categories"], key=lambda c: c["id"]))
    }
    preds, gts, fields = (
        [],
        [],
        {k: [] for k in ("classes", "area", "box_area", "valid", "flagged")},
    )
    for ann_id, g in gt_anns.items():
        if g.get("iscrowd", 0):
            continue
        p = pred_anns[ann_id]
        h, w = sizes[g["image_id"]]
        gts.append(_mask(g, h, w, gt_path))
        preds.append(_mask(p, h, w, pred_path))
        if not np.isfinite(g["bbox"]).all():  # box sizes and validity would be NaN
            raise ValueError(f"{gt_path}: annotation id {ann_id!r}: box {g['bbox']} is not finite")
        x, y, bw, bh = g["bbox"]
        box = np.clip([x, y, x + bw, y + bh], 0, [w, h, w, h])
        fields["classes"].append(category_index[g["category_id"]])
        fields["area"].append(gts[-1].sum())
        fields["box_area"].append((box[2] - box[0]) * (box[3] - box[1]))
        fields["valid"].append(box_agreement(preds[-1], box) >= 0.5)
        fields["flagged"].append(not p.get("mask_valid", True))
    if not gts:
        raise ValueError(f"{gt_path}: no (non-crowd) annotation to evaluate")
    return paired_mask_iou(preds, gts), {k: np.array(v) for k, v in fields.items()}


def pseudo_mask_report(
    ious: np.ndarray, fields: Dict[str, np.ndarray]
) -> Tuple[List[List[Any]], "OrderedDict[str, float]"]:
    """The quality rows (all / small / medium / large: n, mIoU, mIoU*, IoU@50, IoU@75) and the
    validity statistics (percent) of :func:`paired_instances`' output."""
    rows = []
    for name, (lo, hi) in [("all", (0, float("inf")))] + list(COCO_SIZE_RANGES.items()):
        sel = (fields["area"] >= lo) & (fields["area"] < hi)
        if not sel.any():
            rows.append([name, 0] + [float("nan")] * 4)
            continue
        q = summarize_mask_quality(ious[sel], fields["classes"][sel])
        rows.append([name, int(sel.sum()), ious[sel].mean() * 100] + [q[k] for k in QUALITY_KEYS])
    return rows, validity_statistics(fields["valid"], fields["box_area"], fields["flagged"])


def main(argv: Optional[List[str]] = None) -> Tuple[List[List[Any]], "OrderedDict[str, float]"]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gt", required=True, help="COCO json with the ground-truth masks")
    parser.add_argument("--pred", required=True, help="pseudo-mask json (make_pseudo_masks.py)")
    args = parser.parse_args(argv)
    ious, fields = paired_instances(
        load_coco(args.gt), load_coco(args.pred, False), args.gt, args.pred
    )
    rows, stats = pseudo_mask_report(ious, fields)
    print(f"{args.pred} vs {args.gt}")
    headers = ["size", "n", "mIoU", *QUALITY_KEYS]
    print(tabulate(rows, headers=headers, floatfmt=".1f", tablefmt="pipe"))
    print(tabulate(list(stats.items()), headers=["validity (Hybrid Sec. 1)", "%"], floatfmt=".1f"))
    return rows, stats


def cli() -> int:
    """The console script: exit status 0 once the job is done (errors raise)."""
    main()
    return 0


if __name__ == "__main__":
    cli()
