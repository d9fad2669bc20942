"""Configs of the embedded demo's stages: its data (`demo-data`) and its claims (`demo-claims`)."""

from __future__ import annotations

import dataclasses

from instructgpt.config.typed import at_least, option


@dataclasses.dataclass
class DemoDataConfig:
    """The embedded demo's inputs, written into a run folder (`demo-data` recipe stage)."""

    examples_per_family: int = option(
        400,
        "Labelled examples per task family and language (for SFT and eval).",
        at_least(1),
    )
    documents: int = option(300, "Generated documents per language (raw text for pretraining).", at_least(1))
    preference_examples: int = option(
        60,
        "Examples per family and language, apart from the above, turned into ranked comparisons.",
        at_least(0),
    )
    seed: int = option(0, "Seed of the generators.", at_least(0))


@dataclasses.dataclass
class DemoClaimsConfig:
    """The run's stage folders and model names whose outputs the claims are read from (`demo-claims`)."""

    eval: str = option("", 'The eval stage\'s folder (in a recipe: "{eval}"); empty: none.')
    reward: str = option("", "The reward stage's folder; empty: none.")
    ppo: str = option("", "The PPO-ptx stage's folder; empty: none.")
    ppo_no_ptx: str = option("", "The folder of the PPO stage without ptx; empty: none.")
    sft: str = option("B-SFT", "Eval name of the SFT model every policy starts from.")
    base: str = option("B-pretrained", "Eval name of the SFT model's pretrained base.")
    raw: str = option("A-SFT", "Eval name of the SFT model pretrained on raw text only.")
    ppo_model: str = option("B+PPO-ptx", "Eval name of the PPO-ptx policy.")
    ppo_no_ptx_model: str = option("B+PPO", "Eval name of the PPO policy without ptx.")
    dpo_model: str = option("B+DPO", "Eval name of the DPO policy.")
    reward_accuracy: float = option(0.80, "Target held-out pairwise accuracy of the reward model.")
    min_pairs: int = option(200, "Held-out pairs the reward accuracy needs to count.")
    ppo_win_rate: float = option(0.70, "Target RM win rate of PPO-ptx against SFT.")
    dpo_win_rate: float = option(0.65, "Target RM win rate of DPO against SFT.")
    kl_bound: float = option(10.0, "Most KL to the SFT policy, nats per answer, at the last iteration.")
    seed: int = option(0, "Seed of the bootstrap.")
    resamples: int = option(2000, "Bootstrap resamples.")
