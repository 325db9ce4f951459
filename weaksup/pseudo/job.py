"""A sharded, resumable job over a whole dataset (:class:`ShardedJob`) and the pseudo-mask job on it
(:class:`PseudoMaskJob`): per-image work, shards, resume, output json.

Plain numpy + OpenCV + pycocotools (no torch, no Detectron2), so worker processes stay light.
``tools/make_pseudo_masks.py`` builds the :class:`ImageTask` list (boxes sanitized, ground-truth
masks dropped) and handles several machines; this module does the rest:

* images sorted by id are cut into shards of ``shard_size`` images; shard ``k``'s results are
  written atomically to ``<work_dir>/shard_<k>.json`` when its last image is done, with the
  shard's own fingerprint (the job's settings and its images: records and files). Shard contents
  depend only on these, not on the worker count or the machine that computed them, so
  ``resume`` reuses every shard file of the same fingerprint and computes the rest: after a fixed
  image record (or a replaced image file) only that image's shard is redone;
* every image's existence and header size are checked before any work (:meth:`PseudoMaskJob.run`),
  so a bad record stops the job at once, not after hours of shards;
* ``<work_dir>/job.json`` holds the job's settings fingerprint; resuming the work of other
  settings (method, parameters, seed, shard size) is an error;
* the output json carries the fingerprint (``info.job_fingerprint``): a finished job is
  recognised by it (:func:`job_output_complete`), never by the file's mere existence;
* each instance is seeded from its annotation id and the job seed (:func:`instance_seed`), so
  the output does not depend on order, worker count or sharding.
"""

import contextlib
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.file_io import file_identity, write_json_atomic
from ..utils.image_io import image_size, read_image_bgr
from ..utils.rle import encode_mask
from .methods import PseudoMaskConfig, pseudo_masks_for_image

__all__ = [
    "ImageTask",
    "PseudoMaskJob",
    "ShardedJob",
    "job_output_complete",
    "instance_seed",
    "pseudo_mask_json",
    "process_image",
]

logger = logging.getLogger(__name__)

# Fallback recorded for annotations whose box was dropped before the method ran (zero area,
# inverted, outside the image): the same name the engine uses for boxes covering no pixel.
DROPPED_BOX_FALLBACK = "empty_box"


@dataclass(frozen=True)
class ImageTask:
    """One image's work: its boxes (``XYXY_ABS``, sanitized) and annotation ids."""

    image_id: Any
    file_name: str
    height: int
    width: int
    ann_ids: Tuple[Any, ...]
    boxes: Tuple[Tuple[float, float, float, float], ...]
    dropped_ann_ids: Tuple[Any, ...] = ()  # annotations whose box was dropped: empty, invalid

    @property
    def num_instances(self) -> int:
        return len(self.ann_ids) + len(self.dropped_ann_ids)


def instance_seed(ann_id: Any, seed: int) -> int:
    """A 31-bit seed from an annotation id (int or str) and the job seed (CRC32, stable)."""
    return zlib.crc32(f"{seed}:{ann_id}".encode()) & 0x7FFFFFFF


def process_image(
    task: ImageTask, method: str, cfg: PseudoMaskConfig, seed: int
) -> List[Dict[str, Any]]:
    """Pseudo masks of one image, one json-ready dict per annotation (ids in task order):
    ``id``, ``segmentation`` (compressed RLE, str counts), ``area``, ``box_agreement``,
    ``mask_valid``, ``fallback``."""
    results = []
    if task.ann_ids:
        image = read_image_bgr(task.file_name, task.height, task.width, task.image_id)
        seeds = [instance_seed(i, seed) for i in task.ann_ids]
        masks = pseudo_masks_for_image(image, np.array(task.boxes), method, seeds, cfg)
        for ann_id, pm in zip(task.ann_ids, masks):
            results.append(
                {
                    "id": ann_id,
                    "segmentation": encode_mask(pm.mask),
                    "area": int(pm.mask.sum()),
                    "box_agreement": float(pm.box_agreement),
                    "mask_valid": bool(pm.mask_valid),
                    "fallback": pm.fallback,
                }
            )
    empty = (
        encode_mask(np.zeros((task.height, task.width), dtype=bool))
        if task.dropped_ann_ids
        else None
    )
    for ann_id in task.dropped_ann_ids:
        results.append(
            {
                "id": ann_id,
                "segmentation": empty,
                "area": 0,
                "box_agreement": 0.0,
                "mask_valid": False,
                "fallback": DROPPED_BOX_FALLBACK,
            }
        )
    return results


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe


