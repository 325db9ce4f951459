"""DistributedDataParallel wrapping that also works for models on the CPU (gloo)."""

import torch
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

__all__ = ["create_ddp_model"]


def create_ddp_model(
    model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs
) -> torch.nn.Module:
    """Like :func:`detectron2.engine.create_ddp_model`, but CPU-safe.

    Detectron2 always passes ``device_ids=[local_rank]``, which DDP rejects for a CPU model; here
    ``device_ids`` is only set for a CUDA model, so ``--num-gpus N`` on a machine without CUDA runs
    N CPU processes over gloo.
    """
    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs:
        on_cuda = next(model.parameters()).device.type == "cuda"
        kwargs["device_ids"] = [comm.get_local_rank()] if on_cuda else None
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp
