"""Datasets, mappers and mask sources of weaksup."""

from . import datasets  # noqa: F401  (registers the builtin datasets)
from .boxcaseg import (
    BoxCasegPatchMapper,
    BoxCasegTestMapper,
    MixedBatchSampler,
    build_boxcaseg_train_loader,
)
from . import mask_subset  # noqa: F401  (registers the mask-subset views, DASNet)
from . import wei_demo  # noqa: F401  (registers the Wei et al. CPU demo datasets)
from . import boxsup_demo  # noqa: F401  (registers the BoxSup nuts demo's val view)
from .box_supervised_mapper import BoxSupervisedDatasetMapper
from .build import MAPPER_REGISTRY, build_mapper
from .mask_sources import MASK_SOURCE_REGISTRY, build_mask_source
from .wei_mappers import ImageLabelDatasetMapper, LocalizationMapDatasetMapper

__all__ = [
    "BoxCasegPatchMapper",
    "BoxCasegTestMapper",
    "MixedBatchSampler",
    "build_boxcaseg_train_loader",
    "BoxSupervisedDatasetMapper",
    "MAPPER_REGISTRY",
    "MASK_SOURCE_REGISTRY",
    "build_mapper",
    "build_mask_source",
    "ImageLabelDatasetMapper",
    "LocalizationMapDatasetMapper",
]
