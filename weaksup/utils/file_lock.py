"""One writer per output: an exclusive lock file next to it, refused (not waited for) when held.

The lock is ``fcntl.flock`` on ``<path>.lock``: the kernel releases it when its holder exits,
however it exits (``kill -9`` included), so a crash never leaves a lock that blocks. The file
holds the holder's host and pid for the message; the holder removes it when done (while still
holding it; a process that locked a removed file retries on the new one). Plain Python (POSIX),
like :mod:`.file_io`.
"""

import contextlib
import fcntl
import os
import socket
from typing import Iterator

__all__ = ["OutputLockedError", "output_lock"]


class OutputLockedError(RuntimeError):
    """Another process holds the lock of an output."""


def _open_locked(lock_path: str, what: str, path: str) -> int:
    """A descriptor of ``lock_path`` holding its exclusive lock; raises when another holds it."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(
                f"{what} {path!r} is being written by another job ({holder}, lock {lock_path}); "
                "wait for it to finish or give another output"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file we locked: lock the current one


@contextlib.contextmanager
def output_lock(path: str, what: str = "output") -> Iterator[str]:
    """Hold the exclusive lock of ``path`` (``<path>.lock``) for the ``with`` block; raise
    :class:`OutputLockedError` naming ``path`` and the holder when another process holds it."""
    lock_path = path + ".lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    fd = _open_locked(lock_path, what, path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}".encode(), 0)
        yield lock_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock_path)
        os.close(fd)
