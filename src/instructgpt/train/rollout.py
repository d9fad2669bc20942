"""PPO's experience: the models a rollout uses (`build_models`), sampling answers, scoring them, and the
RolloutBatch.

One rollout of B prompts (train/ppo.py calls `collect` once per iteration):

1. the rollout engine samples an answer to each prompt (rollout_engine.py: the policy itself, the prompts
   as concurrent requests of one `generation.engine.Engine`, each seeded by its index; or vLLM);
2. each (prompt ids + the exact sampled ids) becomes one sequence whose targets are the response tokens;
3. with no gradient, `scoring_batch` answers at a time, in packed rows of `max_length`: the policy's
   log-prob of every response token (π_old), the reference's (π_ref), and the value model's head before
   every response token (V); the reward model scores the whole answer, rendered with *its* tokenizer and
   chat template and cut to its last `reward_max_length` tokens, at its last token (+ the normalisation
   bias `instructgpt reward` stored), or a Python `reward_fn` does;
4. rl.kl_penalized_rewards (−β·KL per token, the score at the last), rl.gae, and whitening give the
   advantages and returns of the RolloutBatch.

With LoRA the reference is the policy with its adapter disabled, and the reward model the value model
with its adapter disabled (`reference_model`, `reward_model`): no second copy of either backbone.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification

from instructgpt import scoring
from instructgpt.chat_format import Rendered, use_packed_attention
from instructgpt.config import ModelOptions, PPOConfig, SamplingOptions
from instructgpt.distributed import Dist, all_reduce_sum, broadcast_parameters
from instructgpt.generation.engine import Request, answer_all
from instructgpt.generation.sampling import Generation
from instructgpt.models import PRESETS, apply_lora, load_model
from instructgpt.records import Message
from instructgpt.rl import RolloutBatch, gae, kl_penalized_rewards, masked_whiten
from instructgpt.sequences import (
    by_sequence,
    pack_sequences,
    target_scores,
    token_logprobs,
)
from instructgpt.train.rng import seed_everything
from instructgpt.train.sharding import shard_model

if TYPE_CHECKING:
    from instructgpt.train.rollout_engine import RolloutEngine

RewardFn = Callable[[list[list[Message]], list[str]], list[float]]
QUERY_PAD = -1  # filler of RolloutBatch.query_ids, never a token id (a prompt may hold the pad token itself)


@dataclass
class PPOModels:
    """Everything a PPO iteration runs; only `policy` and `value` are trained."""

    policy: nn.Module  # causal LM (LoRA-wrapped with lora.enabled)
    value: nn.Module  # …ForSequenceClassification, num_labels=1, on the policy's tokenizer
    reference: nn.Module | None  # frozen SFT policy; None: the policy with its adapter disabled
    reward: nn.Module | None  # frozen reward model; None: the value model with its adapter disabled
    tokenizer: Any  # the policy's (and the value model's)
    reward_tokenizer: Any  # the reward model's own; None with a reward_fn
    reward_bias: float  # added to every reward-model score (the normalisation of `instructgpt reward`)
    reward_fn: RewardFn | None = None  # scores (prompts, answers) in Python instead of a reward model
    sampler: nn.Module | None = None  # with FSDP: an unsharded copy of the policy that samples the answers


@contextmanager
def reference_model(models: PPOModels) -> Iterator[nn.Module]:
    """The frozen reference policy: its own model, or the LoRA policy with the adapter switched off."""
    if models.reference is not None:
        yield models.reference
    else:
        with models.policy.disable_adapter():
            yield models.policy


@contextmanager
def reward_model(models: PPOModels) -> Iterator[nn.Module]:
    """The frozen reward model: its own model, or the LoRA value model with the adapter switched off
    (its original score head included)."""
    if models.reward is not None:
        yield models.reward
    else:
        with models.value.disable_adapter():
            yield models.value


def build_models(
    config: PPOConfig,
    messages: list[list[Message]],
    resume_from: Path | None,
    reward_fn: RewardFn | None,
    dist: Dist,
) -> PPOModels:
    """Policy and value model (trained), reference and reward model (frozen, or adapter-disabled views
    with LoRA), on this process's device and identical on every process."""
    seed_everything(config.train.seed)  # a new value head is drawn from it
    policy, tokenizer = _load_policy(config, messages, resume_from)
    reward, reward_tokenizer, bias = (None, None, 0.0) if reward_fn else _load_reward(config)
    value = _initial_value(config, policy, tokenizer, reward, reward_tokenizer)
    reference = _load_reference(config, policy, tokenizer)  # before LoRA wraps the policy
    if config.lora.enabled:
        policy, shared = apply_lora(policy, config.lora), value is reward
        value = apply_lora(value, config.lora)
        reward = None if shared else reward  # the reward model is the value model, adapter disabled
    elif value is reward:
        value = copy.deepcopy(reward)
    for frozen in (reference, reward):
        if frozen is not None:
            frozen.requires_grad_(False).eval()
    for model in (policy, value, reference, reward):
        if model is not None:
            use_packed_attention(model).to(dist.device)
    broadcast_parameters(nn.ModuleDict({"policy": policy, "value": value}), dist)
    return PPOModels(policy, value, reference, reward, tokenizer, reward_tokenizer, bias, reward_fn)


