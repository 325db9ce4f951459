"""weaksup: weakly-supervised segmentation components for Detectron2.

Importing ``weaksup`` registers its datasets, mappers, models, evaluators and hooks with the
Detectron2 (and weaksup) registries.
"""

try:
    import detectron2  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without Detectron2
    raise ImportError(
        "weaksup needs Detectron2, which is not installed in this environment. Run `bash install.sh` "
        "(installs the pinned build) or follow the official instructions in README.md "
        "(`pip install 'git+https://github.com/facebookresearch/detectron2.git'`)."
    ) from e

from . import data, evaluation, modeling, engine  # noqa: F401,E402  (registration side effects)
from .config import add_weaksup_config  # noqa: E402

__all__ = ["add_weaksup_config"]
__version__ = "0.1.0"
