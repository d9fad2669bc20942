"""Where PPO's rollouts are sampled (`ppo.rollout_engine`): `LocalEngine`, the policy itself on
`generation.engine` (the default, the CPU path), or `VllmEngine`, a vLLM engine in this process that
holds a copy of the policy's weights (GPU only, the optional `vllm` extra).

An engine answers `generate(prompt_ids, sampling, chunk, seed)` with one `Generation` per prompt (the
sampled token ids, eos or stop-string tokens included; the text without them; the finish reason), as
`rollout.sample` does. The vLLM engine is built once from the starting policy, written with
`models.save_model` (LoRA merged) into a temporary folder, and before every rollout the policy's current
weights (`hf_weights`: Hugging Face names, LoRA merged into a new tensor, the model left untouched) are
loaded into it, as TRL's colocated vLLM mode and OpenRLHF do. Its samples come from the same distribution
as the local ones but not the same draws (both seed prompt i with (seed, i), but vLLM runs in bf16 with
its own kernels and sampler); π_old is still computed by the policy itself when the rollout is scored
(rollout.score).
No GPU has run `VllmEngine` yet: the weight push and the option translation are unit-tested against
stand-ins, the engine itself only by benchmarks/gpu_smoke.sh on a GPU machine.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from torch import Tensor, nn

from instructgpt.config import PPOConfig, SamplingOptions
from instructgpt.generation.sampling import FinishReason, Generation, check_options, end_token_ids
from instructgpt.models import save_model
from instructgpt.train.rollout import PPOModels, derived_seed, sample
from instructgpt.train.sharding import refresh


class RolloutEngine(Protocol):
    def generate(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingOptions,
        chunk: int,
        seed: int,
        first_chunk: int = 0,
    ) -> list[Generation]: ...


@dataclasses.dataclass
class LocalEngine:
    """The policy samples its own answers (`rollout.sample`: `chunk` prompts at a time on one engine,
    prompt i seeded with (seed, i)); under FSDP through `sampler`, a whole copy of the sharded policy
    refreshed first."""

    policy: nn.Module
    tokenizer: Any
    sampler: nn.Module | None = None

    def generate(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingOptions,
        chunk: int,
        seed: int,
        first_chunk: int = 0,
    ) -> list[Generation]:
        if self.sampler is not None:
            refresh(self.sampler, self.policy)
        model = self.sampler or self.policy
        return sample(model, self.tokenizer, prompt_ids, sampling, chunk, seed, first_chunk)


def check_engine(config: PPOConfig) -> None:
    """Raise ValueError when `rollout_engine` cannot run here: vLLM not installed, or no CUDA device."""
    if config.rollout_engine != "vllm":
        return
    if not vllm_installed():
        raise ValueError(
            "ppo: rollout_engine=vllm needs the vllm package, which is not installed: "
            "pip install 'instructgpt[vllm]' on a machine with a CUDA GPU, or set rollout_engine=local"
        )
    if not torch.cuda.is_available():
        raise ValueError(
            "ppo: rollout_engine=vllm needs a CUDA GPU and none is visible; set rollout_engine=local"
        )


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def open_engine(config: PPOConfig, models: PPOModels) -> RolloutEngine:
    """The engine `config.rollout_engine` names, for the models' policy (`check_engine` has passed)."""
    if config.rollout_engine == "vllm":
        return VllmEngine(models.policy, models.tokenizer, config)
    return LocalEngine(models.policy, models.tokenizer, models.sampler)


def hf_weights(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """(name, tensor) of every weight of `model` under the names of its saved Hugging Face checkpoint;
    a LoRA model's adapted weights are base + the adapter's delta (new tensors: `model` is unchanged),
    its adapter weights left out. Sharded (DTensor) weights are gathered whole (a collective)."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    deltas = {}
    if isinstance(model, PeftModel):
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer) and module.active_adapters:
                delta = sum(module.get_delta_weight(a) for a in module.active_adapters)
                deltas[f"{name}.weight"] = _whole(delta)
    for name, tensor in base.state_dict().items():
        if ".lora_" in name:
            continue
        name, tensor = name.replace(".base_layer.", "."), _whole(tensor)
        yield name, (tensor + deltas[name].to(tensor.dtype)) if name in deltas else tensor


def _whole(tensor: Tensor) -> Tensor:
    """A sharded DTensor gathered into a plain tensor (a collective); any other tensor as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


class VllmEngine:
    """A vLLM engine in this process (`external_launcher`, so its model is reachable for weight loads)
    sampling with the PPO sampling options; every `generate` first loads the policy's current weights."""

    def __init__(self, policy: nn.Module, tokenizer: Any, config: PPOConfig) -> None:
        from vllm import LLM  # the optional extra, imported only when chosen

        _launcher_environment()
        self.policy, self.tokenizer = policy, tokenizer
        self.eos = end_token_ids(policy, tokenizer)
        with tempfile.TemporaryDirectory(prefix="instructgpt-vllm-") as folder:
            save_model(policy, tokenizer, Path(folder) / "policy")
            self.llm = LLM(
                model=str(Path(folder) / "policy"),
                dtype="bfloat16",
                max_model_len=config.model.max_length,
                gpu_memory_utilization=config.vllm_gpu_memory,
                distributed_executor_backend="external_launcher",
                seed=config.train.seed,
            )

    def generate(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingOptions,
        chunk: int,
        seed: int,
        first_chunk: int = 0,
    ) -> list[Generation]:
        """All prompts in one call (vLLM batches them itself; `chunk` is the local path's); prompt i is
        seeded with (seed, i), i counted over the whole step's prompts (from `first_chunk` × `chunk`)."""
        from vllm import SamplingParams

        check_options(sampling)
        self.push_weights()
        params = [
            SamplingParams(
                **vllm_sampling(sampling, self.eos), seed=derived_seed(seed, first_chunk * chunk + i)
            )
            for i in range(len(prompt_ids))
        ]
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [as_generation(out.outputs[0]) for out in outputs]

    @torch.no_grad()
    def push_weights(self) -> None:
        """Load the policy's current weights into the engine's model and drop its prefix cache (LoRA
        deltas in full precision even inside the training's autocast)."""
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            model.load_weights(weights=hf_weights(self.policy))
        self.llm.reset_prefix_cache()


def vllm_sampling(options: SamplingOptions, eos: list[int]) -> dict[str, Any]:
    """vLLM `SamplingParams` arguments meaning what `options` mean to `generation.generate`."""
    return {
        "n": 1,
        "max_tokens": options.max_new_tokens,
        "temperature": options.temperature,  # 0: greedy in both
        "top_p": options.top_p,
        "top_k": options.top_k,  # 0: off in both (vLLM ≥ 0.22, as TRL passes it)
        "repetition_penalty": options.repetition_penalty,  # the same CTRL/HF rule
        "stop": list(options.stop),
        "stop_token_ids": list(eos),
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
    }


def as_generation(output: Any) -> Generation:
    """A vLLM CompletionOutput as a `Generation`: a stop on a token id is "eos", on a string "stop"."""
    reason: FinishReason = "length"
    if output.finish_reason == "stop":
        reason = "stop" if isinstance(output.stop_reason, str) else "eos"
    return Generation(output.text, list(output.token_ids), reason)


def _launcher_environment() -> None:
    """`external_launcher` reads torchrun's variables: a single process without them is rank 0 of 1."""
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
