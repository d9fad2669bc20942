"""Activation (gradient) checkpointing (`train.activation_checkpointing`): each transformer block keeps only
its input in the forward pass and runs again in backward to rebuild what its gradient needs, trading about
one more forward per step for activation memory that no longer grows with the number of blocks.

It is transformers' own (`activation_checkpointing_enable`, non-reentrant `torch.utils.checkpoint`), set on
every Hugging Face model the stage trains: the model itself, the base model under a LoRA (PEFT) wrapper, or
each model of a container (PPO's policy and value model). It is applied before FSDP sharding; transformers
checkpoints a block's `forward`, inside FSDP2's hooks, so a block's weights are gathered once per pass and
the recomputation happens where backward gathers them again. The recomputed forward replays the dropout
stream (the RNG state is saved with the block's input), so losses and gradients equal those of a run
without it. It only acts in training mode with gradients on: evaluation and generation (PPO's rollouts,
KV cache included) run as before.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn
from transformers import PreTrainedModel


def enable_activation_checkpointing(model: nn.Module) -> list[PreTrainedModel]:
    """Turn checkpointing on for every Hugging Face model in `model`; returns them. A model without it, or
    a `model` holding none, is an error naming the class."""
    found = list(_hf_models(model))
    if not found:
        what = type(model).__name__
        raise ValueError(f"train.activation_checkpointing: {what} holds no transformers model to checkpoint")
    for hf_model in found:
        if not hf_model.supports_gradient_checkpointing:
            raise ValueError(
                f"train.activation_checkpointing: {type(hf_model).__name__} does not support activation "
                "checkpointing; set it to false"
            )
        hf_model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return found


def _hf_models(module: nn.Module) -> Iterator[PreTrainedModel]:
    """The outermost PreTrainedModels in `module` (itself, or under wrappers and containers)."""
    if isinstance(module, PreTrainedModel):
        yield module
        return
    for child in module.children():
        yield from _hf_models(child)
