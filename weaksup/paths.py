"""Where weaksup writes what it derives once and reuses (label maps, candidate segments)."""

import os

__all__ = ["cache_dir"]


def cache_dir() -> str:
    """``$WEAKSUP_CACHE``, default ``~/.cache/weaksup``."""
    return os.path.expanduser(os.getenv("WEAKSUP_CACHE", "~/.cache/weaksup"))
