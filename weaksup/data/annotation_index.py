"""Per-annotation records of a COCO json, on disk and looked up by annotation id.

A training mapper needs one annotation's pseudo mask at a time, but every copy of it (ranks x
loader workers) used to hold every annotation's RLE: 1.5-2 GB per copy at COCO's 860k boxes
(issue 29). :class:`AnnotationIndex` keeps them in three files under
``$WEAKSUP_CACHE/annotation_index/<fingerprint>/``, memory-mapped, so the copies share the page
cache and each holds a few hundred bytes of Python state:

* ``ids.npy``: the sorted annotation ids (int64);
* ``offsets.npy``: ``(n + 1,)`` byte offsets of each id's record in ``records.bin``;
* ``records.bin``: each annotation's chosen keys as compact json, in id order.

The fingerprint keys the json's real path, size and modification time and the chosen keys; the
files are written atomically (``ids.npy`` last, as the completion marker), so processes that
build the same index at once write the same bytes and a reader never sees a partial one.
"""

import hashlib
import io
import json
import os
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from weaksup.paths import cache_dir
from weaksup.utils.coco_json import load_json_file
from weaksup.utils.file_io import write_atomic

__all__ = ["AnnotationIndex"]

_FORMAT = 1  # bump when the files' layout changes


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


class AnnotationIndex:
    """Read-only ``annotation id -> {key: value}`` of one json (module docstring). Picklable:
    a copy sent to a worker process carries the folder, not the data."""

    def __init__(self, directory: str, source: str = ""):
        self.directory = directory
        self.source = source or directory
        self._arrays = None

    def __getstate__(self) -> Dict[str, Any]:
        return {"directory": self.directory, "source": self.source, "_arrays": None}

    def _open(self):
        if self._arrays is None:
            ids = np.load(os.path.join(self.directory, "ids.npy"), mmap_mode="r")
            offsets = np.load(os.path.join(self.directory, "offsets.npy"), mmap_mode="r")
            path = os.path.join(self.directory, "records.bin")
            records = (
                np.memmap(path, dtype=np.uint8, mode="r")
                if os.path.getsize(path)
                else np.zeros(0, np.uint8)
            )
            self._arrays = (ids, offsets, records)
        return self._arrays

    def __len__(self) -> int:
        return len(self._open()[0])

    def get(self, ann_id: int) -> Optional[Dict[str, Any]]:
        """The record of annotation ``ann_id``; None when the json has no such id."""
        ids, offsets, records = self._open()
        if not isinstance(ann_id, (int, np.integer)) or isinstance(ann_id, bool):
            return None
        i = int(np.searchsorted(ids, ann_id))
        if i >= len(ids) or ids[i] != ann_id:
            return None
        return json.loads(records[offsets[i] : offsets[i + 1]].tobytes())

    @classmethod
    def of_json(
        cls,
        json_file: str,
        keys: Sequence[str],
        check: Callable[[Dict[str, Any]], None] = lambda data: None,
    ) -> "AnnotationIndex":
        """The index of ``json_file``'s annotations (their ``keys`` that are present), built
        on first use: the json is read once, ``check(data)`` raises on a bad file (naming
        it), then the files are written. Annotation ids must be unique integers."""
        st = os.stat(json_file)
        fingerprint = hashlib.sha1(
            json.dumps(
                [_FORMAT, os.path.realpath(json_file), st.st_size, st.st_mtime_ns, list(keys)]
            ).encode()
        ).hexdigest()[:20]
        directory = os.path.join(cache_dir(), "annotation_index", fingerprint)
        if not os.path.isfile(os.path.join(directory, "ids.npy")):
            cls._build(json_file, keys, check, directory)
        return cls(directory, json_file)

    @staticmethod
    def _build(json_file: str, keys: Sequence[str], check: Callable, directory: str) -> None:
        data = load_json_file(json_file)
        check(data)
        annotations = data["annotations"]
        del data
        bad = [a.get("id") for a in annotations if type(a.get("id")) is not int][:10]
        if bad:
            raise ValueError(f"{json_file}: annotation ids must be integers, found {bad}")
        ids = np.array([a["id"] for a in annotations], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        dup = ids[1:][ids[1:] == ids[:-1]]
        if len(dup):
            raise ValueError(f"{json_file}: duplicate annotation ids {dup[:10].tolist()}")
        chunks, offsets = [], np.zeros(len(ids) + 1, dtype=np.int64)
        for n, i in enumerate(order):
            a = annotations[i]
            chunks.append(
                json.dumps({k: a[k] for k in keys if k in a}, separators=(",", ":")).encode()
            )
            offsets[n + 1] = offsets[n] + len(chunks[-1])
        del annotations
        write_atomic(b"".join(chunks), os.path.join(directory, "records.bin"))
        write_atomic(_npy_bytes(offsets), os.path.join(directory, "offsets.npy"))
        write_atomic(_npy_bytes(ids), os.path.join(directory, "ids.npy"))
