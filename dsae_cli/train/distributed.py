"""Multi-process training under ``torchrun``: the process group, and the few collectives the loop needs.

Run:  torchrun --nproc_per_node=N -m dsae_cli train --data sprites --out runs/ddp ...

torchrun starts N copies of the command with RANK, WORLD_SIZE and LOCAL_RANK in the environment.
Each copy joins one process group (gloo on CPU, nccl on CUDA), holds a full replica of the model
wrapped in DistributedDataParallel (gradients are averaged across processes in the backward pass),
and takes its own slice of every global batch. Rank 0 alone writes files and prints.

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) everything here is a no-op, so the
single-process path is exactly the plain training loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dsae_cli.errors import DsaeError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0  # this process's index among all processes (RANK)
    world_size: int = 1  # how many processes train together (WORLD_SIZE)
    local_rank: int = 0  # this process's index on its machine (LOCAL_RANK): which GPU it uses

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def env_info() -> DistInfo:
    """What torchrun put in the environment (a single process when it put nothing)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise DsaeError("RANK / WORLD_SIZE / LOCAL_RANK must be whole numbers; start multi-process runs with torchrun") from None
    if world < 1 or not 0 <= rank < world:
        raise DsaeError(f"RANK {rank} does not fit WORLD_SIZE {world}; start multi-process runs with torchrun")
    return DistInfo(rank, world, local)


def init(device: str) -> DistInfo:
    """Join the torchrun process group (if any) on the backend that suits ``device``."""
    info = env_info()
    if not info.enabled:
        return info
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise DsaeError("this PyTorch build has no torch.distributed; train with one process (plain `dsae train`)")
    if device.startswith("cuda"):
        if info.local_rank >= torch.cuda.device_count():
            raise DsaeError(
                f"process {info.rank} wants GPU {info.local_rank} but only {torch.cuda.device_count()} are visible; "
                "use --nproc_per_node at most the number of GPUs"
            )
        torch.cuda.set_device(info.local_rank)
        backend = "nccl"
    elif device == "cpu":
        backend = "gloo"
    else:
        raise DsaeError(f"multi-process training runs on --device cpu or cuda, not {device}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return info


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def local_device(device: str, info: DistInfo) -> str:
    """``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``) when several processes share a machine."""
    if device == "cuda" and info.enabled:
        return f"cuda:{info.local_rank}"
    return device


def all_reduce(values, info: DistInfo, op: str = "sum"):
    """Element-wise sum or max of a 1-d float tensor over all processes (the tensor itself when alone)."""
    if not info.enabled:
        return values
    import torch.distributed as dist

    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return out


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` when alone."""
    if not info.enabled:
        return [obj]
    import torch.distributed as dist

    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
