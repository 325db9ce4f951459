"""BoxSup's training loop (Dai et al. 2015, Sec. 4.3): network and segment labels, in turn.

The hook ``BoxSupLabelUpdate`` (``cfg.WEAKSUP.HOOKS``) owns the training labels:

* before training, the first labelling (``epoch_000``) by ``E_o`` alone ("our algorithm starts
  from the step of updating segment labels", before any network training);
* after every epoch but the last, a new labelling by ``E_o + lambda E_r`` with the current network
  (:func:`weaksup.methods.boxsup.labelling.select_segments`), which the next epoch trains on;
* the training data loader is rebuilt on the new label maps (the records' ``sem_seg_file_name``
  point at them; Detectron2's ``DatasetMapper`` reads them), with a sampler seeded by the epoch, so
  each epoch is one fresh permutation and no batch prepared before the update carries old labels.

Label maps are PNG files ``OUTPUT_DIR/boxsup/labels/epoch_<e>/<index>_<stem>.png`` (0 background,
class ``c`` as ``c + 1``), each written atomically; ``DONE.json`` marks a complete labelling, and
each labelling is a :class:`~weaksup.engine.stages.Stage` (``stage.json``: the label settings and
the training config that made it), reused only when they match. The
hook's state in the checkpoint is the current labelling's epoch, and a checkpoint is saved right
after each update (``WEAKSUP.BOXSUP.CHECKPOINT_AFTER_UPDATE``; ``model_after_label_update.pth``,
replaced each time, so 45 epochs do not leave 45 checkpoints), so a job killed after an update
resumes on that labelling, never recomputing or mixing labellings.

Work is split across DDP ranks (image ``i`` on rank ``i % world``) and, per rank, across data-loader
workers, which read images, load or make candidate segments (cached once,
:mod:`weaksup.pseudo.candidate_cache`) and compute every label that needs no network; the network
runs in the rank's process. Sampling is seeded by (seed, epoch, image), so labellings do not
depend on the number of workers or ranks.

Semi-supervised (Sec. 4.3, Tab. 1 'semi'): an image whose record has ground-truth masks (a
``sem_seg_file_name`` or a ``segmentation`` on every annotation) trains on them, every epoch; they
are never replaced. Baselines (Tab. 2): ``LABEL_SOURCE`` ``box`` / ``grabcut`` make the labels once
with the pseudo-mask engine and never update them; ``TOP_K 1`` is 'w/o sampling'.
"""

import hashlib
import json
import logging
import math
import os
import re
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog, build_detection_train_loader
from detectron2.data import detection_utils as utils
from detectron2.data import get_detection_dataset_dicts
from detectron2.data import transforms as T
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import HookBase
from detectron2.structures import BoxMode
from detectron2.utils import comm
from tabulate import tabulate
from torch.nn.parallel import DistributedDataParallel

from weaksup.data.build import build_mapper
from weaksup.data.datasets.mask_subset import instance_label_map
from weaksup.engine.launch import wait_for_all
from weaksup.pseudo import PseudoMaskConfig, pseudo_masks_for_image
from weaksup.pseudo.candidate_cache import load_or_make_candidates
from weaksup.pseudo.job import instance_seed
from weaksup.utils.file_io import write_atomic, write_json_atomic
from weaksup.pseudo.visualize import draw_pseudo_masks
from weaksup.engine.hook_registry import HOOK_REGISTRY
from weaksup.engine.stages import Stage, run_stage
from weaksup.paths import cache_dir

from .labelling import (
    label_confusion,
    miou_from_confusion,
    paint_label_map,
    resize_log_probs,
    select_segments,
)

__all__ = [
    "BoxSupLabelUpdate",
    "LabelSpec",
    "box_only",
    "has_gt_masks",
    "gt_label_map",
    "make_labelling",
]

logger = logging.getLogger(__name__)

IGNORE_LABEL = 255


