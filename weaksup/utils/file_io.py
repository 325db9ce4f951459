"""Atomic file writes with the mode of a normal write, and output paths checked before the work.

Plain Python (no numpy, torch or Detectron2), so pseudo-label workers can use it.
"""

import json
import os
import tempfile
from typing import Any, List, Optional

__all__ = ["check_output_file", "file_identity", "write_atomic", "write_json_atomic"]


def _normal_write_mode(path: str) -> int:
    """The mode ``open(path, "w")`` would leave: the existing file's, else 0o666 minus the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (other threads may be creating files)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # elsewhere reading the umask means setting it: restore at once
    os.umask(umask)
    return umask


def write_atomic(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + ``os.replace``.

    The file gets the mode a normal write would give it (``mkstemp`` creates its files 0600
    whatever the umask), so outputs stay readable by the group and others as usual. An ``OSError``
    while writing (a full disk) names ``path``; the old file, if any, is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = _normal_write_mode(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            raise type(e)(e.errno, f"{e.strerror} (writing)", path) from e
        raise


def file_identity(path: str) -> Optional[List[int]]:
    """``[size, mtime_ns]`` of a file (None when missing): cheap, and a file replaced or rewritten
    changes it; the identity of inputs of cached work (images, files read by a stage)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def write_json_atomic(obj: Any, path: str) -> None:
    """``json.dump`` (compact, key order kept) to ``path`` atomically (:func:`write_atomic`)."""
    write_atomic(json.dumps(obj, separators=(",", ":")).encode(), path)


def check_output_file(path: str, what: str = "output") -> str:
    """Check, before any work, that a file can be written at ``path``; return its absolute path.

    Raises ``ValueError`` for an empty path or one that is a folder, and ``PermissionError``
    when its folder (or the first existing folder above it) is not writable.
    """
    if not path:
        raise ValueError(f"{what}: empty path; give the file to write")
    if os.path.isdir(path) or path.endswith(os.sep):
        raise ValueError(f"{what} {path!r} is a folder; give the file to write")
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.isdir(existing):
        if os.path.exists(existing):
            raise ValueError(f"{what} {path!r}: {existing!r} is a file, not a folder")
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    ):
        raise PermissionError(f"{what} {path!r}: cannot write there (no permission in {existing})")
    return os.path.abspath(path)
