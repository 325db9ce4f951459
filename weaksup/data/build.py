"""Dataset mappers chosen by config (``cfg.WEAKSUP.TRAIN_MAPPER`` / ``TEST_MAPPER``)."""

from typing import Callable

from detectron2.config import CfgNode
from detectron2.data import DatasetMapper
from ..registry import Registry
from .named_errors import NamedImageErrors

MAPPER_REGISTRY = Registry("WEAKSUP_MAPPER")
MAPPER_REGISTRY.__doc__ = """
Dataset mappers. Each registered class is built as ``cls(cfg, is_train)`` (``@configurable``).
"""
MAPPER_REGISTRY.register(DatasetMapper)


def build_mapper(cfg: CfgNode, is_train: bool) -> Callable:
    """Build the train or test mapper named in the config (image errors name the record)."""
    name = cfg.WEAKSUP.TRAIN_MAPPER if is_train else cfg.WEAKSUP.TEST_MAPPER
    return NamedImageErrors(MAPPER_REGISTRY.get(name)(cfg, is_train))
