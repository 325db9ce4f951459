"""Registers every weaksup component: the one place that imports all of them.

Importing this module imports the foundation packages (whose modules register the shared
datasets, mappers, mask sources, backbones, heads, evaluators and hooks) and every module of each
method of :data:`weaksup.methods.METHODS` (meta-architectures, heads, mappers, datasets, hooks,
pipelines), as PointRend's ``from . import roi_heads as _`` does. :func:`weaksup.config.
add_weaksup_config` imports it first, so a config that names a weaksup component can be used
right away. Nothing inside weaksup imports this module at import time.
"""

import importlib
import pkgutil

from . import data, engine, evaluation, modeling  # noqa: F401  (foundation)
from .methods import METHODS

for _package in METHODS:
    _path = importlib.import_module(f"{__package__}.methods.{_package}").__path__
    for _module in pkgutil.iter_modules(_path):
        importlib.import_module(f"{__package__}.methods.{_package}.{_module.name}")
