"""weaksup: weakly-supervised segmentation components for Detectron2.

``from weaksup import add_weaksup_config`` (or ``load_config``) registers weaksup's datasets,
mappers, models, evaluators, hooks and pipelines with the Detectron2 (and weaksup) registries
(:mod:`weaksup.registration`). ``import weaksup`` alone imports neither torch nor Detectron2, so
the numpy/OpenCV pseudo-label workers (``weaksup.pseudo``) start light.

Layout: a layered foundation (``data``, ``modeling``, ``evaluation``, ``pseudo``, ``engine``)
and one package per method under ``weaksup.methods`` (docs/adding_a_method.md).
"""

import importlib.util

if importlib.util.find_spec("detectron2") is None:  # pragma: no cover - only without Detectron2
    raise ImportError(
        "weaksup needs Detectron2, which is not installed in this environment. Run `bash install.sh` "
        "(installs the pinned build) or follow the official instructions in README.md "
        "(`pip install 'git+https://github.com/facebookresearch/detectron2.git'`)."
    )

__all__ = ["add_weaksup_config", "load_config"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # PEP 562: `from weaksup import add_weaksup_config` imports Detectron2 on first use only.
    if name in __all__:
        from . import config, registration  # noqa: F401

        return getattr(config, name)
    raise AttributeError(f"module 'weaksup' has no attribute {name!r}")