@dataclass(frozen=True)
class LabelSpec:
    """How labels are made (the ``WEAKSUP.BOXSUP`` keys; :func:`LabelSpec.from_config`)."""

    source: str = "candidates"
    top_k: int = 5
    regression_weight: float = 3.0
    regression_cost: str = "labelling"
    clip_to_box: bool = True
    num_candidates: int = 1000
    candidate_max_side: int = 256
    mcg_dir: str = ""
    candidate_cache: str = ""
    seed: int = 0
    input_format: str = "BGR"
    test_min_size: int = 0
    test_max_size: int = 0

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "LabelSpec":
        b = cfg.WEAKSUP.BOXSUP
        cache = b.CANDIDATE_CACHE or os.path.join(
            cache_dir(), "boxsup_candidates", f"n{b.NUM_CANDIDATES}_s{b.CANDIDATE_MAX_SIDE}"
        )
        return cls(
            source=b.LABEL_SOURCE,
            top_k=b.TOP_K,
            regression_weight=b.REGRESSION_WEIGHT,
            regression_cost=b.REGRESSION_COST,
            clip_to_box=b.CLIP_TO_BOX,
            num_candidates=b.NUM_CANDIDATES,
            candidate_max_side=b.CANDIDATE_MAX_SIDE,
            mcg_dir=b.MCG_DIR,
            candidate_cache=cache,
            seed=b.SEED,
            input_format=cfg.INPUT.FORMAT,
            test_min_size=cfg.INPUT.MIN_SIZE_TEST,
            test_max_size=cfg.INPUT.MAX_SIZE_TEST,
        )


def has_gt_masks(record: Dict[str, Any]) -> bool:
    """Whether an image trains on its ground-truth masks (semi-supervised mode): it has a label
    map, or annotations that all carry a ``segmentation`` that is not a pseudo mask."""
    if record.get("sem_seg_file_name"):
        return True
    annos = [a for a in record.get("annotations", []) if not a.get("iscrowd", 0)]
    return bool(annos) and all("segmentation" in a and "pseudo_method" not in a for a in annos)


