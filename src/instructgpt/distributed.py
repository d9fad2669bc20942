"""This process's place in a multi-process job, the collectives training and evaluation use, and the
data-parallel wrapper of a trained model.

The launcher (`torchrun`, or `accelerate launch` with a multi-process config: both set RANK / WORLD_SIZE /
MASTER_ADDR) starts N copies of the same command; `init_distributed` joins them (gloo on CPU, nccl on
GPU). With one process every collective here is skipped and nothing is wrapped. A replicated model
trains through `data_parallel`: PyTorch's DistributedDataParallel (gradients all-reduced in buckets while
backward runs) with a comm hook that *sums* them, which is what the loops' loss convention needs (see
train/loop.py). `stage_process` wraps a whole stage run (training or evaluation): joined to the job, with
the stage's torch threads, both put back afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from instructgpt.allocator import tune_malloc
from instructgpt.threads import contention, cpu_pressure, stage_threads, usable_cores


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


def share_of(count: torch.Tensor, dist: Dist) -> float:
    """This process's `count` over all processes' (exactly 1.0 with one process)."""
    return float(count) / float(all_reduce_sum(count, dist))


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 manages the model's parameters, or those of a part of it (PPO's policy and value in
    one ModuleDict): train.fsdp, see sharding.py."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(module, FSDPModule) for module in model.modules())


def broadcast_parameters(model: nn.Module, dist: Dist) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if dist.world > 1:
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)


class DataParallel(DistributedDataParallel):
    """DistributedDataParallel whose gradients are *summed* over processes (DDP averages), and which
    answers for the module it wraps: `config`, `get_base_model`, a head, ... are the module's, so the
    helpers that take a model (`sequences.target_scores`, ...) take the wrapper as they are."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not set yet (a copy being built): no recursion
                raise
            return getattr(self.module, name)


def data_parallel(model: nn.Module, dist: Dist) -> DataParallel:
    """`model` (identical on every process) under DDP: its gradients are summed over processes in buckets
    while backward runs. Only a forward through the wrapper syncs; its `no_sync()` keeps them local."""
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    wrapped = DataParallel(model, device_ids=ids)
    wrapped.register_comm_hook(None, _summed)
    return wrapped


def _summed(group, bucket):  # type: ignore[no-untyped-def]
    """The comm hook (group: the process group, bucket: a torch.distributed.GradBucket) → a future of the
    bucket's tensor: a plain SUM all-reduce (the default hook divides by the world size). Unannotated:
    DDP checks the hook's annotations, which `from __future__ import annotations` turns into strings."""
    work = torch.distributed.all_reduce(bucket.buffer(), group=group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


@contextmanager
def stage_process(threads: int) -> Iterator[Dist]:
    """A stage's process for the duration of a run: joined to the job (if launched as one) and with
    `threads` torch threads (0: OMP_NUM_THREADS, else the cores this process may use, see threads.py);
    both are put back afterwards. When other jobs already fill the cores, the main process warns once
    with the fix. From here on malloc runs in INSTRUCTGPT_MALLOC's mode (`allocator.tune_malloc`)."""
    tune_malloc()
    dist, before = init_distributed(), torch.get_num_threads()
    cores = usable_cores()
    torch.set_num_threads(stage_threads(threads, cores=cores))
    warning = contention(os.getloadavg()[0], cores, torch.get_num_threads(), cpu_pressure())
    if warning and dist.main:
        print(warning, file=sys.stderr)
    try:
        yield dist
    finally:
        torch.set_num_threads(before)
        close_distributed(dist)
