"""BoxCaseg data: training patches (Sec. 3.2.2), mixed batches (Sec. 4.2.3), whole-image test input.

* :class:`BoxCasegPatchMapper` turns a *patch record* into a patch: a box-supervised instance
  (``{"file_name", "bbox"}``, the box ``XYXY_ABS``) is cropped at a jittered box, a salient image
  (``{"file_name", "salient_mask_file"}``) is resized, randomly cropped and flipped.
* :class:`MixedBatchSampler` yields batches with a fixed number of box and salient patches;
  :func:`build_boxcaseg_train_loader` is the Detectron2-style loader built on it.
* :class:`BoxCasegTestMapper` keeps whole images at their original resolution with their GT
  boxes, for evaluation and proxy-mask generation (one mask per box).
"""

import itertools
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.utils.data as torchdata
from detectron2.config import CfgNode, configurable
from detectron2.data import DatasetFromList, MapDataset, get_detection_dataset_dicts
from detectron2.data import detection_utils as utils
from detectron2.data.build import trivial_batch_collator, worker_init_reset_seed
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils import comm

from weaksup.data.build import MAPPER_REGISTRY
from weaksup.pseudo.geometry import tight_box

__all__ = [
    "BoxCasegPatchMapper",
    "BoxCasegTestMapper",
    "MixedBatchSampler",
    "box_instance_records",
    "build_boxcaseg_train_loader",
    "jitter_box",
]


