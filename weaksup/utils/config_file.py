"""Config files read as plain data: a YAML file never runs code.

Detectron2's ``CfgNode.merge_from_file`` defaults to ``allow_unsafe=True``: a file that
``yaml.safe_load`` refuses (a ``!!python/object/apply:os.system [...]`` tag) is then read with
``yaml.unsafe_load``, which runs it, in the file itself or in any of its ``_BASE_`` files.
:func:`merge_config_file` reads the file and its bases with ``yaml.safe_load`` only and turns a
refused tag into an error naming the file; every weaksup entry point loads configs through it.
"""

import yaml
from detectron2.config import CfgNode

__all__ = ["merge_config_file"]


def merge_config_file(cfg: CfgNode, path: str) -> CfgNode:
    """Merge the YAML config ``path`` (and its ``_BASE_`` files) into ``cfg`` (in place) and
    return it. Raises ``ValueError`` naming the file (the base file, when the problem is there)
    and line when a file holds a YAML tag that would build a Python object, or is no YAML."""
    try:
        cfg.merge_from_file(path, allow_unsafe=False)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark is not None else path
        if isinstance(e, yaml.constructor.ConstructorError):
            raise ValueError(
                f"config {where}: refused: {e.problem}; a config holds plain values only (YAML "
                f"tags that build Python objects are never loaded){_base(where, path)}"
            ) from None
        raise ValueError(f"config {where}: not valid YAML ({e.problem}){_base(where, path)}") from e
    return cfg


def _base(where: str, path: str) -> str:
    return "" if where.startswith(path) else f" (a _BASE_ of {path})"