def box_only(record: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``record`` without its label map and masks (``WEAKSUP.BOXSUP.IGNORE_GT_MASKS``)."""
    annos = [{k: v for k, v in a.items() if k != "segmentation"} for a in record["annotations"]]
    return {**{k: v for k, v in record.items() if k != "sem_seg_file_name"}, "annotations": annos}


def gt_label_map(record: Dict[str, Any]) -> np.ndarray:
    """The ground-truth label map (uint8) of a record with GT masks (:func:`has_gt_masks`)."""
    if record.get("sem_seg_file_name"):
        label = cv2.imread(record["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
        if label is None or label.ndim != 2:
            raise ValueError(f"{record['sem_seg_file_name']}: not a single-channel label map")
        return label
    return instance_label_map(record, IGNORE_LABEL)


def _label_name(index: int, record: Dict[str, Any]) -> str:
    stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
    return f"{index:06d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)}.png"


def _boxes(record: Dict[str, Any]):
    """Non-crowd boxes (``XYXY_ABS``, clipped to the image, non-empty) and their classes."""
    h, w = record["height"], record["width"]
    boxes, classes = [], []
    for a in record.get("annotations", []):
        if a.get("iscrowd", 0):
            continue
        b = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
        b = [min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h)]
        if b[2] > b[0] and b[3] > b[1]:
            boxes.append(b)
            classes.append(int(a["category_id"]))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), classes


def _candidate_path(spec: LabelSpec, file_name: str) -> str:
    folder = hashlib.sha1(os.path.dirname(os.path.abspath(file_name)).encode()).hexdigest()[:10]
    stem = os.path.splitext(os.path.basename(file_name))[0]
    return os.path.join(spec.candidate_cache, f"{folder}_{stem}.npz")


class _LabellingWork(torch.utils.data.Dataset):
    """The per-image part of one labelling that runs in data-loader workers (module docstring)."""

    def __init__(
        self,
        items: Sequence[Dict[str, Any]],
        spec: LabelSpec,
        epoch: int,
        use_network: bool,
    ):
        self.items, self.spec, self.epoch, self.use_network = items, spec, epoch, use_network

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        item = dict(self.items[i])
        record = item["record"]
        image = utils.read_image(record["file_name"], format=self.spec.input_format)
        utils.check_image_size(record, image)
        bgr = np.ascontiguousarray(image[:, :, ::-1] if self.spec.input_format == "RGB" else image)
        item["bgr"] = bgr if item["vis"] else None
        boxes, classes = _boxes(record)
        item.update(boxes=boxes, classes=classes, label=None, masks=None, choices=None)
        if item["gt_record"] is not None:
            item["gt"] = gt_label_map(item["gt_record"])
        if self.spec.source != "candidates":  # a fixed engine method (Tab. 2 baselines)
            seeds = [
                instance_seed(f"{record['image_id']}:{k}", self.spec.seed)
                for k in range(len(boxes))
            ]
            pms = pseudo_masks_for_image(bgr, boxes, self.spec.source, seeds, PseudoMaskConfig())
            masks = [pm.mask for pm in pms]
            item["label"], item["masks"] = paint_label_map(masks, classes, bgr.shape[:2])
            return item
        item["candidates"] = load_or_make_candidates(
            lambda: bgr,
            record["file_name"],
            record["height"],
            record["width"],
            _candidate_path(self.spec, record["file_name"]),
            self.spec.mcg_dir or None,
            self.spec.num_candidates,
            self.spec.candidate_max_side,
        )
        if self.use_network:
            aug = T.ResizeShortestEdge(self.spec.test_min_size, self.spec.test_max_size)
            resized = aug.get_transform(image).apply_image(image)
            item["image"] = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        else:
            _select(item, self.spec, self.epoch, None)
        return item


def _select(item: Dict[str, Any], spec: LabelSpec, epoch: int, log_probs: Optional[np.ndarray]):
    """Choose one candidate per box and paint the label map (in place on ``item``)."""
    record, cands = item["record"], item["candidates"]
    key = zlib.crc32(f"{record['image_id']}:{record['file_name']}".encode())
    rng = np.random.default_rng([spec.seed, epoch, key])
    if log_probs is not None:
        log_probs = resize_log_probs(log_probs, cands.superpixels.shape)
    sel = select_segments(
        cands,
        item["boxes"],
        item["classes"],
        rng,
        spec.top_k,
        log_probs,
        spec.regression_weight,
        spec.clip_to_box,
        spec.regression_cost,
    )
    item["label"], item["masks"] = paint_label_map(
        [s.mask for s in sel], item["classes"], (record["height"], record["width"])
    )
    item["choices"] = [s.index for s in sel]
    item["candidates"] = None


def _first(batch):
    return batch[0]


def make_labelling(
    records: Sequence[Dict[str, Any]],
    spec: LabelSpec,
    epoch: int,
    label_dir: str,
    model: Optional[torch.nn.Module] = None,
    gt_records: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
    num_workers: int = 0,
    vis_dir: Optional[str] = None,
    vis_indices: Sequence[int] = (),
    num_classes: int = 2,
) -> Dict[str, Any]:
    """Write one labelling of the box-only images among ``records`` (this rank's share) to
    ``label_dir`` and return its statistics, summed over ranks (every rank gets them).

    Args:
        records: all training records (rank ``r`` labels indices ``r, r + world, ...``).
        spec: how labels are made; epoch: the labelling's index (seeds the sampling).
        model: the network (a :class:`BoxSupSegmentor`) for ``E_r``; None uses ``E_o`` alone.
        gt_records: per record, a record with its ground-truth masks, for the labels' mIoU.
        num_workers: data-loader workers of this rank.
        vis_dir, vis_indices: draw these records' labels into ``vis_dir``.
        num_classes: classes of the label maps including background (for the confusion matrix).

    Returns:
        ``{"images", "boxes", "fallbacks", "choices" (name -> candidate per box), "confusion"}``.
    """
    rank, world = comm.get_rank(), comm.get_world_size()
    items = [
        {
            "index": i,
            "name": _label_name(i, r),
            "record": r,
            "gt_record": gt_records[i] if gt_records is not None else None,
            "vis": i in set(vis_indices) and vis_dir is not None,
        }
        for i, r in enumerate(records)
        if i % world == rank and not has_gt_masks(r)
    ]
    use_network = model is not None and spec.source == "candidates"
    loader = torch.utils.data.DataLoader(
        _LabellingWork(items, spec, epoch, use_network),
        batch_size=1,
        num_workers=num_workers,
        collate_fn=_first,
    )
    os.makedirs(label_dir, exist_ok=True)
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    choices: Dict[str, List[int]] = {}
    num_boxes = fallbacks = 0
    start = last_log = time.perf_counter()
    for n, item in enumerate(loader, 1):
        if use_network:
            log_probs = model.pixel_log_probs(item["image"]).float().cpu().numpy()
            _select(item, spec, epoch, log_probs)
        ok, png = cv2.imencode(".png", item["label"])
        if not ok:
            raise RuntimeError(f"cannot encode the label map of {item['record']['file_name']}")
        write_atomic(png.tobytes(), os.path.join(label_dir, item["name"]))
        num_boxes += len(item["boxes"])
        if item["choices"] is not None:
            choices[item["name"]] = item["choices"]
            fallbacks += sum(c < 0 for c in item["choices"])
        gt = item.get("gt")
        if gt is not None:
            conf += label_confusion(item["label"], gt, num_classes, IGNORE_LABEL)
        if item["vis"]:
            gt_fg = [(gt > 0) & (gt != IGNORE_LABEL)] if gt is not None else None
            drawn = draw_pseudo_masks(
                item["bgr"], list(item["masks"]), item["boxes"], [True] * len(item["boxes"]), gt_fg
            )
            ok, jpg = cv2.imencode(".jpg", drawn)
            write_atomic(jpg.tobytes(), os.path.join(vis_dir, item["name"][:-4] + ".jpg"))
        now = time.perf_counter()
        if now - last_log > 10 or n == len(items):
            eta = (now - start) / n * (len(items) - n)
            logger.info(f"BoxSup labelling {epoch}: {n}/{len(items)} images, ETA {eta:.0f} s")
            last_log = now
    stats = {
        "images": len(items),
        "boxes": num_boxes,
        "fallbacks": fallbacks,
        "choices": choices,
        "confusion": conf,
    }
    if world > 1:
        gathered = comm.all_gather(stats)
        stats = {
            "images": sum(s["images"] for s in gathered),
            "boxes": sum(s["boxes"] for s in gathered),
            "fallbacks": sum(s["fallbacks"] for s in gathered),
            "choices": {k: v for s in gathered for k, v in s["choices"].items()},
            "confusion": sum(s["confusion"] for s in gathered),
        }
    return stats


@HOOK_REGISTRY.register()
class BoxSupLabelUpdate(HookBase):
    """BoxSup's per-epoch label update (module docstring); checkpointable (the labelling)."""

    def __init__(self, cfg: CfgNode):
        self.cfg = cfg.clone()
        self.spec = LabelSpec.from_config(cfg)
        self.root = os.path.join(cfg.OUTPUT_DIR, "boxsup")
        self.labelling: Optional[int] = None  # epoch index of the labelling trained on
        self.rows: List[Dict[str, Any]] = []  # per finished epoch: label and val mIoU

    # -- checkpoint ---------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        if self.labelling is None:
            return {}
        return {"labelling": self.labelling, "rows": list(self.rows)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.labelling = int(state["labelling"])
        self.rows = list(state.get("rows", []))

    # -- paths and records --------------------------------------------------------------------
    def label_dir(self, epoch: int) -> str:
        return os.path.join(self.root, "labels", f"epoch_{epoch:03d}")

    def _done(self, epoch: int) -> Optional[Dict[str, Any]]:
        path = os.path.join(self.label_dir(epoch), "DONE.json")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def _load_records(self) -> None:
        cfg = self.cfg
        self.records = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
        if cfg.WEAKSUP.BOXSUP.IGNORE_GT_MASKS:
            self.records = [box_only(r) for r in self.records]
        meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
        self.num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        if len(meta.get("thing_classes", [])) + 1 != self.num_classes:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES is {self.num_classes}, but "
                f"{cfg.DATASETS.TRAIN[0]} has {len(meta.thing_classes)} classes + background"
            )
        self.gt_records = None
        if cfg.WEAKSUP.BOXSUP.GT_DATASET:
            by_file = {
                r["file_name"]: r
                for r in get_detection_dataset_dicts(
                    [cfg.WEAKSUP.BOXSUP.GT_DATASET], filter_empty=False
                )
            }
            self.gt_records = [by_file.get(r["file_name"]) for r in self.records]
            missing = sum(g is None for g in self.gt_records)
            if missing:
                logger.warning(
                    f"BoxSup: {missing} training images not in {cfg.WEAKSUP.BOXSUP.GT_DATASET}"
                )
        n = sum(has_gt_masks(r) for r in self.records)
        logger.info(
            f"BoxSup: {len(self.records)} training images, {n} with ground-truth masks (kept), "
            f"{len(self.records) - n} box-only (labels from '{self.spec.source}')"
        )

    def _gt_file(self, index: int, record: Dict[str, Any]) -> str:
        """The label-map file of an image with GT masks (its own, or one derived once)."""
        if record.get("sem_seg_file_name"):
            return record["sem_seg_file_name"]
        path = os.path.join(self.root, "labels", "gt", _label_name(index, record))
        if not os.path.isfile(path):
            ok, png = cv2.imencode(".png", gt_label_map(record))
            write_atomic(png.tobytes(), path)
        return path

    # -- labelling ----------------------------------------------------------------------------
    def labelling_stage(self, epoch: int) -> Stage:
        """Labelling ``epoch`` as a cached :class:`~weaksup.engine.stages.Stage`, keyed by the
        label settings and the training images. After epoch 0 it is also made by the network at
        the end of epoch ``epoch - 1``: that is the checkpoint the job resumes from (saved right
        after the update), so the training config is not part of the key (a resumed job may
        change its schedule or test settings; train_net.py warns when --resume resumes
        checkpoints made with other settings)."""
        settings = {
            "epoch": epoch,
            "spec": asdict(self.spec),
            "datasets": list(self.cfg.DATASETS.TRAIN),
            "ignore_gt_masks": self.cfg.WEAKSUP.BOXSUP.IGNORE_GT_MASKS,
        }
        return Stage(
            f"BoxSup labelling {epoch}",
            self.label_dir(epoch),
            settings,
            is_dir=True,
            datasets=list(self.cfg.DATASETS.TRAIN),  # by content: boxes and images
        )

    def _make(self, epoch: int, model: Optional[torch.nn.Module]) -> None:
        """Labelling ``epoch`` (with ``model``, or by E_o alone when None), unless the one on
        disk was made with the same settings (:meth:`labelling_stage`)."""
        run_stage(
            self.labelling_stage(epoch),
            lambda: self._label(epoch, model),
            output_done=lambda: self._done(epoch) is not None,
        )

    def _label(self, epoch: int, model: Optional[torch.nn.Module]) -> None:
        cfg = self.cfg
        vis = min(cfg.WEAKSUP.BOXSUP.VIS_NUM_IMAGES, len(self.records))
        t0 = time.perf_counter()
        if model is not None:
            model = model.module if isinstance(model, DistributedDataParallel) else model
            was_training = model.training
            model.eval()
        try:
            stats = make_labelling(
                self.records,
                self.spec,
                epoch,
                self.label_dir(epoch),
                model,
                self.gt_records,
                cfg.DATALOADER.NUM_WORKERS,
                os.path.join(self.root, "vis", f"epoch_{epoch:03d}") if vis else None,
                range(vis),
                self.num_classes,
            )
        finally:
            if model is not None:
                model.train(was_training)
        for i, r in enumerate(self.records):  # GT label maps of semi-supervised images
            if i % comm.get_world_size() == comm.get_rank() and has_gt_masks(r):
                self._gt_file(i, r)
        miou = miou_from_confusion(stats["confusion"]) if self.gt_records else None
        prev = self._done(epoch - 1) if epoch > 0 else None
        changed = None
        if prev is not None and stats["boxes"]:
            with open(os.path.join(self.label_dir(epoch - 1), "choices.json")) as f:
                before = json.load(f)
            now = stats["choices"]
            diff = sum(a != b for k in now for a, b in zip(now[k], before.get(k, [])))
            changed = diff / stats["boxes"]
        if comm.is_main_process():
            write_json_atomic(stats["choices"], os.path.join(self.label_dir(epoch), "choices.json"))
            summary = {
                "epoch": epoch,
                "images": stats["images"],
                "boxes": stats["boxes"],
                "fallbacks": stats["fallbacks"],
                "label_mIoU": miou,
                "changed": changed,
                "source": self.spec.source,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            write_json_atomic(summary, os.path.join(self.label_dir(epoch), "DONE.json"))
        wait_for_all()
        msg = f"label mIoU vs GT {miou:.2f}" if miou is not None else "no GT dataset"
        if changed is not None:
            msg += f", {100 * changed:.1f}% of the boxes changed candidate"
        logger.info(
            f"BoxSup labelling {epoch} ({'E_o only' if model is None else 'E_o + lambda E_r'}) "
            f"of {stats['images']} images, {stats['boxes']} boxes, {stats['fallbacks']} filled-box "
            f"fallbacks: {msg} ({time.perf_counter() - t0:.1f} s)"
        )

    def training_records(self, epoch: int) -> List[Dict[str, Any]]:
        """The records the epoch trains on: image and ``sem_seg_file_name``, the labelling's map
        for box-only images and the ground-truth map for images with masks."""
        records = []
        for i, r in enumerate(self.records):
            label = (
                self._gt_file(i, r)
                if has_gt_masks(r)
                else os.path.join(self.label_dir(epoch), _label_name(i, r))
            )
            records.append(
                {k: r[k] for k in ("file_name", "height", "width", "image_id")}
                | {"sem_seg_file_name": label}
            )
        return records

    def _train_loader(self, epoch: int):
        records = self.training_records(epoch)
        sampler = TrainingSampler(len(records), seed=self.spec.seed * 1000 + epoch)
        return build_detection_train_loader(
            self.cfg, mapper=build_mapper(self.cfg, is_train=True), dataset=records, sampler=sampler
        )

    def _use(self, epoch: int) -> None:
        self.labelling = epoch
        logger.info(f"BoxSup: training on labelling {epoch} ({self.label_dir(epoch)})")
        loader = self._train_loader(epoch)
        self.trainer._trainer.reset_data_loader(lambda: loader)
        self.trainer.storage.put_scalar("boxsup/labelling", epoch, smoothing_hint=False)

    # -- hook ---------------------------------------------------------------------------------
    def before_train(self) -> None:
        self._load_records()
        batch = self.cfg.SOLVER.IMS_PER_BATCH
        self.epoch_iters = self.cfg.WEAKSUP.BOXSUP.EPOCH_ITERS or math.ceil(
            len(self.records) / batch
        )
        logger.info(
            f"BoxSup: {self.epoch_iters} iterations per epoch (batch {batch}); MAX_ITER "
            f"{self.trainer.max_iter} = {self.trainer.max_iter / self.epoch_iters:.2f} epochs"
        )
        if self.labelling is not None:  # resumed: train on the checkpoint's labelling
            logger.info(
                f"BoxSup: resuming at iteration {self.trainer.start_iter} on labelling "
                f"{self.labelling} ({self.label_dir(self.labelling)})"
            )
            # up to date: skipped; made with other settings or incomplete: made again
            self._make(self.labelling, self.trainer.model if self.labelling else None)
        else:
            self._make(0, None)
            self.labelling = 0
        self._use(self.labelling)

    def _epoch_row(self, epoch: int) -> None:
        """Record (and log) epoch ``epoch``'s training-label and validation mIoU."""
        done = self._done(self.labelling) or {}
        val = None
        for key, (value, it) in self.trainer.storage.latest().items():
            if key.endswith("sem_seg/mIoU") and it == self.trainer.storage.iter:
                val = float(value)
        row = {
            "epoch": epoch,
            "labelling": self.labelling,
            "label_mIoU": done.get("label_mIoU"),
            "val_mIoU": val,
        }
        self.rows = [r for r in self.rows if r["epoch"] != epoch] + [row]
        if row["label_mIoU"] is not None:
            self.trainer.storage.put_scalar(
                "boxsup/label_mIoU", row["label_mIoU"], smoothing_hint=False
            )
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        logger.info(
            f"BoxSup epoch {epoch}: training labels (labelling {self.labelling}) mIoU "
            f"{fmt(row['label_mIoU'])}, validation mIoU {fmt(val)}"
        )

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if next_iter % self.epoch_iters or next_iter >= self.trainer.max_iter:
            return
        epoch = next_iter // self.epoch_iters
        self._epoch_row(epoch)
        if self.spec.source != "candidates":
            return  # fixed labels (Tab. 2 baselines): never updated
        self._make(epoch, self.trainer.model)
        self._use(epoch)
        if self.cfg.WEAKSUP.BOXSUP.CHECKPOINT_AFTER_UPDATE:  # one file, replaced atomically
            self.trainer.checkpointer.save("model_after_label_update", iteration=self.trainer.iter)

    def after_train(self) -> None:
        if self.trainer.iter + 1 < self.trainer.max_iter:
            return  # stopped early (an exception): no final epoch row
        self._epoch_row(math.ceil(self.trainer.max_iter / self.epoch_iters))
        if not comm.is_main_process():
            return
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        table = tabulate(
            [
                [r["epoch"], r["labelling"], fmt(r["label_mIoU"]), fmt(r["val_mIoU"])]
                for r in self.rows
            ],
            headers=["epoch", "labelling", "train labels mIoU", "val mIoU"],
            tablefmt="pipe",
        )
        logger.info(f"BoxSup per epoch ({self.spec.source}):\n{table}")
        write_json_atomic(self.rows, os.path.join(self.root, "epochs.json"))
