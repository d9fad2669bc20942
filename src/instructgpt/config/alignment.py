"""Configs of the alignment stages: `reward` (with the reward's normalisation), `score`, `dpo` and `ppo`
(with its KL penalty).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from instructgpt.config.common import (
    Decontamination,
    LoopOptions,
    LoraOptions,
    ModelOptions,
    SamplingOptions,
    TrainOptions,
)
from instructgpt.config.typed import above, at_least, between, deprecated, fraction, option


def _ties_option(unit: str) -> Any:
    """`ties`, the same for reward and dpo; `unit` is what a stage trains on."""
    return option(
        "drop",
        "Responses a ranking ties (a Comparison's `tiers`, or `meta.tiers` as `instructgpt annotate` writes "
        f"them): drop, their pairs are no preference and are left out of the {unit} (counted in the "
        "report); order, train them in ranking order as if strictly ranked.",
    )


@dataclasses.dataclass
class RewardNormalizeOptions:
    enabled: bool = option(True, "After training, set a bias so the policy's responses average reward 0.")
    prompts: list[str] = option(
        [], "Prompt files (Prompts or Conversations) to answer; empty: the held-out comparisons' prompts."
    )
    policy: str = option("", "Model that answers them (the SFT model); empty: model.name, the RM's start.")
    max_prompts: int = option(64, "Most prompts answered for the normalisation.", at_least(1))
    batch_size: int = option(8, "Prompts generated together.", at_least(1))
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=64), "")


@dataclasses.dataclass
class RewardConfig:
    """Comparisons in, a reward model out (`instructgpt reward`): InstructGPT's K-wise ranking loss."""

    margin: float = option(0.0, "Margin m in -log σ(r_better - r_worse - m), for every ranked pair.")
    packing: bool = option(True, "Pack a batch's responses into rows; each still attends only to itself.")
    too_long: Literal["drop", "error"] = option(
        "drop", "A comparison with a response longer than model.max_length: drop it (counted), or stop."
    )
    ties: Literal["drop", "order"] = _ties_option("K-wise loss and the pairwise accuracy")
    normalize: RewardNormalizeOptions = option(RewardNormalizeOptions(), "")
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: TrainOptions = option(
        TrainOptions(steps=200, batch_size=8, lr=1e-5, warmup_steps=10, eval_every=50, eval_fraction=0.1),
        "",
    )
    decontaminate: Decontamination = option(Decontamination(), "")


@dataclasses.dataclass
class ScoreConfig:
    """Comparisons or Conversations in, reward-model scores out (`instructgpt score`)."""

    batch_size: int = option(16, "Sequences scored together.", at_least(1))
    model: ModelOptions = option(ModelOptions(name=""), "")


@dataclasses.dataclass
class DPOConfig:
    """Comparisons in, a policy tuned directly on the preferences out (`instructgpt dpo`)."""

    loss: Literal["dpo", "ipo", "simpo"] = option(
        "dpo", "dpo (Rafailov et al. 2023), ipo (Azar et al. 2023) or simpo (Meng et al. 2024, no reference)."
    )
    beta: float = option(0.1, "β of DPO and SimPO (the scale of the implicit reward).", above(0))
    tau: float = option(0.1, "IPO only: τ, the regularisation towards the reference (β in TRL).", above(0))
    label_smoothing: float = option(
        0.0, "DPO only: assumed share of flipped labels (conservative DPO).", between(0, 0.5, open_high=True)
    )
    simpo_gamma: float = option(0.5, "SimPO only: target reward margin γ.", at_least(0))
    reference: str = option("", "Reference model; empty: the starting model (model.name).")
    packing: bool = option(True, "Pack sequences into rows; each still attends only to itself.")
    too_long: Literal["drop", "error"] = option(
        "drop", "A pair with a sequence longer than model.max_length: drop it (counted), or stop."
    )
    ties: Literal["drop", "order"] = _ties_option("pairs trained on")
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: TrainOptions = option(
        TrainOptions(steps=200, batch_size=8, lr=5e-7, warmup_steps=10, eval_every=50, eval_fraction=0.1),
        "",
    )
    decontaminate: Decontamination = option(Decontamination(), "")

    @classmethod
    def migrate(cls, data: Mapping[str, Any], base: DPOConfig, prefix: str) -> Mapping[str, Any]:
        """Before `tau`, `beta` was IPO's τ: a section setting beta for loss ipo, and no tau, still gets it
        as τ this release, with a deprecation warning."""
        if data.get("loss", base.loss) != "ipo" or "beta" not in data or "tau" in data:
            return data
        deprecated(
            f"{prefix}beta with loss ipo",
            f"set {prefix}tau: {data['beta']} instead (IPO's τ); this release still reads beta as τ, the "
            "next will not",
        )
        return {**data, "tau": data["beta"]}


@dataclasses.dataclass
class KLOptions:
    coef: float = option(
        0.02, "β: per-token KL penalty to the reference (SFT) policy (InstructGPT: 0.02).", at_least(0)
    )
    adaptive: bool = option(
        False, "Steer β towards `target` (Ziegler et al. 2019) instead of keeping it fixed."
    )
    target: float = option(6.0, "Adaptive: KL (nats per response) that β is steered towards.", above(0))
    horizon: int = option(
        10000,
        "Adaptive: horizon in rollouts (β moves ≤ 20 % × rollouts / horizon per update).",
        at_least(1),
    )


