"""weaksup: weakly-supervised segmentation components for Detectron2.

``weaksup.add_weaksup_config`` (and importing ``weaksup.data``, ``.modeling``, ``.evaluation`` or
``.engine``) registers weaksup's datasets, mappers, models, evaluators and hooks with the Detectron2
(and weaksup) registries. ``import weaksup`` alone imports neither torch nor Detectron2, so the
numpy/OpenCV pseudo-label workers (``weaksup.pseudo``) start light.
"""

import importlib.util

if importlib.util.find_spec("detectron2") is None:  # pragma: no cover - only without Detectron2
    raise ImportError(
        "weaksup needs Detectron2, which is not installed in this environment. Run `bash install.sh` "
        "(installs the pinned build) or follow the official instructions in README.md "
        "(`pip install 'git+https://github.com/facebookresearch/detectron2.git'`)."
    )

__all__ = ["add_weaksup_config"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # PEP 562: `from weaksup import add_weaksup_config` imports the Detectron2 side on first use.
    if name == "add_weaksup_config":
        from .config import add_weaksup_config

        return add_weaksup_config
    raise AttributeError(f"module 'weaksup' has no attribute {name!r}")
