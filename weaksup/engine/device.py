"""Choosing the device (and CPU threads) the machine actually has."""

import logging
import os

import torch
from detectron2.config import CfgNode
from detectron2.utils import comm

__all__ = ["resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(cfg: CfgNode) -> str:
    """Point ``cfg.MODEL.DEVICE`` at what this machine has, and log the choice.

    A CUDA device that CUDA cannot serve (no GPU visible, or a driver too old for the CUDA build
    of torch): a single process falls back to the CPU with a WARNING (the CPU demos rely on it);
    a job of several processes stops with a ``RuntimeError`` naming CUDA and the driver, rather
    than train N CPU processes on a GPU machine (``MODEL.DEVICE cpu`` asks for that on purpose).
    On the CPU, the cores are split between the local worker processes (``--num-gpus N`` runs N
    CPU processes), so they do not oversubscribe the machine, unless ``OMP_NUM_THREADS`` is set
    (then torch's count is kept).

    Returns:
        the device now in ``cfg.MODEL.DEVICE``.
    """
    requested = cfg.MODEL.DEVICE
    if requested.startswith("cuda") and not torch.cuda.is_available():
        why = (
            f"MODEL.DEVICE={requested!r} but CUDA is not available to torch {torch.__version__} "
            f"(built for CUDA {torch.version.cuda}): no GPU visible (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}) or an NVIDIA driver too old "
            "for that CUDA version (nvidia-smi shows the driver's)"
        )
        if comm.get_world_size() > 1:
            raise RuntimeError(
                f"{why}; a job of {comm.get_world_size()} processes stops here. Fix the driver or "
                "the torch build, or set MODEL.DEVICE cpu to run CPU processes on purpose"
            )
        cfg.MODEL.DEVICE = "cpu"
        logger.warning(f"{why}: training on the CPU")
    else:
        logger.info(f"MODEL.DEVICE={cfg.MODEL.DEVICE!r}")
    if cfg.MODEL.DEVICE == "cpu" and os.environ.get("OMP_NUM_THREADS"):
        # the user's choice (e.g. OMP_NUM_THREADS=1 on a shared machine, where threads that wait
        # on each other's cores make a step many times slower)
        logger.info(
            f"CPU training: {torch.get_num_threads()} thread(s) per process (OMP_NUM_THREADS)"
        )
    elif cfg.MODEL.DEVICE == "cpu":
        threads = max(1, (os.cpu_count() or 1) // max(comm.get_local_size(), 1))
        torch.set_num_threads(threads)
        logger.info(f"CPU training: {threads} thread(s) per process")
    return cfg.MODEL.DEVICE
