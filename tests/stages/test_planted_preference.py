"""The method end to end on a preference planted in the data: a reward model trained on comparisons that
prefer answers naming more fruit learns it (held-out pairwise accuracy ≥ 0.9), and PPO against that
reward model — not against a rule — raises the mean score of the policy's answers."""

from __future__ import annotations

import json
import random

import pytest
import torch

from instructgpt.config import ModelOptions, PPOConfig, RewardConfig, load_config
from instructgpt.io import write_jsonl
from instructgpt.models import load_model, save_model
from instructgpt.train import ppo, reward

FRUIT = ["apple", "pear", "plum", "fig"]
OTHER = ["stone", "river", "cloud", "table", "music", "light", "green", "road"]
TOPICS = ["the town", "a trip", "my week", "the garden", "a song", "the sea", "winter", "a book"]


def answer(rng: random.Random, fruit: int, length: int = 6) -> str:
    words = rng.sample(FRUIT * 2, fruit) + rng.sample(OTHER, length - fruit)
    rng.shuffle(words)
    return " ".join(words) + "."


def comparisons(n: int, seed: int) -> list[dict]:
    """Two answers of six words per prompt; the one naming more fruit is better (by 1 to 4 words)."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        low = rng.randint(0, 2)
        high = low + rng.randint(1, 4 - low)
        better, worse = answer(rng, high), answer(rng, low)
        prompt = [{"role": "user", "content": f"Say something about {TOPICS[i % len(TOPICS)]}."}]
        order = [0, 1] if i % 2 else [1, 0]  # the better answer is listed first or second
        responses = [better, worse] if order == [0, 1] else [worse, better]
        rows.append({"id": f"c{i}", "prompt": prompt, "responses": responses, "ranking": order})
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(comparisons file, prompts file, a random tiny-gpt 'SFT' policy with a tokenizer of the words)."""
    root = tmp_path_factory.mktemp("planted")
    data, prompts = root / "comparisons.jsonl", root / "prompts.jsonl"
    rows = comparisons(160, seed=0)
    write_jsonl(data, rows)
    write_jsonl(prompts, [{"id": f"p{i}", "messages": r["prompt"]} for i, r in enumerate(rows[:32])])
    torch.manual_seed(0)
    texts = [" ".join(FRUIT + OTHER) + ". Say something about " + " ".join(TOPICS)] * 4
    model, tokenizer = load_model(
        ModelOptions(name="tiny-gpt", vocab_size=320, max_length=96), "causal_lm", texts
    )
    model.config.initializer_range = 0.2
    model.apply(model._init_weights)  # varied, word-like samples from random weights
    return data, prompts, save_model(model, tokenizer, root / "policy")


def test_reward_model_learns_the_planted_preference_and_ppo_climbs_it(planted, tmp_path):
    data, prompts, policy = planted
    rm_config = load_config(RewardConfig, overrides=[
        f"model.name={policy}", "model.max_length=96", "train.threads=1", "train.steps=150",
        "train.batch_size=8", "train.lr=0.003", "train.warmup_steps=5", "train.eval_fraction=0.25",
        "train.eval_every=50", "normalize.enabled=false",
    ])  # fmt: skip
    report = reward.run([data], tmp_path / "rm", rm_config)
    assert report.eval_comparisons == 40
    assert report.eval_accuracy >= 0.9, report.eval_accuracy

    ppo_config = load_config(PPOConfig, overrides=[
        f"model.name={policy}", f"reward_model={tmp_path / 'rm' / 'model'}", "model.max_length=96",
        "train.threads=1", "sampling.max_new_tokens=12", "rollout_batch=16", "generation_batch=16",
        "minibatch_size=8", "ppo_epochs=2", "train.lr=0.003", "train.steps=14", "train.save_every=0",
        "kl.coef=0.02",
    ])  # fmt: skip
    ppo.run([prompts], tmp_path / "ppo", ppo_config)
    rows = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    scores = [r["score"] for r in rows]
    assert sum(scores[-3:]) / 3 > sum(scores[:3]) / 3 + 0.5, scores