def shard_models(models: PPOModels, dist: Dist) -> PPOModels:
    """The four models sharded over the processes with FSDP2 (sharding.shard_model): the policy and the
    value model to be trained, the reference and the reward model for inference (every process scores
    as many chunks, so their forwards run in lockstep). Sampling runs as many forwards as its longest
    answer needs, which differs between processes: the answers are sampled with an unsharded copy of
    the policy (`sampler`), loaded with the policy's gathered weights before each rollout."""
    sampler = copy.deepcopy(models.policy)
    for model in (models.policy, models.value, models.reference, models.reward):
        if model is not None:
            shard_model(model, dist)
    return dataclasses.replace(models, sampler=sampler)


def _options(config: PPOConfig, name: str) -> ModelOptions:
    """The model options of another model of the run (reward, value, reference): `name`, same dtype."""
    return dataclasses.replace(config.model, name=name, gguf_file="", tokenizer="")


def _load_policy(
    config: PPOConfig, messages: list[list[Message]], resume_from: Path | None
) -> tuple[nn.Module, Any]:
    """The starting policy; a preset reuses a checkpoint's tokenizer on resume (same ids as before)."""
    options = config.model
    saved = resume_from / "tokenizer" if resume_from is not None else None
    if saved is not None and saved.is_dir() and options.name in PRESETS and not options.tokenizer:
        options = dataclasses.replace(options, tokenizer=str(saved))
    texts = [m.content for p in messages for m in p] if options.name in PRESETS else None
    return load_model(options, "causal_lm", texts=texts)


def _load_reward(config: PPOConfig) -> tuple[nn.Module, Any, float]:
    """The reward model, its tokenizer and its normalisation bias (`reward_bias` in its config)."""
    model, tokenizer = load_model(
        _options(config, config.reward_model), "sequence_classification", num_labels=1
    )
    architectures = getattr(model.config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ValueError(
            f"reward_model={config.reward_model} is a {architectures[0]}, not a reward model: give a folder "
            "saved by `instructgpt reward` (a …ForSequenceClassification with one label)"
        )
    if model.config.num_labels != 1:
        raise ValueError(f"reward_model={config.reward_model} has {model.config.num_labels} labels, not 1")
    return model, tokenizer, scoring.reward_bias(model)


def _initial_value(
    config: PPOConfig, policy: nn.Module, tokenizer: Any, reward: nn.Module | None, reward_tokenizer: Any
) -> nn.Module:
    """`value_model`, else the reward model itself (the caller copies or wraps it), else (reward_fn) a
    new scalar head on a copy of the policy's backbone. It must share the policy's vocabulary."""
    if config.value_model:
        value, value_tokenizer = load_model(
            _options(config, config.value_model), "sequence_classification", num_labels=1
        )
        _check_vocabulary(f"value_model={config.value_model}", value_tokenizer, tokenizer)
        return value
    if reward is None:
        return _classifier_from(policy)
    what = f"the value model (initialised from reward_model={config.reward_model})"
    _check_vocabulary(what, reward_tokenizer, tokenizer)
    return reward


def _classifier_from(policy: nn.Module) -> nn.Module:
    """A `…ForSequenceClassification` (one label, new head) holding a copy of the policy's backbone."""
    model_config = copy.deepcopy(policy.config)
    model_config.num_labels = 1
    value = AutoModelForSequenceClassification.from_config(model_config, dtype=policy.dtype)
    value.base_model.load_state_dict(policy.base_model.state_dict())
    return value


def _load_reference(config: PPOConfig, policy: nn.Module, tokenizer: Any) -> nn.Module | None:
    """`reference`, else a frozen copy of the starting policy; None with LoRA (the adapter is disabled)."""
    if config.reference:
        reference, reference_tokenizer = load_model(_options(config, config.reference), "causal_lm")
        _check_vocabulary(f"reference={config.reference}", reference_tokenizer, tokenizer)
        return reference
    return None if config.lora.enabled else copy.deepcopy(policy)


def _check_vocabulary(what: str, other: Any, tokenizer: Any) -> None:
    if other.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"{what} has a different vocabulary from the policy's ({len(other)} vs {len(tokenizer)} tokens): "
            "it reads the policy's token ids (a value per response token, or reference log-probs), so it "
            "must share the policy's tokenizer. Set value_model= (or reference=) to a model with it, e.g. "
            "the SFT model"
        )


