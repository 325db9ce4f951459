"""Datasets, mappers and mask sources shared by weaksup's methods."""

from . import datasets  # noqa: F401  (registers the builtin datasets and their views)
from .box_supervised_mapper import BoxSupervisedDatasetMapper
from .build import MAPPER_REGISTRY, build_mapper
from .mask_sources import MASK_SOURCE_REGISTRY, build_mask_source

__all__ = [
    "BoxSupervisedDatasetMapper",
    "MAPPER_REGISTRY",
    "MASK_SOURCE_REGISTRY",
    "build_mapper",
    "build_mask_source",
]
