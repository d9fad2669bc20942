"""`instructgpt ppo`: Prompts in, a policy optimised against a reward model out: InstructGPT's RL step
(Ouyang et al. 2022; Ziegler et al. 2019), with PPO-ptx.

Models: the policy starts from `model.name` (the SFT model) and is trained; the reference is a frozen
copy of it (or `reference`); the reward model (`reward_model`, saved by `instructgpt reward`) is frozen;
the value model starts from the reward model (or `value_model`) and is trained. It predicts a value per
response token, so it must share the policy's tokenizer. With `lora.enabled` the policy and the value
model are LoRA adapters, and the reference and the reward model are those same modules with the adapter
disabled: no second copy of either backbone (rollout.py). From Python, `run(..., reward_fn=f)` scores
answers with `f(prompts, answers)` instead of a reward model; the value model then starts from the
policy's backbone with a new scalar head.

One iteration (one `train.steps` step), top to bottom in `_train`:
1. each process takes its `rollout_batch` prompts of the step (a seeded order per epoch, resumable) and
   collects a rollout (rollout.py): sampled answers (seeded by seed, step and the answer's chunk of the
   step, so a resumed run samples the same), π_old, π_ref and V per response token, scores, KL-shaped
   rewards, GAE advantages;
2. `ppo_epochs` passes over it in shuffled minibatches of `minibatch_size` (order seeded by seed and
   step): one packed forward of the policy and one of the value model, loss = PPO-clip + value_coef ·
   clipped value loss (+ ptx_coef · LM loss on `ptx_batch_size` blocks of pretraining text: PPO-ptx),
   one AdamW step over both models per minibatch (losses over all processes' tokens, gradients summed
   over processes: see below); the lr schedule runs over all these updates;
3. the KL controller sees the mean KL per answer (β fixed, or adaptive); its state is kept in the
   checkpoints, so `train.resume=auto` continues exactly; one metrics line per iteration (an iteration is
   already many updates), a checkpoint when due.

Lengths: a prompt is at most `max_prompt_length` tokens (default: what leaves room for
`sampling.max_new_tokens` in `model.max_length`); prompt and answer are packed into rows of
`model.max_length` for the policy, reference and value model; the reward model reads at most
`reward_max_length` tokens of its own rendering (default model.max_length). Rollouts are generated
`generation_batch` prompts at a time and scored `scoring_batch` answers at a time.

Outputs in OUT: `model/` (the policy; LoRA merged unless `lora.merge=false`), `value_model/`,
`checkpoints/step-N/`, `metrics.jsonl` (score, reward, KL, β, entropy, losses, clip fractions, approx
KL, explained variance, response length, seconds in generation / scoring / update), `tensorboard/`,
`reward_curve.png`, `train_report.json`, `rejects.jsonl`.

Several processes: each answers its own `rollout_batch` prompts of the step, with the seeds one process
would use (chunks numbered over the step); advantages are whitened over all answers and a minibatch's
losses are means over all processes' tokens, so N processes equal one with N× the rollout batch and
minibatch (exactly when a rollout is one minibatch and `generation_batch` divides `rollout_batch`). The
policy and value model train through DDP; `train.fsdp` shards all four models (rollout.shard_models).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instructgpt.chat_format import render_prompt
from instructgpt.config import KLOptions, PPOConfig, to_dict
from instructgpt.data.decontam import Decontaminator, contaminated, load_decontaminator
from instructgpt.distributed import Dist, all_reduce_sum, share_of
from instructgpt.io import OnError, Rejects, read_records
from instructgpt.losses import IGNORE_INDEX, entropy_from_logits, ppo_policy_loss, ppo_value_loss
from instructgpt.metrics_log import read_metrics
from instructgpt.models import save_model
from instructgpt.records import Conversation, Message, Prompt, prompt_messages
from instructgpt.reports.training import PPOReport
from instructgpt.rl import AdaptiveKLController, FixedKLController, RolloutBatch, explained_variance
from instructgpt.sequences import by_sequence, logprobs_of, pack_sequences, target_logits, target_scores
from instructgpt.train.loop import LoopState, next_indices
from instructgpt.train.ptx import PtxData, ptx_batch, ptx_loss_of, read_ptx
from instructgpt.train.rollout import (
    PPOModels,
    RewardFn,
    RolloutOptions,
    build_models,
    collect,
    derived_seed,
    rollout_sequences,
    shard_models,
)
from instructgpt.train.rollout_engine import RolloutEngine, check_engine, open_engine
from instructgpt.train.run import Training, open_run
from instructgpt.train.sharding import sharding_requested

TIMINGS = ("generation_s", "scoring_s", "update_s")


@dataclass
class PromptSet:
    messages: list[list[Message]]  # what each prompt asks (the reward model renders it with its own template)
    ids: list[list[int]]  # the same, rendered with the policy's chat template and generation prompt
    records: int  # prompt records read
    too_long: int  # left out: longer than max_prompt_length (prompt_limit)
    fingerprint: str  # of the prompt ids: a resume on other prompts is refused


def run(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: PPOConfig,
    on_error: OnError = "fail",
    *,
    reward_fn: RewardFn | None = None,
) -> PPOReport:
    """Optimise the policy on the prompts of `inputs` into `out_dir`; returns the report also written to
    train_report.json. `reward_fn(prompts, answers) -> scores` replaces the reward model when given."""
    check_config(config, reward_fn is not None)
    with open_run(out_dir, config, on_error) as run:
        with run.reading():
            messages = read_prompts(inputs, run.rejects, load_decontaminator(config.decontaminate))
            models = build_models(config, messages, run.resume_from, reward_fn, run.dist)
            if sharding_requested(config.train.fsdp):
                models = shard_models(models, run.dist)
            engine = open_engine(config, models)
            prompts = render_prompts(models.tokenizer, messages, config)
            ptx = (
                read_ptx(config.ptx_files, models.tokenizer, config.ptx_block_size)
                if config.ptx_coef
                else None
            )
        trainable = nn.ModuleDict({"policy": models.policy, "value": models.value})
        # The lr schedule runs over every minibatch update of the run, not over its iterations.
        schedule = dataclasses.replace(config.train, steps=total_updates(config))
        training = run.start(trainable, models.tokenizer, _expect(config, prompts, ptx), schedule)
        kl_control = kl_controller(config.kl)
        if run.resume_from is not None:
            kl_control.load_state_dict(training.state.extra["kl_controller"])
        rows = _train(training, models, engine, kl_control, prompts, ptx, config)
        report = _report(inputs, training, config, prompts, rows)
        return training.finish(report, partial(_save, training, models, config))


def _save(training: Training, models: PPOModels, config: PPOConfig, final: nn.Module) -> dict[str, str]:
    """The policy and the value model (main process; `final`: both, gathered when sharded), and the
    reward curve."""
    out_dir = training.out_dir
    save_model(final["policy"], models.tokenizer, out_dir / "model", merge_lora=config.lora.merge)
    save_model(final["value"], models.tokenizer, out_dir / "value_model", merge_lora=config.lora.merge)
    return {"plot": plot_rewards(read_metrics(out_dir / "metrics.jsonl"), out_dir / "reward_curve.png")}


def _train(
    training: Training,
    models: PPOModels,
    engine: RolloutEngine,
    kl_control: FixedKLController | AdaptiveKLController,
    prompts: PromptSet,
    ptx: PtxData | None,
    config: PPOConfig,
) -> list[dict[str, Any]]:
    """The PPO loop: one iteration is one rollout and `ppo_epochs` passes of minibatch updates over it.
    Returns the metrics rows of this run."""
    opts, state, trainable, dist = config.train, training.state, training.model, training.dist
    rows: list[dict[str, Any]] = []
    with training.logging("ppo"):
        while state.step < opts.steps:
            step_start = time.perf_counter()
            # 1. This process's prompts of the step, answered and scored with the models as they are now.
            mine = _step_prompts(len(prompts.ids), config, state, dist)
            # Chunks numbered over the step's prompts: any split samples the same answers (0: the old rank)
            beta, seed = kl_control.beta, derived_seed(config.sampling.seed, opts.seed, state.step, 0)
            first_chunk = dist.rank * math.ceil(config.rollout_batch / config.generation_batch)
            trainable.eval()  # no dropout in π_old and V_old
            with training.autocast():  # inference only: sampling and scoring in the training's precision
                rollout = collect(
                    models, [prompts.messages[i] for i in mine], [prompts.ids[i] for i in mine],
                    _rollout_options(config), beta, seed, dist, engine, first_chunk,
                )  # fmt: skip
            # 2. ppo_epochs passes of minibatch updates over the rollout.
            update_start = time.perf_counter()
            update = _update(training, models, rollout.batch, ptx, config)
            seconds = [rollout.generation_s, rollout.scoring_s, time.perf_counter() - update_start]
            # 3. Statistics over all processes, the KL controller, counters, metrics, checkpoint.
            row = _iteration_row(rollout.batch, update, beta, seconds, dist)
            kl_control.update(row["kl"], config.rollout_batch * dist.world)
            state.extra["kl_controller"] = kl_control.state_dict()
            tokens = int(all_reduce_sum(torch.tensor(rollout.tokens, device=dist.device), dist))
            training.advance(tokens, row["loss"], step_start)
            rows.append({"step": state.step, **row})
            training.logger.log(rows[-1] | training.precision_row())  # every iteration: many updates
            training.show(row["loss"], score=row["score"])
            training.checkpoint_when_due()
    return rows


def _step_prompts(n: int, config: PPOConfig, state: LoopState, dist: Dist) -> list[int]:
    """This process's prompt indices of the step: its slice of the step's `rollout_batch × world`."""
    size = config.rollout_batch
    indices, state.epoch, state.position = next_indices(
        n, size * dist.world, config.train.seed, state.epoch, state.position
    )
    return indices[dist.rank * size : (dist.rank + 1) * size]


def _rollout_options(config: PPOConfig) -> RolloutOptions:
    return RolloutOptions(
        sampling=config.sampling,
        generation_batch=config.generation_batch,
        scoring_batch=config.scoring_batch or config.generation_batch,
        max_length=config.model.max_length,
        reward_max_length=config.reward_max_length or config.model.max_length,
        gamma=config.gamma,
        lam=config.lam,
        whiten_advantages=config.whiten_advantages,
    )


# ------------------------------------------------------------------------------------------- update


def _update(
    training: Training, models: PPOModels, rollouts: RolloutBatch, ptx: PtxData | None, config: PPOConfig
) -> dict[str, float]:
    """`ppo_epochs` passes over the rollouts in shuffled minibatches, one optimizer step each; returns
    each statistic's mean over the minibatches (this process's)."""
    seed = derived_seed(config.train.seed, training.state.step, "minibatches")
    generator = torch.Generator().manual_seed(seed)
    training.model.train()
    sums: dict[str, float] = {}
    updates = 0
    for _ in range(config.ppo_epochs):
        for minibatch in rollouts.minibatches(config.minibatch_size, generator):
            stats = _minibatch_step(training, models, minibatch, ptx, config)
            sums = {key: sums.get(key, 0.0) + value for key, value in stats.items()}
            updates += 1
    training.model.eval()
    return {key: value / updates for key, value in sums.items()}


def _minibatch_step(
    training: Training, models: PPOModels, minibatch: RolloutBatch, ptx: PtxData | None, config: PPOConfig
) -> dict[str, float]:
    """One PPO update: packed forwards of policy and value model, the clipped losses (+ PPO-ptx), a step.
    Each mean is over all processes' tokens (this process's, weighted by its share of them); returns this
    process's part of each statistic (`_iteration_row` sums them over processes)."""
    pad, dist = models.tokenizer.pad_token_id, training.dist
    policy_engine, value_engine = training.parallel(models.policy), training.parallel(models.value)
    batch = pack_sequences(rollout_sequences(minibatch), config.model.max_length, pad).to(dist.device)
    width, mask = minibatch.response_ids.shape[1], minibatch.response_mask
    with training.autocast():
        logits = target_logits(policy_engine, batch)  # (N, V): the targets' positions only
        logprobs = by_sequence(batch, logprobs_of(logits, batch, consume=True), width)  # (b, Tr)
        values = by_sequence(batch, target_scores(value_engine, batch), width)  # (b, Tr)
        policy = ppo_policy_loss(logprobs, minibatch.logprobs, minibatch.advantages, mask, config.clip)
        value = ppo_value_loss(values, minibatch.values, minibatch.returns, mask, config.value_clip)
        share = share_of(mask.sum(), dist)
        loss = (policy.loss + config.value_coef * value.loss) * share
        stats = {"policy_loss": policy.loss * share, "value_loss": value.loss * share}
        if ptx is not None:
            blocks = ptx_batch(ptx, pad, training.state, config, dist)
            ptx_share = share_of((blocks.labels != IGNORE_INDEX).sum(), dist)
            stats["ptx_loss"] = ptx_loss_of(policy_engine, blocks) * ptx_share
            loss = loss + config.ptx_coef * stats["ptx_loss"]
    with torch.no_grad():  # before backward: it writes the logits' gradient into them (consume)
        stats["entropy"] = entropy_from_logits(logits.detach()).mean() * share
    training.backward(loss)
    stats["clip_fraction"], stats["approx_kl"] = policy.clip_fraction * share, policy.approx_kl * share
    stats["value_clip_fraction"] = value.clip_fraction * share
    out = dict(zip(stats, torch.stack([v.detach().float() for v in stats.values()]).tolist(), strict=True))
    loss_mean, grad_norm, lr = training.optimizer_step(loss.detach(), 1)  # its share of the global mean
    # These are the same on every process: each holds 1 / world of them.
    return out | {"loss": loss_mean / dist.world, "grad_norm": grad_norm / dist.world, "lr": lr / dist.world}


