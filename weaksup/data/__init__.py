"""Datasets, mappers and mask sources of weaksup."""
from . import datasets  # noqa: F401  (registers the builtin datasets)
from .build import MAPPER_REGISTRY, build_mapper

__all__ = ["MAPPER_REGISTRY", "build_mapper"]