@dataclass
class RolloutOptions:
    """What one rollout needs from the PPO config (components take plain arguments)."""

    sampling: SamplingOptions
    generation_batch: int  # prompts sampled together
    scoring_batch: int  # answers per no-grad forward of the policy, reference, value and reward models
    max_length: int  # of a packed row of the policy, reference and value model
    reward_max_length: int  # most tokens the reward model reads of a (prompt, answer): the last ones
    gamma: float
    lam: float
    whiten_advantages: bool


@dataclass
class Rollout:
    batch: RolloutBatch
    generation_s: float
    scoring_s: float
    tokens: int  # prompt + response tokens of all sequences


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any values (seed, step, rank, ...): the same parts always give the same seed."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def collect(
    models: PPOModels,
    messages: list[list[Message]],
    prompt_ids: list[list[int]],
    options: RolloutOptions,
    beta: float,
    seed: int,
    dist: Dist,
    engine: RolloutEngine,
    first_chunk: int = 0,
) -> Rollout:
    """Sample answers to the prompts (`engine`; their chunks numbered from `first_chunk`), score them, and
    build the RolloutBatch (see the module docstring). The advantages are whitened over all processes'
    rollouts."""
    started = time.perf_counter()
    gens = engine.generate(prompt_ids, options.sampling, options.generation_batch, seed, first_chunk)
    sampled = time.perf_counter()
    responses = [g.token_ids for g in gens]
    batch = score(models, messages, prompt_ids, responses, [g.text for g in gens], options, beta, dist)
    tokens = sum(len(p) + len(r) for p, r in zip(prompt_ids, responses, strict=True))
    return Rollout(batch, sampled - started, time.perf_counter() - sampled, tokens)


def sample(
    policy: nn.Module,
    tokenizer: Any,
    prompt_ids: list[list[int]],
    options: SamplingOptions,
    chunk: int,
    seed: int,
    first_chunk: int = 0,
) -> list[Generation]:
    """The policy's answers: the prompts are concurrent requests of one `generation.engine.Engine` that
    runs `chunk` at a time (a finished answer's slot goes to the next prompt). Prompt j samples with seed
    (seed, first_chunk * chunk + j), its index among the whole step's prompts (`first_chunk` is this
    process's first chunk), so its answer does not depend on the other prompts or on the chunk size."""
    first = first_chunk * chunk
    requests = [Request(p, options, derived_seed(seed, first + j)) for j, p in enumerate(prompt_ids)]
    answer_all(policy, tokenizer, requests, chunk)
    return [r.generation for r in requests if r.generation is not None]