def jitter_box(
    box: Sequence[float],
    height: int,
    width: int,
    rng: np.random.RandomState,
    center_jitter: float = 0.25,
    scale_jitter: Tuple[float, float] = (0.5, 1.5),
) -> np.ndarray:
    """The box-patch augmentation (Sec. 3.2.2; the authors' ``bbox_broaden`` in their released
    ``joint_training/tools/hybrid_data_loader.py``): the centre moves by
    ``U(-center_jitter, center_jitter)`` of the half width / height, then the half width is
    scaled by one ratio ``U(*scale_jitter)`` and the half height by another, so the new box is
    centred on the moved centre; the result is clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
    cx = (x0 + x1) / 2 + rng.uniform(-center_jitter, center_jitter) * hw
    cy = (y0 + y1) / 2 + rng.uniform(-center_jitter, center_jitter) * hh
    ratio_x, ratio_y = rng.uniform(*scale_jitter, size=2)
    return np.array(
        [
            np.clip(cx - ratio_x * hw, 0, width),
            np.clip(cy - ratio_y * hh, 0, height),
            np.clip(cx + ratio_x * hw, 0, width),
            np.clip(cy + ratio_y * hh, 0, height),
        ]
    )


def _pixel_crop(box: Sequence[float], height: int, width: int) -> Tuple[int, int, int, int]:
    """Integer crop ``(x0, y0, x1, y1)`` covering ``box``, at least one pixel, inside the image."""
    x0 = int(np.clip(np.floor(box[0]), 0, width - 1))
    y0 = int(np.clip(np.floor(box[1]), 0, height - 1))
    x1 = int(np.clip(np.ceil(box[2]), x0 + 1, width))
    y1 = int(np.clip(np.ceil(box[3]), y0 + 1, height))
    return x0, y0, x1, y1


@MAPPER_REGISTRY.register()
class BoxCasegPatchMapper:
    """Patch record -> ``{"image": (3, S, S) uint8, "mil_box": (4,) int64[, "salient_mask":
    (S, S) uint8 0/1]}`` (Sec. 3.2.2).

    Box records: the GT box is jittered (:func:`jitter_box`), the image is cropped to it and
    resized to ``S x S``; the GT box, mapped into the patch and clipped to it, is the MIL label map
    (its pixels' rows/columns are the positive bags). Salient records: image and mask are resized
    to ``R x R``, a random ``S x S`` crop is taken and flipped with probability 0.5; the mask's
    tight box is the MIL label map and the mask the pixel-wise target.
    """

    @configurable
    def __init__(
        self,
        *,
        patch_size: int,
        salient_resize: int,
        center_jitter: float,
        scale_jitter: Tuple[float, float],
        image_format: str,
        low_res_prob: float = 0.0,
        low_res_side: Tuple[int, int] = (8, 32),
    ):
        """
        Args:
            patch_size, salient_resize: sides of the patches and of the resized salient images.
            center_jitter, scale_jitter: the box-patch augmentation (:func:`jitter_box`).
            image_format: the images' channel order.
            low_res_prob: probability that a patch (box or salient) is made from a
                low-resolution copy of its content: the crop is shrunk (area interpolation) so
                that its longer side is ``U(*low_res_side)`` px, then resized to the patch as
                usual, the pixels a small object's test crop has (:meth:`BoxCaseg.crop_patches`).
                0 keeps every patch at the crop's own resolution.
        """
        if salient_resize < patch_size:
            raise ValueError(f"salient resize {salient_resize} < patch size {patch_size}")
        if not 0 <= low_res_prob <= 1 or not 1 <= low_res_side[0] <= low_res_side[1]:
            raise ValueError(
                f"INPUT.BOXCASEG.LOW_RES_PROB {low_res_prob} must be in [0, 1] and LOW_RES_SIDE "
                f"{tuple(low_res_side)} an increasing pair of sides >= 1"
            )
        self.patch_size = patch_size
        self.salient_resize = salient_resize
        self.center_jitter = center_jitter
        self.scale_jitter = tuple(scale_jitter)
        self.image_format = image_format
        self.low_res_prob = low_res_prob
        self.low_res_side = tuple(low_res_side)

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> Dict[str, Any]:
        p = cfg.INPUT.BOXCASEG
        return {
            "patch_size": p.PATCH_SIZE,
            "salient_resize": p.SALIENT_RESIZE,
            "center_jitter": p.CENTER_JITTER,
            "scale_jitter": p.SCALE_JITTER,
            "image_format": cfg.INPUT.FORMAT,
            "low_res_prob": p.LOW_RES_PROB,
            "low_res_side": p.LOW_RES_SIDE,
        }

    def _low_res(self, image: np.ndarray, rng) -> np.ndarray:
        """``image`` shrunk to a longer side of ``U(*low_res_side)`` px with probability
        ``low_res_prob`` (never enlarged), else unchanged (see ``low_res_prob``)."""
        if self.low_res_prob <= 0 or rng.rand() >= self.low_res_prob:
            return image
        h, w = image.shape[:2]
        scale = rng.uniform(*self.low_res_side) / max(h, w)
        if scale >= 1:
            return image
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)

    def __call__(self, record: Dict[str, Any]) -> Dict[str, Any]:
        image = utils.read_image(record["file_name"], format=self.image_format)
        rng = np.random  # reseeded per data-loader worker by Detectron2
        if "salient_mask_file" in record:
            return self._salient_patch(image, record, rng)
        return self._box_patch(image, record, rng)

    def _box_patch(self, image, record, rng) -> Dict[str, Any]:
        h, w = image.shape[:2]
        box = np.asarray(record["bbox"], dtype=np.float64)
        x0, y0, x1, y1 = _pixel_crop(
            jitter_box(box, h, w, rng, self.center_jitter, self.scale_jitter), h, w
        )
        s = self.patch_size
        crop = self._low_res(image[y0:y1, x0:x1], rng)
        patch = cv2.resize(crop, (s, s), interpolation=cv2.INTER_LINEAR)
        sx, sy = s / (x1 - x0), s / (y1 - y0)
        mil = np.round(
            [(box[0] - x0) * sx, (box[1] - y0) * sy, (box[2] - x0) * sx, (box[3] - y0) * sy]
        )
        mil = np.clip(mil, 0, s).astype(np.int64)
        return {"image": _chw(patch), "mil_box": torch.from_numpy(mil)}

    def _salient_patch(self, image, record, rng) -> Dict[str, Any]:
        mask = cv2.imread(record["salient_mask_file"], cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise RuntimeError(f"cannot read salient mask {record['salient_mask_file']!r}")
        r, s = self.salient_resize, self.patch_size
        image = cv2.resize(image, (r, r), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (r, r), interpolation=cv2.INTER_LINEAR) >= 128
        ox, oy = rng.randint(0, r - s + 1), rng.randint(0, r - s + 1)
        image, mask = image[oy : oy + s, ox : ox + s], mask[oy : oy + s, ox : ox + s]
        if rng.rand() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        low = self._low_res(image, rng)
        if low is not image:
            image = cv2.resize(low, (s, s), interpolation=cv2.INTER_LINEAR)
        return {
            "image": _chw(image),
            "mil_box": torch.from_numpy(tight_box(mask).astype(np.int64)),
            "salient_mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8)),
        }


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


@MAPPER_REGISTRY.register()
class BoxCasegTestMapper:
    """Whole image at its original resolution with its non-crowd GT boxes as ``instances``
    (``gt_boxes``, ``gt_classes``, ``gt_index`` = position in ``annotations``), the input of
    :class:`~weaksup.methods.boxcaseg.meta_arch.BoxCaseg` inference (one mask per box)."""

    @configurable
    def __init__(self, *, image_format: str):
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = False) -> Dict[str, Any]:
        return {"image_format": cfg.INPUT.FORMAT}

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        h, w = image.shape[:2]
        annos = [
            (j, a)
            for j, a in enumerate(dataset_dict.get("annotations", []))
            if not a.get("iscrowd", 0)
        ]
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for _, a in annos]
        instances = Instances((h, w))
        instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.gt_boxes.clip((h, w))
        instances.gt_classes = torch.tensor([a["category_id"] for _, a in annos], dtype=torch.int64)
        instances.gt_index = torch.tensor([j for j, _ in annos], dtype=torch.int64)
        return {
            "image": _chw(image),
            "instances": instances,
            "height": h,
            "width": w,
            "image_id": dataset_dict["image_id"],
            "file_name": dataset_dict["file_name"],
        }


def box_instance_records(dataset_dicts: List[Dict]) -> List[Dict]:
    """One patch record ``{"file_name", "height", "width", "image_id", "bbox"}`` (``bbox``
    ``XYXY_ABS``) per non-crowd annotation with a non-empty box."""
    records = []
    for d in dataset_dicts:
        for a in d.get("annotations", []):
            if a.get("iscrowd", 0):
                continue
            box = BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
            if box[2] > box[0] and box[3] > box[1]:
                records.append(
                    {
                        "file_name": d["file_name"],
                        "height": d["height"],
                        "width": d["width"],
                        "image_id": d["image_id"],
                        "bbox": [float(v) for v in box],
                    }
                )
    return records


class MixedBatchSampler(torchdata.Sampler):
    """Infinite stream of this process's batches, each with exactly ``box_per_batch`` box indices
    (``0 .. num_box - 1``) followed by ``salient_per_batch`` salient indices (``num_box ..``)
    (Sec. 4.2.3: every batch has the same box : salient ratio).

    An epoch is one pass over all salient images in random order (the last global batch is topped
    up from the next shuffle) with a random sample of box instances, without replacement while the
    box set lasts. Every process draws the same global order from the shared seed and takes its
    own slice of each global batch, so under DDP the processes see disjoint patches. Without
    salient images (``salient_per_batch == 0``) an epoch is one pass over the box instances.

    ``random_mix`` is Tab. 5's 'RS' baseline: batches of the same size drawn from one shuffle of
    all box and salient indices together (the ratio varies from batch to batch; an epoch is one
    pass over both).
    """

    def __init__(
        self,
        num_box: int,
        num_salient: int,
        box_per_batch: int,
        salient_per_batch: int,
        seed: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        random_mix: bool = False,
    ):
        if box_per_batch + salient_per_batch <= 0:
            raise ValueError("empty batches: box_per_batch + salient_per_batch must be > 0")
        for name, n, k in (
            ("box", num_box, box_per_batch),
            ("salient", num_salient, salient_per_batch),
        ):
            if k > 0 and n == 0:
                raise ValueError(f"{k} {name} patches per batch requested, but no {name} data")
        self.num_box, self.num_salient = num_box, num_salient
        self.box_per_batch, self.salient_per_batch = box_per_batch, salient_per_batch
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self.rank = comm.get_rank() if rank is None else rank
        self.world_size = comm.get_world_size() if world_size is None else world_size
        self.random_mix = random_mix

    @staticmethod
    def _stream(n: int, g: torch.Generator) -> Iterator[int]:
        while True:
            yield from torch.randperm(n, generator=g).tolist()

    def __iter__(self) -> Iterator[List[int]]:
        g = torch.Generator()
        g.manual_seed(self.seed)
        if self.random_mix:
            per_rank = self.box_per_batch + self.salient_per_batch
            stream = self._stream(self.num_box + self.num_salient, g)
            while True:
                batch = list(itertools.islice(stream, per_rank * self.world_size))
                yield batch[self.rank * per_rank : (self.rank + 1) * per_rank]
        boxes = self._stream(self.num_box, g) if self.box_per_batch else iter(())
        salient = self._stream(self.num_salient, g) if self.salient_per_batch else iter(())
        box_global = self.box_per_batch * self.world_size
        sal_global = self.salient_per_batch * self.world_size
        per_epoch = (
            math.ceil(self.num_salient / sal_global)
            if sal_global
            else math.ceil(self.num_box / box_global)
        )
        while True:
            for _ in range(per_epoch):
                box = list(itertools.islice(boxes, box_global))
                sal = [self.num_box + i for i in itertools.islice(salient, sal_global)]
                r = self.rank
                yield (
                    box[r * self.box_per_batch : (r + 1) * self.box_per_batch]
                    + sal[r * self.salient_per_batch : (r + 1) * self.salient_per_batch]
                )


def _batch_split(cfg: CfgNode) -> Tuple[int, int]:
    """Per-process box and salient patches per batch from IMS_PER_BATCH and BOX_SALIENT_RATIO."""
    world = comm.get_world_size()
    total = cfg.SOLVER.IMS_PER_BATCH
    ratio = tuple(int(r) for r in cfg.DATALOADER.BOX_SALIENT_RATIO)
    if total % world or (total // world) % sum(ratio):
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={total} over {world} process(es) must give a per-process batch "
            f"divisible by sum(DATALOADER.BOX_SALIENT_RATIO={ratio})"
        )
    k = total // world // sum(ratio)
    return ratio[0] * k, ratio[1] * k


def build_boxcaseg_train_loader(cfg: CfgNode, mapper: Optional[Any] = None):
    """Loader of mixed batches: box instances of ``DATASETS.TRAIN`` and salient images of
    ``DATASETS.SALIENT_TRAIN`` in the ratio ``DATALOADER.BOX_SALIENT_RATIO`` (per process).

    Yields lists of patch dicts (the mapper's output), as Detectron2's train loaders do.
    """
    box_per_batch, salient_per_batch = _batch_split(cfg)
    box = (
        box_instance_records(get_detection_dataset_dicts(cfg.DATASETS.TRAIN))
        if box_per_batch
        else []
    )
    salient = (
        get_detection_dataset_dicts(cfg.DATASETS.SALIENT_TRAIN, filter_empty=False)
        if salient_per_batch
        else []
    )
    sampling = cfg.DATALOADER.BOX_SALIENT_SAMPLING
    if sampling not in ("ratio", "random"):
        raise ValueError(
            f"DATALOADER.BOX_SALIENT_SAMPLING must be 'ratio' or 'random': {sampling!r}"
        )
    sampler = MixedBatchSampler(
        len(box), len(salient), box_per_batch, salient_per_batch, random_mix=sampling == "random"
    )
    if mapper is None:
        mapper = BoxCasegPatchMapper(cfg, True)
    dataset = MapDataset(DatasetFromList(box + salient, copy=False), mapper)
    return torchdata.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=trivial_batch_collator,
        worker_init_fn=worker_init_reset_seed,
    )
