"""This process's place in a multi-process job, and the collectives training and evaluation use.

Plain `torch.distributed`, no DDP wrapper and no Accelerator. The launcher (`torchrun`, or `accelerate
launch` with a multi-process config: both set RANK / WORLD_SIZE / MASTER_ADDR) starts N copies of the
same command; `init_distributed` joins them (gloo on CPU, nccl on GPU). With one process every
collective here is skipped. `stage_process` wraps a whole stage run (training or evaluation): joined to
the job, with the stage's torch threads, both put back afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from instructgpt.allocator import retain_freed_memory


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; `world == 1` is the plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # we initialised the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> Dist:
    """Join the job the launcher started (env RANK/WORLD_SIZE), or describe the single process.

    `device`: "cpu", "cuda"; None picks cuda when available. Each process uses cuda:LOCAL_RANK.
    """
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world == 1:
        return Dist(device=dev)
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    rank = torch.distributed.get_rank()
    return Dist(rank, torch.distributed.get_world_size(), local_rank, dev, owns)


def close_distributed(dist: Dist) -> None:
    if dist.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch.distributed.barrier()


def all_reduce_sum(value: torch.Tensor, dist: Dist) -> torch.Tensor:
    """The sum of `value` over processes (a new tensor; `value` itself is left alone)."""
    value = value.detach().clone()
    if dist.world > 1:
        torch.distributed.all_reduce(value)
    return value


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 manages the model's parameters (train.fsdp; see sharding.py)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def broadcast_parameters(model: nn.Module, dist: Dist) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if dist.world > 1:
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)


def sync_gradients(model: nn.Module, dist: Dist, bucket_bytes: int = 2**25) -> None:
    """Sum gradients over processes, in flat buckets of one dtype (a parameter without grad counts 0)."""
    if dist.world == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:  # every process must send the same list of tensors
            p.grad = torch.zeros_like(p)
    for bucket in _buckets([p.grad for p in params], bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        torch.distributed.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def _buckets(tensors: Sequence[torch.Tensor], bucket_bytes: int) -> Iterator[list[torch.Tensor]]:
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for t in group:
            bucket.append(t)
            size += t.numel() * t.element_size()
            if size >= bucket_bytes:
                yield bucket
                bucket, size = [], 0
        if bucket:
            yield bucket


@contextmanager
def stage_process(threads: int) -> Iterator[Dist]:
    """A stage's process for the duration of a run: joined to the job (if launched as one) and with
    `threads` torch threads (0 keeps torch's default); both are put back afterwards. Freed host memory
    is kept for reuse from here on (`allocator.retain_freed_memory`)."""
    retain_freed_memory()
    dist, before = init_distributed(), torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield dist
    finally:
        torch.set_num_threads(before)
        close_distributed(dist)
