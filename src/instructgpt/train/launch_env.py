"""What `accelerate launch` asked of this process, checked once per training run: every option it passes
(as ACCELERATE_* and FSDP_* environment variables, accelerate/utils/launch.py) is honoured or refused with
a message, never silently ignored.

Honoured: the processes and their rendezvous (torch.distributed reads them), ACCELERATE_MIXED_PRECISION
no/bf16/fp16 (train.mixed_precision=auto, precision.py), ACCELERATE_USE_FSDP with FSDP_RESHARD_AFTER_FORWARD
(sharding.py: FSDP2, whatever FSDP_VERSION says), ACCELERATE_USE_CPU (on a machine without a GPU).
Without effect on the result, and not read: debug mode, CPU affinity, FSDP prefetching, wrapping policy
and loading options (instructgpt wraps each transformer block itself). Refused (`REFUSED`): DeepSpeed,
Megatron-LM, tensor/context parallelism, fp8, torch.compile (dynamo), accelerate's own gradient
accumulation and clipping (train.grad_accum, train.max_grad_norm), FSDP parameter offloading, FSDP
activation checkpointing, sharded state dicts, NO_SHARD and HYBRID_SHARD, and use_cpu on a GPU machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch

Rule = tuple[str, Callable[[str], bool], str]


def _true(value: str) -> bool:
    return value.lower() in ("true", "1", "yes")


def _set(value: str) -> bool:
    return value != ""


def _cpu_on_gpu_machine(value: str) -> bool:
    return _true(value) and torch.cuda.is_available()


# (variable, whether its value is refused, why and what to do instead)
REFUSED: tuple[Rule, ...] = (
    ("ACCELERATE_USE_DEEPSPEED", _true,
     "a DeepSpeed config: instructgpt does not run DeepSpeed; its ZeRO-3 sharding is FSDP here: use "
     "recipes/accelerate/fsdp.yaml or train.fsdp=true"),
    ("ACCELERATE_USE_MEGATRON_LM", _true,
     "a Megatron-LM config: tensor/pipeline parallelism is not supported"),
    ("ACCELERATE_USE_PARALLELISM_CONFIG", _true,
     "a parallelism config (tensor or context parallelism): not supported; shard with FSDP "
     "(recipes/accelerate/fsdp.yaml)"),
    ("ACCELERATE_MIXED_PRECISION", lambda v: v.lower() == "fp8",
     "--mixed_precision fp8: not supported; use bf16 or fp16"),
    ("ACCELERATE_DYNAMO_BACKEND", lambda v: v.upper() not in ("", "NO"),
     "--dynamo_backend: torch.compile is not applied by instructgpt; launch with --dynamo_backend no"),
    ("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", _set,
     "--gradient_accumulation_steps: set train.grad_accum instead (and drop it from the launch)"),
    ("ACCELERATE_GRADIENT_CLIPPING", _set,
     "--gradient_clipping: set train.max_grad_norm instead (and drop it from the launch)"),
    ("FSDP_OFFLOAD_PARAMS", _true, "fsdp_offload_params: CPU offloading is not supported; set it to false"),
    ("FSDP_ACTIVATION_CHECKPOINTING", _true,
     "fsdp_activation_checkpointing: set train.activation_checkpointing=true instead (and false here)"),
    ("FSDP_STATE_DICT_TYPE", lambda v: v.upper() == "SHARDED_STATE_DICT",
     "fsdp_state_dict_type SHARDED_STATE_DICT: checkpoints hold full state dicts; use FULL_STATE_DICT"),
    ("FSDP_SHARDING_STRATEGY", lambda v: v.upper() in ("NO_SHARD", "HYBRID_SHARD", "_HYBRID_SHARD_ZERO2"),
     "fsdp_sharding_strategy: only FULL_SHARD and SHARD_GRAD_OP (fsdp_reshard_after_forward) are "
     "supported; for no sharding launch without FSDP (recipes/accelerate/multi_process.yaml)"),
    ("ACCELERATE_USE_CPU", _cpu_on_gpu_machine,
     "--cpu on a machine with a GPU: instructgpt would use the GPU; hide it with CUDA_VISIBLE_DEVICES= "
     "instead"),
)  # fmt: skip


def check_launch_env(env: Mapping[str, str] | None = None) -> None:
    """Raise ValueError naming the first accelerate option in `env` (default: os.environ) that a training
    run cannot honour."""
    env = os.environ if env is None else env
    for name, refused, why in REFUSED:
        value = env.get(name, "")
        if value and refused(value):
            raise ValueError(f"accelerate launch with {name}={value}: {why}")


def launched_mixed_precision(env: Mapping[str, str] | None = None) -> str:
    """accelerate launch's --mixed_precision (no, bf16, fp16), or "no" when not launched by accelerate."""
    env = os.environ if env is None else env
    return env.get("ACCELERATE_MIXED_PRECISION", "no").lower() or "no"
