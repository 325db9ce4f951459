"""Wall time and peak memory of the data paths at dataset scale (issue 29).

A synthetic COCO train2017-size dataset (118,287 images, 860,001 boxes, each with an RLE mask;
no image files: every row reads annotations only) and VOC-size Wei features (10,582 images,
10^6 candidate features of 4,096 dims, float16 score files) are written under ``--workdir``,
``--scale`` times those sizes, then each row runs in a fresh process:

* ``load dataset``: weaksup's ``load_coco_json`` of the box-only training json;
* ``pseudo json index``: ``PseudoJsonMaskSource`` of the pseudo-mask json (first use: reads the
  json and writes its on-disk index; the row is what every rank does before training);
* ``mask source, 4 workers``: the box-only records in Detectron2's serialized
  ``DatasetFromList``, a ``DataLoader`` with 4 workers whose mapper takes each annotation's mask
  from the mask source and decodes it (images are not read): one rank's data path; the largest
  worker's peak is its own column;
* ``proxy quality``: ``proxy_mask_quality`` of the pseudo json against the GT dataset;
* ``sharded assembly``: the main process's end of ``run_sharded_job``: every shard read, the
  output json built and written;
* ``Wei PCA``: ``weaksup.methods.wei.stage2.refine`` (PCA 98 % + Eq. 1) over the score files.

Peak memory is each process's peak resident set (``VmHWM``), with the part that importing torch
and Detectron2 took before the row began. Targets (issue 29): rows linear in
size, no process above 8 GB for one rank's data path with 4 workers, Wei PCA at 10^6 x 4,096
under 4 GB. Run small scales first::

    python benchmarks/scale.py --scale 0.125 --workdir /tmp/scale
    python benchmarks/scale.py --scale 0.125 --workdir /tmp/scale --rows "Wei PCA" --wei-scale 0.25
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np

COCO_IMAGES, COCO_BOXES = 118287, 860001
VOC_IMAGES, WEI_CANDIDATES, WEI_DIMS = 10582, 1_000_000, 4096
ROWS = (
    "load dataset",
    "pseudo json index",
    "mask source, 4 workers",
    "proxy quality",
    "sharded assembly",
    "Wei PCA",
)
SHARD_SIZE = 32  # images per shard, as the in-training pseudo-mask stage


def _peak_mb(pid: Any = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _children(pid: int) -> List[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


# ------------------------------------------------------------------------------------------------
# synthetic data


def make_coco(workdir: str, scale: float, seed: int = 0) -> None:
    """GT json, pseudo-mask json and the shard files of a finished sharded job."""
    import pycocotools.mask as mask_util

    from weaksup.utils.file_io import write_json_atomic

    rng = np.random.RandomState(seed)
    n_img, n_ann = max(1, round(COCO_IMAGES * scale)), max(1, round(COCO_BOXES * scale))
    per_image = np.bincount(rng.randint(0, n_img, n_ann), minlength=n_img)
    images, gt, pseudo = [], [], []
    shards = [[] for _ in range(0, n_img, SHARD_SIZE)]
    ann_id = 0
    for i in range(n_img):
        h, w = int(rng.choice([480, 427, 640])), int(rng.choice([640, 480, 500]))
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": h, "width": w})
        for _ in range(per_image[i]):
            ann_id += 1
            bw, bh = rng.uniform(8, w / 2), rng.uniform(8, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            # an octagon in the box: a mask of COCO-like RLE length
            c = [(x + bw * u, y + bh * v) for u, v in [(0.3, 0), (0.7, 0), (1, 0.3), (1, 0.7)]]
            c += [(x + bw * u, y + bh * v) for u, v in [(0.7, 1), (0.3, 1), (0, 0.7), (0, 0.3)]]
            rle = mask_util.frPyObjects([[float(v) for p in c for v in p]], h, w)[0]
            segm = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
            area = int(mask_util.area(rle))
            base = {"id": ann_id, "image_id": i, "category_id": int(rng.randint(1, 81))}
            base.update(bbox=[x, y, bw, bh], iscrowd=0)
            gt.append({**base, "segmentation": segm, "area": area})
            result = {"id": ann_id, "segmentation": segm, "area": area, "box_agreement": 0.9}
            result.update(mask_valid=bool(ann_id % 5), fallback=None)
            pseudo.append({**gt[-1], **result, "pseudo_method": "synthetic"})
            shards[i // SHARD_SIZE].append(result)
    categories = [{"id": k, "name": f"class{k}"} for k in range(1, 81)]
    write_json_atomic(
        {"images": images, "annotations": gt, "categories": categories},
        os.path.join(workdir, "instances_train.json"),
    )
    write_json_atomic(
        {"images": images, "annotations": pseudo, "categories": categories},
        os.path.join(workdir, "pseudo.json"),
    )
    job = _sharded_job(images, workdir)
    for k, results in enumerate(shards):
        job.write_shard(k, results)


def _sharded_job(images: List[Dict[str, Any]], workdir: str):
    """The pseudo-mask job of ``images``, each image its own item key (a real job's keys: the
    record and the file's identity), so every shard carries its own fingerprint."""
    from weaksup.pseudo.job import ShardedJob

    return ShardedJob(images, {"scale": 1}, os.path.join(workdir, "work"), SHARD_SIZE, images)


def make_wei(workdir: str, scale: float, seed: int = 0) -> None:
    """VOC-size score files: ``scale`` x 10,582 images with 95 candidates of one label each
    (10^6 candidates at scale 1), features of rank 64 plus noise, ReLU'd, float16."""
    import io

    from weaksup.utils.file_io import write_atomic

    rng = np.random.RandomState(seed)
    n_img = max(2, round(VOC_IMAGES * scale))
    per_image = round(WEI_CANDIDATES / VOC_IMAGES)
    basis = rng.normal(size=(64, WEI_DIMS)).astype(np.float32)  # features of low rank + noise
    labels = []
    for i in range(n_img):
        k = int(rng.randint(0, 20))
        scores = rng.uniform(0, 0.4, size=(per_image, 20)).astype(np.float32)
        scores[:, k] = rng.uniform(0.6, 1.0, per_image)
        code = rng.normal(size=(per_image, 64)).astype(np.float32)
        feats = code @ basis + 0.1 * rng.normal(size=(per_image, WEI_DIMS)).astype(np.float32)
        buf = io.BytesIO()
        np.savez(
            buf,
            scores=scores,
            feature_index=np.arange(per_image),
            features=np.maximum(feats, 0).astype(np.float16),
        )
        write_atomic(buf.getvalue(), os.path.join(workdir, "wei_scores", f"im_{i}.npz"))
        labels.append(k)
    with open(os.path.join(workdir, "wei_records.json"), "w") as f:
        json.dump({"labels": labels, "candidates": per_image * n_img}, f)


# ------------------------------------------------------------------------------------------------
# rows (each in its own process)


class _MaskMapper:
    """The mask part of the box-supervised mapper: each annotation's mask from the source,
    decoded at image resolution."""

    def __init__(self, source):
        self.source = source

    def __call__(self, record: Dict[str, Any]) -> int:
        import pycocotools.mask as mask_util

        pixels = 0
        for a in record["annotations"]:
            pixels += int(mask_util.decode(self.source(a)["segmentation"]).sum())
        return pixels


def run_row(row: str, workdir: str) -> Dict[str, Any]:
    from weaksup.data.datasets.coco import load_coco_json

    gt_json, pseudo_json = (
        os.path.join(workdir, n) for n in ("instances_train.json", "pseudo.json")
    )
    out: Dict[str, Any] = {"imports_mb": _peak_mb()}  # torch + Detectron2, before the row
    start = time.perf_counter()
    if row == "load dataset":
        out["size"] = f"{len(load_coco_json(gt_json, workdir, box_only=True))} images"
    elif row == "pseudo json index":
        from weaksup.data.mask_sources import PseudoJsonMaskSource

        os.environ["WEAKSUP_CACHE"] = tempfile.mkdtemp(dir=workdir, prefix="cache_")
        out["size"] = f"{len(PseudoJsonMaskSource(pseudo_json)._by_id)} annotations"
    elif row == "mask source, 4 workers":
        import torch
        from detectron2.data.common import DatasetFromList, MapDataset

        from weaksup.data.mask_sources import PseudoJsonMaskSource

        os.environ["WEAKSUP_CACHE"] = os.path.join(workdir, "cache_loader")
        records = load_coco_json(gt_json, workdir, box_only=True)
        source = PseudoJsonMaskSource(pseudo_json)
        dataset = MapDataset(DatasetFromList(records, copy=False), _MaskMapper(source))
        del records
        gc.collect()
        n = min(len(dataset), 4000)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(dataset, range(0, len(dataset), max(1, len(dataset) // n))),
            batch_size=4,
            num_workers=4,
            collate_fn=lambda b: b,
        )
        seen, workers_peak = 0, 0.0
        for batch in loader:  # the workers' peaks read while they live (they end with the loop)
            seen += len(batch)
            workers_peak = max([workers_peak] + [_peak_mb(p) for p in _children(os.getpid())])
        out["workers_peak_mb"] = workers_peak
        out["size"] = f"{len(dataset)} images ({seen} mapped)"
    elif row == "proxy quality":
        from detectron2.data import DatasetCatalog, MetadataCatalog

        from weaksup.methods.boxcaseg.proxy_masks import proxy_mask_quality

        DatasetCatalog.register("scale_gt", lambda: load_coco_json(gt_json, workdir, "scale_gt"))
        MetadataCatalog.get("scale_gt").set(json_file=gt_json)
        report = proxy_mask_quality(pseudo_json, "scale_gt")
        out["size"] = f"{int(report['instances'])} masks"
    elif row == "sharded assembly":
        with open(gt_json) as f:  # in a job: the dataset's COCO dict, already in memory
            coco = json.load(f)
        job = _sharded_job(coco["images"], workdir)
        job.write_output(coco, job.collect(), "synthetic", os.path.join(workdir, "assembled.json"))
        out["size"] = f"{len(coco['annotations'])} annotations, {len(job.shards)} shards"
    elif row == "Wei PCA":
        from weaksup.methods.wei.stage2 import refine

        with open(os.path.join(workdir, "wei_records.json")) as f:
            meta = json.load(f)
        records = [
            {"image_id": f"im:{i}", "image_labels": [k]} for i, k in enumerate(meta["labels"])
        ]
        result = refine(
            records, os.path.join(workdir, "wei_scores"), 0.5, 2, 0.98, 0.5, "ascending"
        )
        pca = result["pca"]
        out["size"] = f"{meta['candidates']} x {pca['dims_in']} -> {pca['dims_out']}"
    else:
        raise ValueError(f"unknown row {row!r}; rows: {ROWS}")
    out["wall_s"] = time.perf_counter() - start
    out["peak_mb"] = _peak_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the COCO size")
    parser.add_argument("--wei-scale", type=float, help="fraction of 10^6 Wei candidates (--scale)")
    parser.add_argument("--workdir", required=True, help="synthetic data and outputs (GBs at 1.0)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in the child process
    args = parser.parse_args()
    if args.row:
        print("ROW " + json.dumps(run_row(args.row, args.workdir)))
        return
    wei_scale = args.wei_scale if args.wei_scale is not None else args.scale
    os.makedirs(args.workdir, exist_ok=True)
    t = time.perf_counter()
    if any(r != "Wei PCA" for r in args.rows):
        make_coco(args.workdir, args.scale)
    if "Wei PCA" in args.rows:
        make_wei(args.workdir, wei_scale)
    print(f"synthetic data made in {time.perf_counter() - t:.0f} s", flush=True)
    table = []
    for row in args.rows:
        child = subprocess.run(
            [sys.executable, __file__, "--row", row, "--workdir", args.workdir],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        res = json.loads([l for l in child.stdout.splitlines() if l.startswith("ROW ")][-1][4:])
        table.append(
            [
                row,
                wei_scale if row == "Wei PCA" else args.scale,
                res["size"],
                f"{res['wall_s']:.1f}",
                f"{res['peak_mb']:.0f}",
                f"{res['imports_mb']:.0f}",
                f"{res['workers_peak_mb']:.0f}" if "workers_peak_mb" in res else "",
            ]
        )
        print(table[-1], flush=True)
    from tabulate import tabulate

    header = ["row", "scale", "size", "wall s", "peak MB", "of it imports", "worker peak MB"]
    print(tabulate(table, header, tablefmt="pipe"))


if __name__ == "__main__":
    main()