def _process_indexed(args) -> Tuple[int, int, List[Dict[str, Any]]]:
    shard, index, task, method, cfg, seed = args
    return shard, index, process_image(task, method, cfg, seed)


class ShardedJob:
    """A resumable job over a list of items (a dataset's images) cut into shards: the one
    implementation behind the pseudo masks (:class:`PseudoMaskJob`) and BoxCaseg's proxy masks.

    * shard ``k``'s results are written atomically to ``<work_dir>/shard_<k>.json`` once all
      its items are done, with the shard's fingerprint; a shard file is reused only by a job of
      the same settings (``<work_dir>/job.json``) and only when its fingerprint is the shard's;
    * the job is *done* when its output json carries its fingerprint (``info.job_fingerprint``,
      :func:`job_output_complete`), which :meth:`write_output` writes, atomically.

    Args:
        items: the job's items in shard order.
        key: the settings (json-able) the results depend on besides the items; with
            ``shard_size`` hashed into :attr:`work_fingerprint` (``job.json``).
        work_dir: folder of the shard files and ``job.json``.
        shard_size: items per shard.
        item_keys: per item, what (json-able) its result depends on (e.g. its record and its
            file's identity); a shard's fingerprint hashes its items' keys, the output's all of
            them. None: ``key`` covers the items (every shard has the work fingerprint).
    """

    def __init__(
        self,
        items: Sequence[Any],
        key: Dict[str, Any],
        work_dir: str,
        shard_size: int,
        item_keys: Optional[Sequence[Any]] = None,
    ):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.items = list(items)
        self.work_dir = work_dir
        cut = range(0, len(self.items), shard_size)
        self.shards = [self.items[i : i + shard_size] for i in cut]
        # the results depend on the key and the items; the shard files also on how items are cut
        self.fingerprint = _digest({**key, "items": item_keys})
        self.work_fingerprint = _digest({**key, "shard_size": shard_size})
        self.shard_fingerprints = [
            (
                _digest([self.work_fingerprint, item_keys[i : i + shard_size]])
                if item_keys is not None
                else self.work_fingerprint
            )
            for i in cut
        ]

    def shard_path(self, k: int) -> str:
        return os.path.join(self.work_dir, f"shard_{k:06d}.json")

    def shards_of(self, rank: int, world: int) -> List[int]:
        """The shards process ``rank`` of ``world`` computes: ``rank, rank + world, ...``."""
        return list(range(rank, len(self.shards), world))

    def _found_fingerprint(self) -> Optional[str]:
        meta_path = os.path.join(self.work_dir, "job.json")
        if not os.path.isfile(meta_path):
            return None
        with open(meta_path) as f:
            return json.load(f).get("fingerprint")  # the work fingerprint

    def prepare(self, shard_indices: Iterable[int], resume: bool) -> None:
        """Check (``resume``) or (re)start the work dir for ``shard_indices``.

        Resuming a work dir of another job raises; a fresh start removes the given shards' files.
        """
        found = self._found_fingerprint()
        if resume and found is not None and found != self.work_fingerprint:
            raise ValueError(
                f"--resume: {self.work_dir} holds the work of another job (method, "
                "parameters, seed or shard size differ); rerun without --resume"
            )
        if not resume:
            for k in shard_indices:
                if os.path.exists(self.shard_path(k)):
                    os.remove(self.shard_path(k))
        self._write_meta()

    def reset_if_foreign(self) -> None:
        """Main process of an in-training job: clear a work dir holding another job's shards,
        then claim it (resuming our own shards is always safe)."""
        found = self._found_fingerprint()
        if found is not None and found != self.work_fingerprint:
            logger.info(f"{self.work_dir} holds another job's shards: removed")
            self.cleanup(range(len(self.shards)))
        self._write_meta()

    def _write_meta(self) -> None:
        write_json_atomic(
            {"fingerprint": self.work_fingerprint}, os.path.join(self.work_dir, "job.json")
        )

    def pending(self, shard_indices: Iterable[int]) -> List[int]:
        """The given shards without a file of their own fingerprint (not written yet, or written
        for other items: a record fixed, an image replaced)."""
        return [k for k in shard_indices if self._read_shard(k) is None]

    def _read_shard(self, k: int) -> Optional[List[Dict[str, Any]]]:
        """Shard ``k``'s results when its file holds this shard's fingerprint, else None."""
        try:
            with open(self.shard_path(k)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != self.shard_fingerprints[k]:
            return None
        return data["results"]

    def load_shard(self, k: int) -> List[Dict[str, Any]]:
        results = self._read_shard(k)
        if results is None:
            raise RuntimeError(f"{self.shard_path(k)}: missing, or made for other items")
        return results

    def write_shard(self, k: int, results: List[Dict[str, Any]]) -> None:
        data = {"fingerprint": self.shard_fingerprints[k], "results": results}
        write_json_atomic(data, self.shard_path(k))

    def collect(self) -> List[Dict[str, Any]]:
        """The results of every shard, in shard order (all shard files must be written)."""
        return [r for k in range(len(self.shards)) for r in self.load_shard(k)]

    def write_output(
        self,
        coco: Dict[str, Any],
        results: Iterable[Dict[str, Any]],
        method: str,
        output_json: str,
        **info: Any,
    ) -> None:
        """The output json (:func:`pseudo_mask_json`) marked with this job's fingerprint."""
        out = pseudo_mask_json(coco, results, method)
        out["info"] = {**out.get("info", {}), **info, "job_fingerprint": self.fingerprint}
        write_json_atomic(out, output_json)

    def cleanup(self, shard_indices: Iterable[int]) -> None:
        """Remove the given shards' files, ``job.json`` and the work dir once it is empty.

        Several machines may share the work dir and clean up at the same moment, so a file or
        folder another one removed first is not an error.
        """
        for path in [self.shard_path(k) for k in shard_indices] + [
            os.path.join(self.work_dir, "job.json")
        ]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        with contextlib.suppress(OSError):  # removed by another machine, or not empty yet
            os.rmdir(self.work_dir)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def job_output_complete(path: str, fingerprint: str) -> bool:
    """Whether ``path`` is the finished output of the job with ``fingerprint`` (written
    atomically, so a readable file is complete): the one notion of "done" of every
    :class:`ShardedJob`."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path) as f:
            return json.load(f).get("info", {}).get("job_fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


class PseudoMaskJob(ShardedJob):
    """Pseudo masks of ``tasks`` with ``method``, sharded and resumable (module docstring).

    Args:
        tasks: the images; sorted here by image id.
        method, cfg, seed: the method, its parameters and the job seed.
        work_dir: folder of the shard files and ``job.json``.
        shard_size: images per shard.
    """

    def __init__(
        self,
        tasks: Sequence[ImageTask],
        method: str,
        cfg: PseudoMaskConfig,
        seed: int,
        work_dir: str,
        shard_size: int = 32,
    ):
        ids = [t.image_id for t in tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate image ids in the tasks")
        self.tasks = sorted(tasks, key=lambda t: t.image_id)
        self.method, self.cfg, self.seed = method, cfg, seed
        key = {"method": method, "cfg": asdict(cfg), "seed": seed}
        item_keys = [[asdict(t), file_identity(t.file_name)] for t in self.tasks]
        super().__init__(self.tasks, key, work_dir, shard_size, item_keys)

    def check_images(self, shard_indices: Iterable[int]) -> None:
        """Raise one ``ValueError`` naming every image of the given shards (with boxes) that is
        missing, no image, or of another size than its record, from the file's header: before any
        work, so a bad record costs no finished shard."""
        problems = []
        for task in (t for k in shard_indices for t in self.shards[k] if t.ann_ids):
            where = f"image {task.file_name!r} (image_id={task.image_id!r})"
            if not os.path.isfile(task.file_name):
                problems.append(f"{where}: file not found")
                continue
            if os.path.getsize(task.file_name) == 0:
                problems.append(f"{where}: empty file (0 bytes)")
                continue
            try:
                height, width = image_size(task.file_name)
            except ValueError as e:
                problems.append(f"{where}: corrupt, or not an image ({e.__cause__ or e})")
                continue
            if (height, width) != (task.height, task.width):
                problems.append(
                    f"{where} is {width}x{height} but annotated as {task.width}x{task.height}"
                )
        if problems:
            more = f"\n  ... ({len(problems)} in all)" if len(problems) > 20 else ""
            missing = all(p.endswith(": file not found") for p in problems)
            raise (FileNotFoundError if missing else ValueError)(
                f"{len(problems)} image(s) cannot be used (nothing computed; fix the records or "
                "files, then rerun or --resume: only their shards are redone):\n  "
                + "\n  ".join(problems[:20])
                + more
            )

    def run(
        self,
        shard_indices: Optional[Sequence[int]] = None,
        resume: bool = False,
        num_workers: int = 0,
        progress: bool = True,
    ) -> Dict[int, List[Dict[str, Any]]]:
        """Compute (or, with ``resume``, load) the given shards (default all).

        Args:
            num_workers: worker processes; 0 runs in this process.
            progress: show a tqdm bar (instances/s, ETA).

        Returns:
            shard index -> results of its images (:func:`process_image`), in image order.
        """
        if shard_indices is None:
            shard_indices = range(len(self.shards))
        shard_indices = list(shard_indices)
        self.prepare(shard_indices, resume)
        done: Dict[int, List[Dict[str, Any]]] = {}
        if resume:
            for k in shard_indices:
                results = self._read_shard(k)
                if results is not None:
                    done[k] = results
            stale = sum(os.path.isfile(self.shard_path(k)) for k in shard_indices if k not in done)
            logger.info(
                f"Resuming: {len(done)} of {len(shard_indices)} shards already done"
                + (f", {stale} made from other records or image files redone" if stale else "")
            )
        todo = [k for k in shard_indices if k not in done]
        self.check_images(todo)
        total = sum(t.num_instances for k in shard_indices for t in self.shards[k])
        initial = sum(t.num_instances for k in done for t in self.shards[k])
        pending = {k: [None] * len(self.shards[k]) for k in todo}
        remaining = {k: len(self.shards[k]) for k in todo}
        args = [
            (k, i, task, self.method, self.cfg, self.seed)
            for k in todo
            for i, task in enumerate(self.shards[k])
        ]
        bar = tqdm(
            total=total, initial=initial, unit="inst", disable=not progress, desc="pseudo masks"
        )
        # forkserver: workers forked from a fresh process, never from this one, whose OpenCV or
        # torch thread pools may hold locks at fork time (a forked worker then deadlocks)
        ctx = mp.get_context("forkserver")
        pool = ctx.Pool(num_workers, initializer=_worker_init) if num_workers > 0 else None
        try:
            if pool:  # a few chunks per worker: less IPC, still balanced across workers
                chunk = max(1, min(8, len(args) // (4 * num_workers)))
                outputs = pool.imap_unordered(_process_indexed, args, chunksize=chunk)
            else:
                outputs = map(_process_indexed, args)
            for k, i, results in outputs:
                pending[k][i] = results
                remaining[k] -= 1
                bar.update(len(results))
                if remaining[k] == 0:
                    done[k] = [r for image_results in pending.pop(k) for r in image_results]
                    self.write_shard(k, done[k])
        finally:
            bar.close()
            if pool:
                pool.terminate()
                pool.join()
        return done


def pseudo_mask_json(
    coco: Dict[str, Any], results: Iterable[Dict[str, Any]], method: str
) -> Dict[str, Any]:
    """The output json: ``coco`` (images, categories, ... unchanged) whose annotations get their
    pseudo mask as ``segmentation`` (its ``area`` too) and ``pseudo_method``, ``box_agreement``,
    ``mask_valid``, ``fallback``; other annotation fields are kept, annotation order too. A box
    with a non-finite number (NaN, inf: dropped before any method ran) is written as ``null``:
    strict JSON parsers refuse the ``NaN`` / ``Infinity`` literals Python would write."""
    by_id = {r["id"]: r for r in results}
    missing = [a["id"] for a in coco["annotations"] if a["id"] not in by_id]
    if missing:
        raise RuntimeError(f"no pseudo mask for annotation ids {missing[:10]} ({len(missing)})")
    annotations = []
    for ann in coco["annotations"]:
        r = by_id[ann["id"]]
        annotations.append(
            {
                **{k: v for k, v in ann.items() if k not in ("segmentation", "area")},
                **({"bbox": None} if not _finite_box(ann.get("bbox")) else {}),
                "segmentation": r["segmentation"],
                "area": r["area"],
                "pseudo_method": method,
                "box_agreement": r["box_agreement"],
                "mask_valid": r["mask_valid"],
                "fallback": r["fallback"],
            }
        )
    return {**{k: v for k, v in coco.items() if k != "annotations"}, "annotations": annotations}


def _finite_box(box: Any) -> bool:
    """Whether ``box`` (absent counts as fine) holds no NaN or infinity."""
    return not isinstance(box, (list, tuple)) or all(
        not isinstance(v, float) or math.isfinite(v) for v in box
    )
