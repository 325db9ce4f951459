"""What a registered dataset holds, as two short digests: the key of cached stages that read it.

A cached stage (pseudo masks, proxy masks, proposals, a training) made from a dataset must be
redone when the dataset changes, not only when its *name* or the stage's settings do: a box
edited in the json, an image replaced. :func:`dataset_fingerprint` hashes

* ``records``: every record the dataset's loader returns (boxes, classes, masks, image sizes,
  file names, ...), as canonical json, streamed record by record;
* ``images``: every file a record names (keys ending in ``file_name``) by path, size and
  modification time (``None`` when missing).

Files count by size and mtime, not by content: at COCO scale (118k images, 19 GB) hashing the
bytes would read every image on every run (minutes), while ``os.stat`` reads no image (about a
second) and an image replaced or rewritten changes its mtime (and mostly its size). The records
are already read by every stage. The cost is one more load of the dataset per stage.
"""

import hashlib
import json
from typing import Any, Dict

from detectron2.data import DatasetCatalog

from ...utils.file_io import file_identity

__all__ = ["dataset_fingerprint"]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("latin1")
    return repr(value)


def dataset_fingerprint(name: str) -> Dict[str, str]:
    """``{"records": ..., "images": ...}``: 16-hex-digit digests of the records of the registered
    dataset ``name`` and of its files' paths, sizes and mtimes (module docstring)."""
    records, files = hashlib.sha256(), hashlib.sha256()
    for record in DatasetCatalog.get(name):
        records.update(json.dumps(record, sort_keys=True, default=_jsonable).encode())
        for key in sorted(k for k in record if k.endswith("file_name")):
            path = record[key]
            if isinstance(path, str):
                files.update(json.dumps([path, file_identity(path)]).encode())
    return {"records": records.hexdigest()[:16], "images": files.hexdigest()[:16]}
