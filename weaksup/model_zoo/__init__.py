"""weaksup's shipped configs, found as Detectron2's ``model_zoo`` finds its own.

``get_config_file("PseudoMasks/demo/pennfudan_consensus_mask_rcnn_Lite0_FPN.yaml")`` is the path
of a config (``configs/`` of the repository; in a clone ``weaksup/model_zoo/configs`` is a link
to it, in an installed wheel a copy made when the wheel was built), ``get_config(...)`` the
loaded config. Stage configs named inside a config (``configs/BoxCaseg/...``) are found the same
way when they are not under the working directory (:func:`weaksup.config.resolve_config_path`).
"""

from typing import Sequence

from detectron2.config import CfgNode

from ..config import load_config, resolve_config_path

__all__ = ["get_config", "get_config_file"]


def get_config_file(config_path: str) -> str:
    """The path of the shipped config ``config_path`` (relative to ``configs/``, e.g.
    ``"BoxCaseg/demo_pennfudan_Lite0_FPN.yaml"``); raises ``FileNotFoundError`` naming it and the
    configs folder when weaksup ships no such file."""
    return resolve_config_path(config_path, packaged_only=True)


def get_config(config_path: str, opts: Sequence[str] = ()) -> CfgNode:
    """The shipped config ``config_path`` with ``KEY VALUE`` overrides (not frozen)."""
    return load_config(get_config_file(config_path), opts)

