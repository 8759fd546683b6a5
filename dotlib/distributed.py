"""Process groups for data-parallel runs (``torchrun``, ``accelerate launch``): start, query, end.

Why the two imports below come first. ``torch.distributed.nn.functional`` and FSDP's
``sharded_grad_scaler`` bind ``torch.distributed.group.WORLD`` as a default argument when
they are imported. diffusers and torchvision import them (through ``torch._dynamo``), often
after the group exists (a VAE is loaded once the run has started). The default group is
then referenced from those function defaults, ``destroy_process_group`` cannot free it, and
gloo's worker threads are still alive during interpreter shutdown: one of them freeing its
last finished collective needs the GIL and the process dies with ``terminate called without
an active exception`` (SIGABRT). Seen as a flaky two-process test (about 1 run in 10 on a
loaded 2-core machine). Imported here, before any group exists, they bind ``None``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.distributed.fsdp.sharded_grad_scaler  # noqa: F401  (see the module notes)
import torch.distributed.nn.functional  # noqa: F401  (see the module notes)

from .validate import check_device

__all__ = ["end_processes", "is_distributed", "start_processes"]


def start_processes(device: str) -> tuple[int, int, torch.device]:
    """``(rank, world size, this process's device)``; starts the group when launched with ``WORLD_SIZE`` > 1.

    CUDA devices get NCCL and ``cuda:<LOCAL_RANK>``; CPUs get gloo. A single process starts no group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if device.startswith("cuda") and world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, check_device(f"cuda:{local}")
    return rank, world, check_device(device)


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def end_processes() -> None:
    """Wait for every process, then destroy the group (its worker threads end here, not at exit)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
