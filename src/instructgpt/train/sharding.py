"""Sharded data parallelism (`train.fsdp=true`): weights, gradients and optimizer state split over the
processes with PyTorch FSDP2 (`fully_shard`), instead of a full replica on each.

Each transformer block (the model's `_no_split_modules` classes) becomes one FSDP unit, then the whole
model: a block's weights are all-gathered just before it runs and freed after, and its gradients are
reduce-scattered in backward. The reduce-scatter *sums* (divide factor 1), as the DDP of an unsharded
run does (distributed.data_parallel), so the loss scaling of the stage loops stays right and a sharded
run equals one process with the same global batch. Checkpoints hold full, unsharded state gathered on
the main process (the same files as an unsharded run, so either can resume the other), and the saved
model is a plain HF folder.

Launch it with `train.fsdp=true` under torchrun, or with `accelerate launch` and an FSDP config
(recipes/accelerate/fsdp.yaml: `ACCELERATE_USE_FSDP` turns it on; `fsdp_reshard_after_forward: false`
keeps gathered weights until backward, ZeRO-2-like; the default frees them, ZeRO-3-like).

Every function here is a collective when the model is sharded: all processes must call it, in step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from instructgpt.distributed import Dist, is_sharded
from instructgpt.train.launch_env import check_launch_env

T = TypeVar("T")


def sharding_requested(fsdp: bool) -> bool:
    """`train.fsdp`, or an `accelerate launch` FSDP config. A launch option that cannot be honoured
    (DeepSpeed, offloading, ...: launch_env.REFUSED) is refused, not silently run replicated."""
    check_launch_env()
    return fsdp or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


def shard_model(model: nn.Module, dist: Dist) -> nn.Module:
    """Apply FSDP2 in place: one unit per transformer block, then the root. Needs 2+ processes."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if dist.world < 2:
        raise ValueError(
            "train.fsdp=true shards the model over processes: launch with torchrun or accelerate launch "
            "and 2 or more processes (one process keeps the whole model anyway)"
        )
    mesh = init_device_mesh(dist.device.type, (dist.world,))
    reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() != "false"
    blocks = _block_classes(model)
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # sum over processes; the loops divide by the global count
            module.set_force_sum_reduction_for_comms(True)  # plain SUM collectives (gloo has no PREMUL_SUM)
    return model


def _block_classes(model: nn.Module) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    if not names:
        raise ValueError(f"{type(base).__name__} names no transformer block class (_no_split_modules)")
    return names


def _options(model: nn.Module, **extra: bool) -> StateDictOptions:
    sharded = is_sharded(model)
    return StateDictOptions(full_state_dict=sharded, cpu_offload=sharded, **extra)


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's full state dict (on the main process; {} on the others when sharded)."""
    return get_model_state_dict(model, options=_options(model))


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's full state, keyed by parameter name (so it does not depend on sharding)."""
    return get_optimizer_state_dict(model, optimizer, options=_options(model))


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict; a sharded model keeps only its own shard of each tensor."""
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=is_sharded(model)))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    set_optimizer_state_dict(
        model, optimizer, state, options=StateDictOptions(full_state_dict=is_sharded(model))
    )


def gathered(model: nn.Module, dist: Dist) -> nn.Module | None:
    """An unsharded copy of a sharded model on the main process (None elsewhere), for `save_model`;
    an unsharded model is returned as it is (on the main process). A ModuleDict (PPO's policy and value)
    gives a ModuleDict of its parts' copies."""
    if not is_sharded(model):
        return model if dist.main else None
    if isinstance(model, nn.ModuleDict):
        parts = {name: gathered(part, dist) for name, part in model.items()}
        return nn.ModuleDict(parts) if dist.main else None
    state = model_state(model)
    if not dist.main:
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    copy = type(base)(base.config).to(dtype=next(iter(state.values())).dtype)
    if hasattr(model, "peft_config"):
        from peft import get_peft_model

        copy = get_peft_model(copy, model.peft_config["default"])
    copy.load_state_dict(state)
    return copy


def refresh(copy: nn.Module, model: nn.Module) -> None:
    """Load the full weights of the sharded `model` into `copy`, an unsharded model of the same structure,
    on every process (PPO samples its rollouts with such a copy of the sharded policy)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=False)  # every process gets all of it
    copy.load_state_dict(get_model_state_dict(model, options=options))


def in_lockstep(items: Sequence[T], dist: Dist, sharded: bool) -> Iterator[tuple[T, bool]]:
    """This process's share of `items` (r, r + world, ...) as (item, counts) pairs. A sharded forward is a
    collective, so every process must run as many: short ones repeat item 0 with counts=False."""
    mine = list(items[dist.rank :: dist.world])
    yield from ((item, True) for item in mine)
    if sharded and items:
        for _ in range(math.ceil(len(items) / dist.world) - len(mine)):
            yield items[0], False
