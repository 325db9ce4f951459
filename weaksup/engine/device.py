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

    A CUDA device falls back to the CPU when CUDA is not available. On the CPU, the cores are split
    between the local worker processes (``--num-gpus N`` runs N CPU processes), so they do not
    oversubscribe the machine.

    Returns:
        the device now in ``cfg.MODEL.DEVICE``.
    """
    requested = cfg.MODEL.DEVICE
    if requested.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
        logger.info(f"MODEL.DEVICE={requested!r} requested but CUDA is not available: using CPU")
    else:
        logger.info(f"MODEL.DEVICE={cfg.MODEL.DEVICE!r}")
    if cfg.MODEL.DEVICE == "cpu":
        threads = max(1, (os.cpu_count() or 1) // max(comm.get_local_size(), 1))
        torch.set_num_threads(threads)
        logger.info(f"CPU training: {threads} thread(s) per process")
    return cfg.MODEL.DEVICE