# ------------------------------------------------------------------------------------------- statistics


def _iteration_row(
    rollouts: RolloutBatch, update: dict[str, float], beta: float, seconds: list[float], dist: Dist
) -> dict[str, Any]:
    """One metrics line: rollout statistics over all processes' answers, update statistics summed over
    processes (each holds its part: `_minibatch_step`), the explained variance averaged over processes,
    and this process's seconds in each phase."""
    mask = rollouts.response_mask
    kl = ((rollouts.logprobs - rollouts.ref_logprobs) * mask).sum(1)  # (B,) summed per answer
    ev = explained_variance(rollouts.values, rollouts.returns, mask)
    local = [rollouts.scores.sum(), rollouts.rewards.sum(), kl.sum(), mask.sum(), len(rollouts)]
    f64 = {"dtype": torch.float64, "device": dist.device}  # on the device: NCCL reduces nothing else
    totals = all_reduce_sum(torch.tensor([float(x) for x in local], **f64), dist).tolist()
    parts = all_reduce_sum(torch.tensor([*update.values(), ev / dist.world], **f64), dist)
    averaged = dict(zip([*update, "explained_variance"], parts.tolist(), strict=True))
    n = totals[4]
    row = {"score": totals[0] / n, "reward": totals[1] / n, "kl": totals[2] / n, "beta": beta}
    row["kl_per_token"] = totals[2] / max(totals[3], 1.0)  # the same KL, per answer token
    row |= {key: averaged.pop(key) for key in ("entropy", "policy_loss", "value_loss", "loss")}
    row |= {**averaged, "response_length": totals[3] / n}
    row |= {name: round(s, 4) for name, s in zip(TIMINGS, seconds, strict=True)}
    return {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in row.items()}


