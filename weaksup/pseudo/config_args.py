"""Command-line options for :class:`.engine.PseudoMaskConfig`, one per field (``--valid-threshold
0.95``, ``--tightness-repair false``, ...), shared by ``tools/make_pseudo_masks.py`` and
``benchmarks/pseudo_masks.py``."""

import argparse
import ast
import dataclasses
import typing
from typing import Any, Dict

from .methods import PseudoMaskConfig

__all__ = ["add_config_arguments", "config_from_args", "config_overrides"]


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _parse_literal(text: str) -> Any:
    """A Python literal (tuples of numbers, e.g. ``9,50,7`` or ``(9, 50.0, 7.0)``)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise argparse.ArgumentTypeError(f"not a Python literal: {text!r}") from e
    return tuple(value) if isinstance(value, (list, tuple)) else value


_OPTION_TYPES = {bool: _parse_bool, int: int, float: float, str: str}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--<field>`` (underscores as dashes) for every :class:`PseudoMaskConfig` field."""
    group = parser.add_argument_group("method parameters (PseudoMaskConfig)")
    types = typing.get_type_hints(PseudoMaskConfig)
    for field in dataclasses.fields(PseudoMaskConfig):
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            dest="cfg_" + field.name,
            metavar=field.name.upper(),
            type=_OPTION_TYPES.get(types[field.name], _parse_literal),
            default=field.default,
            help=f"default: {field.default}",
        )


def config_from_args(args: argparse.Namespace) -> PseudoMaskConfig:
    """The :class:`PseudoMaskConfig` given by the options of :func:`add_config_arguments`."""
    fields = dataclasses.fields(PseudoMaskConfig)
    return PseudoMaskConfig(**{f.name: getattr(args, "cfg_" + f.name) for f in fields})


def config_overrides(cfg: PseudoMaskConfig) -> Dict[str, Any]:
    """The fields of ``cfg`` that differ from their defaults."""
    return {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if getattr(cfg, f.name) != f.default
    }