@dataclasses.dataclass
class PPOTrainOptions(LoopOptions):
    """PPO's training loop: LoopOptions alone. `steps` counts iterations, each many optimizer updates (the
    lr schedule runs over the updates); the rollouts are sized by rollout_batch and minibatch_size, there
    is no held-out split, and every iteration is one metrics line."""

    fsdp: bool = option(
        False,
        "Shard the policy and value model (trained) and the reference and reward model (inference) over "
        "the launched processes (FSDP2); rollouts are sampled with the policy's gathered weights.",
    )

    # Keys of TrainOptions that PPO accepted and never read: a warning this release, refused the next.
    retired_keys: ClassVar[dict[str, str]] = {
        "batch_size": "ppo never read it; rollout_batch and minibatch_size size its batches",
        "grad_accum": "ppo never read it; every minibatch of minibatch_size is one update",
        "eval_every": "ppo never read it; it has no held-out split",
        "eval_fraction": "ppo never read it; it has no held-out split",
        "log_every": "ppo never read it; every iteration is one metrics line",
    }

    @classmethod
    def migrate(cls, data: Mapping[str, Any], base: PPOTrainOptions, prefix: str) -> Mapping[str, Any]:
        """Drop the retired keys, each with a deprecation warning."""
        for key in sorted(cls.retired_keys.keys() & data.keys()):
            deprecated(f"{prefix}{key}", f"{cls.retired_keys[key]}; remove it, the next release refuses it")
        return {key: value for key, value in data.items() if key not in cls.retired_keys}


@dataclasses.dataclass
class PPOConfig:
    """Prompts in, a policy optimised against a reward model out (`instructgpt ppo`), with PPO-ptx."""

    reward_model: str = option("", "Reward model folder (from `instructgpt reward`); required.")
    value_model: str = option("", "Initial value model; empty: the reward model (as InstructGPT does).")
    reference: str = option("", "Frozen reference policy; empty: the starting policy (model.name, the SFT).")
    rollout_batch: int = option(16, "Prompts answered per PPO iteration (per process).", at_least(1))
    generation_batch: int = option(16, "Prompts generated together within a rollout.", at_least(1))
    rollout_engine: Literal["local", "vllm"] = option(
        "local",
        "What samples the rollouts: local (the policy itself, `generate`; CPU or GPU) or vllm (a vLLM engine "
        "in each process, loaded with the policy's current weights before every rollout; needs a CUDA GPU "
        "and `pip install 'instructgpt[vllm]'`; untested here).",
    )
    vllm_gpu_memory: float = option(
        0.3,
        "rollout_engine=vllm: share of the GPU's memory vLLM takes (its weights and KV cache); the rest is "
        "left to training.",
        between(0, 1, open_low=True),
    )
    scoring_batch: int = option(
        0,
        "Answers per forward pass when a rollout is scored, without gradients: the policy's and the "
        "reference's log-probs, the values and the reward model's scores. 0: generation_batch.",
        at_least(0),
    )
    max_prompt_length: int = option(
        0,
        "Longest prompt, in tokens of the policy's chat template with its generation prompt; longer prompts "
        "are left out (counted as too_long). At most model.max_length - sampling.max_new_tokens, so that a "
        "prompt and its answer fit in a row of model.max_length; 0: that most.",
        at_least(0),
    )
    reward_max_length: int = option(
        0,
        "Most tokens of a prompt and answer the reward model reads, rendered with its own template; a "
        "longer one keeps its last tokens (the score is read at the end). 0: model.max_length.",
        at_least(0),
    )
    ppo_epochs: int = option(4, "Passes over each rollout batch (4, as in TRL's PPO trainer).", at_least(1))
    minibatch_size: int = option(8, "Rollouts per PPO update (per process).", at_least(1))
    clip: float = option(
        0.2, "ε: policy ratio clip range (0.2: Schulman et al. 2017, TRL, OpenRLHF).", above(0)
    )
    value_clip: float = option(0.2, "Value clip range around the rollout's value estimates.", above(0))
    value_coef: float = option(0.5, "Weight of the value loss in the update.", at_least(0))
    gamma: float = option(1.0, "Discount γ in GAE.", fraction())
    lam: float = option(0.95, "λ in GAE.", fraction())
    whiten_advantages: bool = option(True, "Normalise advantages to mean 0, variance 1 per rollout batch.")
    kl: KLOptions = option(KLOptions(), "")
    ptx_files: list[str] = option([], "Pretraining texts for PPO-ptx (Documents or any text records).")
    ptx_coef: float = option(
        0.0,
        "γ_ptx: weight of the pretraining LM loss in every update (0: off). InstructGPT's 27.8 is relative "
        "to its own loss scaling; here the LM loss is a per-token mean, so start near 0.1-1 and check in "
        "metrics that ptx_loss falls without the score stalling (a large γ pulls the policy back to "
        "pretraining text: long answers without a stop).",
        at_least(0),
    )
    ptx_block_size: int = option(256, "Tokens per pretraining block.", at_least(2))
    ptx_batch_size: int = option(
        0, "Pretraining blocks in every update's PPO-ptx loss (per process); 0: minibatch_size.", at_least(0)
    )
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=64, temperature=1.0), "")
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: PPOTrainOptions = option(
        PPOTrainOptions(steps=100, lr=1e-5, warmup_steps=0, schedule="constant", save_every=20), ""
    )
    decontaminate: Decontamination = option(Decontamination(), "")