def kl_controller(options: KLOptions) -> FixedKLController | AdaptiveKLController:
    """β: fixed at `coef`, or steered towards `target` KL (Ziegler et al. 2019)."""
    if options.adaptive:
        return AdaptiveKLController(options.coef, options.target, options.horizon)
    return FixedKLController(options.coef)


def total_updates(config: PPOConfig) -> int:
    """Optimizer steps of the whole run: iterations × epochs × minibatches per epoch."""
    return config.train.steps * config.ppo_epochs * math.ceil(config.rollout_batch / config.minibatch_size)


# ---------------------------------------------------------------------------------------------- data


def check_config(config: PPOConfig, has_reward_fn: bool) -> None:
    """Raise ValueError naming the first setting PPO cannot run with."""
    checks = [
        (bool(config.reward_model) or has_reward_fn, "set reward_model=FOLDER (from `instructgpt reward`)"),
        (config.rollout_batch >= 1, "rollout_batch must be >= 1"),
        (config.generation_batch >= 1, "generation_batch must be >= 1"),
        (prompt_limit(config) >= 1, "sampling.max_new_tokens must be smaller than model.max_length"),
        (
            prompt_limit(config) + config.sampling.max_new_tokens <= config.model.max_length,
            f"max_prompt_length={config.max_prompt_length} + sampling.max_new_tokens="
            f"{config.sampling.max_new_tokens} must be at most model.max_length={config.model.max_length} "
            "(a prompt and its answer are one row of the policy)",
        ),
        (config.minibatch_size >= 1, "minibatch_size must be >= 1"),
        (config.ppo_epochs >= 1, "ppo_epochs must be >= 1"),
        (config.ptx_coef >= 0, "ptx_coef must be >= 0"),
        (config.ptx_coef == 0 or bool(config.ptx_files), "ptx_coef > 0 needs ptx_files (pretraining texts)"),
        (config.ptx_block_size >= 1, "ptx_block_size must be >= 1"),
        (not config.kl.adaptive or config.kl.target > 0, "kl.target must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"ppo: {message}")
    check_engine(config)


def read_prompts(
    inputs: Sequence[str | Path], rejects: Rejects, decontaminate: Decontaminator | None = None
) -> list[list[Message]]:
    """The messages to answer of every Prompt or Conversation in `inputs`, less the records sharing an
    n-gram with `decontaminate`'s evaluation files (checked on the messages PPO prompts with)."""
    messages = []
    for raw, record in read_records(inputs, (Prompt, Conversation), rejects):
        assert isinstance(record, (Prompt, Conversation))
        prompt = Prompt(record.id, prompt_messages(record), record.source)
        if prompt.messages and not contaminated(decontaminate, prompt, raw.where, rejects):
            messages.append(prompt.messages)
    if not messages:
        raise ValueError(f"no prompts in {', '.join(map(str, inputs))}")
    return messages


def prompt_limit(config: PPOConfig) -> int:
    """The longest prompt kept: `max_prompt_length`, or (0) what leaves room for a full answer in a row."""
    return config.max_prompt_length or config.model.max_length - config.sampling.max_new_tokens


def render_prompts(tokenizer: Any, messages: list[list[Message]], config: PPOConfig) -> PromptSet:
    """Render every prompt; those longer than `prompt_limit` are left out (counted)."""
    limit, kept, ids = prompt_limit(config), [], []
    for m in messages:
        rendered = render_prompt(tokenizer, m)
        if len(rendered) <= limit:
            kept.append(m)
            ids.append(rendered)
    if not ids:
        raise ValueError(
            f"every prompt is longer than {limit} tokens (max_prompt_length; by default model.max_length - "
            "sampling.max_new_tokens)"
        )
    digest = hashlib.sha256(repr(ids).encode()).hexdigest()[:16]
    return PromptSet(kept, ids, len(messages), len(messages) - len(ids), digest)


def _expect(config: PPOConfig, prompts: PromptSet, ptx: PtxData | None) -> dict[str, Any]:
    """What a checkpoint must share with this run for a resume to be exact."""
    return {
        "model": to_dict(config.model),
        "lora": to_dict(config.lora),
        "models": [config.reward_model, config.value_model, config.reference],
        "seed": config.train.seed,
        "batches": [config.rollout_batch, config.minibatch_size, config.ppo_epochs],
        "prompts": prompts.fingerprint,
        "ptx": ptx.fingerprint if ptx is not None else None,
        "ptx_batch": (config.ptx_batch_size or config.minibatch_size) if ptx is not None else None,
    }


# -------------------------------------------------------------------------------------------- report


def _report(
    inputs: Sequence[str | Path],
    training: Training,
    config: PPOConfig,
    prompts: PromptSet,
    rows: list[dict[str, Any]],
) -> PPOReport:
    state = training.state
    last = rows[-1] if rows else (read_metrics(training.out_dir / "metrics.jsonl") or [{}])[-1]
    return PPOReport(
        stage="ppo",
        model=config.model.name,
        reward_model=config.reward_model or None,
        **training.facts("parameters", "trainable_parameters"),
        lora=config.lora.enabled,
        inputs=[str(p) for p in inputs],
        prompt_records=prompts.records,
        prompts=len(prompts.ids),
        too_long=prompts.too_long,
        iterations=state.step,
        iterations_this_run=state.step - training.first_step,
        rollouts=state.step * config.rollout_batch * training.dist.world,
        tokens_seen=state.tokens_seen,
        final_score=last.get("score"),
        final_kl=last.get("kl"),
        final_kl_per_token=last.get("kl_per_token"),
        kl_coef=state.extra.get("kl_controller", {}).get("beta", config.kl.coef),
        seconds={name: round(sum(r[name] for r in rows), 3) for name in TIMINGS},
        **training.facts("world_size", "resumed_from", "train_seconds"),
        outputs=training.outputs("model", "value_model", "checkpoints", "metrics.jsonl", "train_report.json"),
        config=to_dict(config),
        **training.facts("seconds_this_run", "decontaminated"),
    )


def plot_rewards(rows: list[dict[str, Any]], path: Path) -> str:
    """Mean score and KL against iteration as a PNG; returns the path, or why there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: matplotlib is not installed (pip install matplotlib)"
    if not rows:
        return "skipped: no iterations logged"
    steps = [r["step"] for r in rows]
    fig, score_axis = plt.subplots(figsize=(6, 4))
    score_axis.plot(steps, [r["score"] for r in rows], color="tab:blue", label="mean score")
    score_axis.set(xlabel="iteration", ylabel="mean score", title="PPO")
    kl_axis = score_axis.twinx()
    kl_axis.plot(steps, [r["kl"] for r in rows], color="tab:red", label="KL (nats per answer)")
    kl_axis.set_ylabel("KL to the reference (nats per answer)")
    fig.legend(loc="upper left")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)
