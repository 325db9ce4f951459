"""Checkpoint loading that never runs code from the file.

Detectron2's :class:`DetectionCheckpointer` reads ``.pkl`` files (its model zoo, Caffe2/Detectron1
weights) with a plain ``pickle.load``: a ``__reduce__`` payload in such a file runs when it is
given as ``MODEL.WEIGHTS`` or named by ``last_checkpoint``. Here

* ``.pkl`` files go through :class:`RestrictedUnpickler`, which builds only numpy arrays besides
  plain containers, strings and numbers: the content of Detectron2's model-zoo ``.pkl`` files
  (dicts of numpy arrays and strings);
* every other file goes through ``torch.load(weights_only=True)`` (tensors, containers, numbers),
  pycls' ``.pyth`` files too (Detectron2 reads those with a bare ``torch.load``, which runs a
  payload when ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` is set, as torch's own error suggests);

and anything else, or a file that is no checkpoint at all, raises a ``ValueError`` naming the file.
:class:`SafeDetectionCheckpointer` is Detectron2's checkpointer with this loading; weaksup's
trainer, ``train_net.py --eval-only`` and the tools load checkpoints only through it.
"""

import io
import logging
import os
import pickle
from typing import Any, Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = [
    "RestrictedUnpickler",
    "SafeDetectionCheckpointer",
    "UnsafeCheckpointError",
    "load_checkpoint_file",
    "load_trained_model",
]

logger = logging.getLogger(__name__)

# The globals a pickle of numpy arrays refers to (numpy 1.x and 2.x module names); ``_codecs.encode``
# rebuilds ``bytes`` in protocol-2 pickles written by Python 3.
_ALLOWED_GLOBALS = frozenset(
    [
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    ]
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint refers to an object that :class:`RestrictedUnpickler` does not build."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of numpy arrays (``_ALLOWED_GLOBALS``); any
    other global (a function to call, a class to build) raises :class:`UnsafeCheckpointError`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeCheckpointError(
            f"refers to {module}.{name}, which is not a numpy array, string or number"
        )


def _restricted_pickle_load(f) -> Any:
    return RestrictedUnpickler(f, encoding="latin1").load()  # latin1: Python 2 model-zoo files


def load_checkpoint_file(path: str) -> Any:
    """The object stored in the checkpoint ``path``, built without running code from the file.

    ``.pkl``: :class:`RestrictedUnpickler`; anything else: ``torch.load(weights_only=True)`` on the
    CPU. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming ``path`` when
    the file holds other objects or is not a checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        if path.endswith(".pkl"):
            return _restricted_pickle_load(io.BytesIO(data))
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except UnsafeCheckpointError as e:
        raise ValueError(f"{path}: refused to load the checkpoint: it {e}") from e
    except pickle.UnpicklingError as e:  # torch's weights-only refusal, or not a pickle at all
        if "Weights only load failed" in str(e):
            raise ValueError(
                f"{path}: refused to load the checkpoint: it holds objects other than tensors, "
                f"containers, strings and numbers ({str(e).splitlines()[0]})"
            ) from e
        raise ValueError(f"{path}: not a checkpoint file ({e})") from e
    except (RuntimeError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: not a checkpoint file, or a truncated one ({e})") from e


class SafeDetectionCheckpointer(DetectionCheckpointer):
    """:class:`DetectionCheckpointer` whose files are read by :func:`load_checkpoint_file`.

    Loading is otherwise Detectron2's (model-zoo and Caffe2 layouts, name-matching heuristics,
    URL queries); a checkpoint whose content is not a dict raises a ``ValueError`` naming it.
    """

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(".pyth"):
            return _pycls_checkpoint(filename)
        if not filename.endswith(".pkl"):
            return super()._load_file(filename)  # -> _torch_load, then Detectron2's bookkeeping
        data = load_checkpoint_file(filename)
        _check_dict(data, filename)
        if "model" in data and "__author__" in data:  # Detectron2 model-zoo layout
            self.logger.info(f"Reading a file from '{data['__author__']}'")
            return data
        if "blobs" in data:  # Caffe2 / Detectron1 detection models
            data = data["blobs"]
            _check_dict(data, filename)
        data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
        return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}

    def _torch_load(self, f: str) -> Dict[str, Any]:
        data = load_checkpoint_file(f)
        _check_dict(data, f)
        return data


def _pycls_checkpoint(path: str) -> Dict[str, Any]:
    """A pycls ``.pyth`` checkpoint in Detectron2's form (as its ``_load_file`` builds it), read by
    :func:`load_checkpoint_file`."""
    data = load_checkpoint_file(path)
    _check_dict(data, path)
    if not isinstance(data.get("model_state"), dict):
        raise ValueError(f"{path}: not a pycls checkpoint: no 'model_state' dict")
    model = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
    return {"model": model, "__author__": "pycls", "matching_heuristics": True}


def _check_dict(data: Any, path: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a checkpoint: holds a {type(data).__name__}, not a dict")


class _RecordingCheckpointer(SafeDetectionCheckpointer):
    """Records the model parameters a loaded checkpoint did not have (``missing``)."""

    missing: List[str] = []

    def _load_model(self, checkpoint: Dict[str, Any]):
        incompatible = super()._load_model(checkpoint)
        self.missing = list(incompatible.missing_keys) if incompatible is not None else []
        return incompatible


def load_trained_model(model: torch.nn.Module, path: str) -> None:
    """Load the trained checkpoint ``path`` (``MODEL.WEIGHTS``) into ``model`` for inference.

    Raises ``ValueError`` when ``path`` is empty or the checkpoint lacks some of the model's
    parameters (e.g. a run's ``config.yaml`` still names the ImageNet backbone as
    ``MODEL.WEIGHTS``): the model would predict with untrained heads.
    """
    if not path:
        raise ValueError(
            "MODEL.WEIGHTS is empty: the model would predict with untrained weights; give the "
            "trained checkpoint, e.g. MODEL.WEIGHTS output/<run>/model_final.pth"
        )
    checkpointer = _RecordingCheckpointer(model)
    checkpointer.load(path)
    if checkpointer.missing:
        names = ", ".join(checkpointer.missing[:5])
        raise ValueError(
            f"{path}: not a trained checkpoint of this model: it has no values for "
            f"{len(checkpointer.missing)} of its parameters ({names}, ...); give the trained "
            "checkpoint, e.g. MODEL.WEIGHTS output/<run>/model_final.pth"
        )
