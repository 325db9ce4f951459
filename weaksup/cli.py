"""Command-line pieces shared by the tools that load a trained model's config (predict, export)."""

import argparse

from detectron2.config import CfgNode

from .config import load_config
from .data.datasets import add_register_argument, register_user_datasets

__all__ = ["add_config_arguments", "load_tool_config"]


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config-file``, ``--register NAME=JSON:IMAGES[:KIND]`` and trailing ``KEY VALUE``
    overrides (``opts``), as ``train_net.py`` takes them."""
    parser.add_argument("--config-file", required=True, metavar="FILE", help="the model's config")
    add_register_argument(parser)
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides (last)"
    )
    return parser


def load_tool_config(args: argparse.Namespace) -> CfgNode:
    """The config of :func:`add_config_arguments`' arguments (not frozen), the user's datasets
    registered."""
    cfg = load_config(args.config_file, args.opts)
    register_user_datasets(cfg, args.register)
    return cfg