@torch.no_grad()
def score(
    models: PPOModels,
    messages: list[list[Message]],
    prompt_ids: list[list[int]],
    responses: list[list[int]],
    texts: list[str],
    options: RolloutOptions,
    beta: float,
    dist: Dist,
) -> RolloutBatch:
    """Per-token log-probs (policy, reference), values and scores of sampled answers → RolloutBatch."""
    device = dist.device
    width = max(len(r) for r in responses)
    sequences = [as_sequence(p, r) for p, r in zip(prompt_ids, responses, strict=True)]
    logprobs, ref_logprobs, values = [], [], []
    for start in range(0, len(sequences), options.scoring_batch):
        chunk = sequences[start : start + options.scoring_batch]
        batch = pack_sequences(chunk, options.max_length, models.tokenizer.pad_token_id).to(device)
        logprobs.append(by_sequence(batch, token_logprobs(models.policy, batch), width))
        with reference_model(models) as reference:
            ref_logprobs.append(by_sequence(batch, token_logprobs(reference, batch), width))
        values.append(by_sequence(batch, target_scores(models.value, batch), width))
    scores = reward_scores(models, messages, texts, options.scoring_batch, options.reward_max_length, device)
    query, response, mask = pad_rollouts(prompt_ids, responses, device)
    lp, ref, v = torch.cat(logprobs), torch.cat(ref_logprobs), torch.cat(values)
    rewards, _ = kl_penalized_rewards(scores, lp, ref, mask, beta)
    advantages, returns = gae(rewards, v, mask, options.gamma, options.lam)
    if options.whiten_advantages:
        advantages = whiten(advantages, mask, dist)
    return RolloutBatch(query, response, mask, lp, ref, v, scores, rewards, advantages, returns)


@torch.no_grad()
def reward_scores(
    models: PPOModels,
    messages: list[list[Message]],
    texts: list[str],
    chunk: int,
    max_length: int,
    device: torch.device,
) -> Tensor:
    """The score of each answer: (B,) float32, the reward model's (+ its bias) or `reward_fn`'s."""
    if models.reward_fn is not None:
        scores = [float(s) for s in models.reward_fn(messages, texts)]
        if len(scores) != len(texts):
            raise ValueError(f"reward_fn returned {len(scores)} scores for {len(texts)} answers")
        return torch.tensor(scores, dtype=torch.float32, device=device)
    tokenizer = models.reward_tokenizer
    with reward_model(models) as model:
        scores = scoring.reward_scores(model, tokenizer, messages, texts, chunk, max_length, device)
    return scores + models.reward_bias


def whiten(advantages: Tensor, mask: Tensor, dist: Dist) -> Tensor:
    """`advantages` (B, T) whitened over the response tokens of all processes (`rl.masked_whiten`'s mean
    and unbiased variance, from summed statistics with several processes); left as they are when all
    processes together hold fewer than two tokens."""
    if dist.world == 1:
        return masked_whiten(advantages, mask) if mask.sum() > 1 else advantages
    weights = mask.to(advantages.dtype)
    n, total = all_reduce_sum(torch.stack([weights.sum(), (advantages * weights).sum()]), dist)
    if n <= 1:
        return advantages
    centered = advantages - total / n
    var = all_reduce_sum((centered * centered * weights).sum(), dist) / (n - 1)
    whitened = centered * torch.rsqrt(var + 1e-8)
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def as_sequence(prompt: Sequence[int], response: Sequence[int]) -> Rendered:
    """Prompt ids then response ids, the response tokens the targets."""
    return Rendered([*prompt, *response], [0] * len(prompt) + [1] * len(response))


class PaddedRollouts(NamedTuple):
    query_ids: Tensor  # (B, Tq) long, left-padded with QUERY_PAD
    response_ids: Tensor  # (B, Tr) long, right-padded with 0
    response_mask: Tensor  # (B, Tr) bool


def pad_rollouts(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], device: torch.device
) -> PaddedRollouts:
    """Prompts and responses as the padded tensors of a RolloutBatch."""
    query = torch.full((len(prompts), max(len(p) for p in prompts)), QUERY_PAD, dtype=torch.long)
    response = torch.zeros((len(responses), max(len(r) for r in responses)), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        query[i, query.shape[1] - len(p) :] = torch.tensor(p, dtype=torch.long)
        response[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    lengths = torch.tensor([len(r) for r in responses])
    mask = torch.arange(response.shape[1])[None, :] < lengths[:, None]
    return PaddedRollouts(query.to(device), response.to(device), mask.to(device))


def rollout_sequences(batch: RolloutBatch) -> list[Rendered]:
    """The sequences of a RolloutBatch (or a minibatch of it) again: prompt + response, response targets."""
    lengths = batch.response_mask.sum(1).tolist()
    rows = zip(batch.query_ids.tolist(), batch.response_ids.tolist(), lengths, strict=True)
    return [as_sequence([t for t in query if t != QUERY_PAD], response[:n]) for query, response, n in rows]
