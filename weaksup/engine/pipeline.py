"""Multi-stage pipelines chosen by config (``cfg.WEAKSUP.PIPELINE``), run by ``train_net.py``."""

from ..registry import Registry

__all__ = ["PIPELINE_REGISTRY"]

PIPELINE_REGISTRY = Registry("WEAKSUP_PIPELINE")
PIPELINE_REGISTRY.__doc__ = """
Pipelines for ``cfg.WEAKSUP.PIPELINE``. Each registered object is called as ``obj(cfg, args)`` in
every process launched by ``train_net.py`` (``args``: its parsed command line) and returns what
``main`` returns (e.g. the final evaluation results). A pipeline runs one or several training /
generation stages, each skipped when its result exists and resumed when it was interrupted.
"""
