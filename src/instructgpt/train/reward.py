"""`instructgpt reward`: Comparisons in, a reward model out, trained with InstructGPT's K-wise ranking loss;
and `instructgpt score`: rewards for a file.

Model: the LM backbone (usually the SFT model) with a scalar head on the last token of prompt + response
(a plain `…ForSequenceClassification`, num_labels=1). Data (reward_data.py): each Comparison's K ≥ 2
responses, reordered best first and rendered after the prompt (chat_format.render_response), with their
tiers. Loss: for every prompt the mean of `-log σ(r_better − r_worse − margin)` over its C(K, 2) pairs
(with `ties=drop`, less the pairs a ranking ties), averaged over prompts (losses.ranking_loss): all K
responses of a prompt go through one forward pass of one step, as in the paper, so no response is seen
in several gradient steps. A batch's responses are packed into rows
(sequences.pack_sequences), each attending only to itself.

After training, a bias is chosen so that the rewards of the SFT policy's own answers to a prompt set
average 0 (InstructGPT normalises the RM before RL); it is stored as `reward_bias` in the model's config,
and every instructgpt reader (score, ppo, eval: scoring.py) adds it. Plain `transformers` loading ignores
it, which shifts all rewards by one constant and changes no comparison. `best/` (chosen before
normalising) has none.

The held-out comparisons are evaluated (ranking loss, pairwise accuracy) before the first step (the
starting point: `eval_start` in the report, step 0 in metrics.jsonl), every `eval_every` steps and at
the end. Outputs in OUT: `model/` (last), `best/` (highest held-out pairwise accuracy), `checkpoints/`,
`metrics.jsonl`, `loss_curve.png`, `train_report.json`, `eval_scores.jsonl` (each held-out comparison's
scores by the final model, best first, and its pairs ordered right: to see which comparisons it gets
wrong), `rejects.jsonl`. `instructgpt score`'s agreement with a ranking leaves tied pairs out.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instructgpt.chat_format import render_prompt
from instructgpt.config import RewardConfig, ScoreConfig, to_dict
from instructgpt.data.decontam import load_decontaminator
from instructgpt.distributed import Dist, all_reduce_sum, is_sharded
from instructgpt.generation.sampling import generate
from instructgpt.io import JsonlWriter, OnError, Rejects, read_records, write_json
from instructgpt.losses import pairwise_accuracy, ranking_loss
from instructgpt.models import PRESETS, load_model
from instructgpt.records import Comparison, Conversation, Message, Prompt, prompt_messages
from instructgpt.reports.training import RewardReport
from instructgpt.scoring import reward_bias, reward_scores, set_reward_bias
from instructgpt.sequences import last_token_scores, pack_sequences
from instructgpt.train.loop import LoopState, evaluate_start, next_indices, shard_rows
from instructgpt.train.progress import metrics_row
from instructgpt.train.reward_data import Ranked, RewardData, build_data
from instructgpt.train.run import Run, Training, open_run, read_all
from instructgpt.train.sharding import in_lockstep
from instructgpt.train.starting import starting_model, tuned_expect

_EVAL_KEYS = ("eval_loss", "eval_accuracy")  # what `evaluate` returns, as metrics.jsonl names it


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: RewardConfig, on_error: OnError = "fail"
) -> RewardReport:
    """Train a reward model on the Comparisons of `inputs` into `out_dir`, with the bias that centres the
    policy's rewards; returns the report (train_report.json)."""
    with open_run(out_dir, config, on_error) as run:
        training, data = _setup(inputs, config, run)
        _train(training, data, config)
        model, tokenizer, pad = training.model, training.tokenizer, training.tokenizer.pad_token_id
        held_out = held_out_rows(model, data.eval, config, pad, run.dist) if data.eval else []
        bias = normalize(model, tokenizer, config, data, run.dist)
        report = _report(inputs, training, config, data, bias)
        return training.finish(report, partial(_save, training, config, bias, held_out))


def _setup(inputs: Sequence[str | Path], config: RewardConfig, run: Run) -> tuple[Training, RewardData]:
    """The comparisons read, the backbone with a fresh scalar head built and their responses rendered best
    first; then the run started on them."""
    with run.reading():
        decontaminate = load_decontaminator(config.decontaminate)
        comparisons = read_all(inputs, Comparison, run.rejects, decontaminate=decontaminate)
        model, tokenizer = _build_model(config, comparisons, run.resume_from, run.dist)
        data = build_data(tokenizer, comparisons, config, run.rejects)
    return run.start(model, tokenizer, _expect(config, data)), data


def _save(
    training: Training, config: RewardConfig, bias: float, held_out: list[dict[str, Any]], final: nn.Module
) -> dict[str, str]:
    """The model with its normalising bias, the loss plot, and the held-out comparisons' scores."""
    set_reward_bias(final, bias)
    plot = training.save_with_plot(final, "RM", merge_lora=config.lora.merge)
    with JsonlWriter(training.out_dir / "eval_scores.jsonl") as writer:
        for row in held_out:
            writer.write(row)
    return plot


def _train(training: Training, data: RewardData, config: RewardConfig) -> None:
    """One iteration is one optimizer step over `batch_size * grad_accum * world` comparisons."""
    opts, state, model, dist = config.train, training.state, training.model, training.dist
    global_rows, pad = opts.batch_size * opts.grad_accum * dist.world, training.tokenizer.pad_token_id
    n = len(data.train)
    with training.logging("reward"):
        model.train()
        # 0. The starting point: held-out loss and pairwise accuracy before any update (a fresh run only).
        held_out = partial(evaluate, model, data.eval, config, pad, dist)
        evaluate_start(
            state, training.logger, lambda: dict(zip(_EVAL_KEYS, held_out(), strict=True)), bool(data.eval)
        )
        while state.step < opts.steps:
            step_start = time.perf_counter()
            # 1. The step's comparisons (the same list on every process); each process takes its share.
            indices, state.epoch, state.position = next_indices(
                n, global_rows, opts.seed, state.epoch, state.position
            )
            groups = [data.train[i] for i in indices]
            # 2. Per micro-batch: all K responses of its prompts in one forward; the loss is summed over
            #    prompts and divided by the step's prompt count, so any split gives the same update.
            totals = torch.zeros(4, device=dist.device)  # loss sum, correct pairs, pairs, tokens
            for rows in training.accumulate(
                shard_rows(range(global_rows), opts.batch_size, opts.grad_accum, dist)
            ):
                micro = [groups[r] for r in rows]
                with training.autocast():
                    loss_sum, correct, pairs = ranked_loss(training.engine, micro, config, pad, dist)
                training.backward(loss_sum / global_rows)
                tokens = sum(len(s) for g in micro for s in g.responses)
                totals += torch.stack([loss_sum.detach(), correct, pairs, torch.tensor(float(tokens))])
            # 3. Sum gradients over processes, guard, clip, step.
            loss, grad_norm, lr = training.optimizer_step(totals[0], global_rows)
            totals = all_reduce_sum(totals, dist)
            training.advance(int(totals[3]), loss, step_start)
            accuracy = float(totals[1] / totals[2].clamp(min=1))
            evaluated = _maybe_evaluate(training, data, config)
            row = partial(
                _metrics_row, state, lr, grad_norm, accuracy=accuracy, evaluated=evaluated, n_rows=n
            )
            training.end_step(loss, evaluated is not None, row, acc=accuracy)


def _metrics_row(
    state: LoopState,
    lr: float,
    grad_norm: float,
    tokens_per_s: float,
    accuracy: float,
    evaluated: tuple[float, float] | None,
    n_rows: int,
) -> dict[str, Any]:
    """loop's metrics line with the step's pairwise accuracy, and the held-out one when evaluated."""
    eval_loss = evaluated[0] if evaluated is not None else None
    row = metrics_row(state, lr, grad_norm, tokens_per_s, eval_loss, n_rows)
    row["accuracy"] = accuracy
    if evaluated is not None:
        row["eval_accuracy"] = evaluated[1]
    return row


def ranked_loss(
    model: nn.Module, groups: list[Ranked], config: RewardConfig, pad_id: int, dist: Dist
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ranking loss summed over the prompts of `groups`, correctly ordered pairs, pairs)."""
    scores, valid = group_scores(
        model, groups, config.model.max_length if config.packing else 0, pad_id, dist
    )
    tiers = group_tiers(groups, scores.shape[1], scores.device)
    loss = ranking_loss(scores, valid, config.margin, tiers) * len(groups)
    correct, pairs = pairwise_accuracy(scores.detach(), valid, tiers)
    return loss, correct.float(), pairs.float()


def group_scores(
    model: nn.Module, groups: list[Ranked], max_length: int, pad_id: int, dist: Dist
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (P, K_max) of each group's responses, best first, and which slots hold one (P, K_max)."""
    sequences = [r for g in groups for r in g.responses]
    batch = pack_sequences(sequences, max_length, pad_id).to(dist.device)
    flat = last_token_scores(model, batch)  # (S,)
    k_max = max(len(g.responses) for g in groups)
    scores = flat.new_zeros(len(groups), k_max)
    valid = torch.zeros(len(groups), k_max, dtype=torch.bool, device=flat.device)
    offset = 0
    for p, group in enumerate(groups):
        k = len(group.responses)
        scores[p, :k] = flat[offset : offset + k]
        valid[p, :k] = True
        offset += k
    return scores, valid


def group_tiers(groups: list[Ranked], k_max: int, device: torch.device) -> torch.Tensor:
    """The tier of each group's responses (P, K_max), best first; padding slots get K_max (any value: the
    pair mask leaves them out)."""
    tiers = torch.full((len(groups), k_max), k_max, dtype=torch.long)
    for p, group in enumerate(groups):
        tiers[p, : len(group.tiers)] = torch.tensor(group.tiers)
    return tiers.to(device)


def _maybe_evaluate(training: Training, data: RewardData, config: RewardConfig) -> tuple[float, float] | None:
    """(eval loss, eval pairwise accuracy) when due; the most accurate model so far goes to `best/`."""
    if not data.eval or not training.eval_due():
        return None
    state, pad = training.state, training.tokenizer.pad_token_id
    loss, accuracy = evaluate(training.model, data.eval, config, pad, training.dist)
    state.last_eval = loss
    if state.extra.get("best_accuracy") is None or accuracy > state.extra["best_accuracy"]:
        state.extra["best_accuracy"], state.best_eval = accuracy, loss
        training.save_best(config.lora.merge)
    return loss, accuracy


@torch.no_grad()
def evaluate(
    model: nn.Module, groups: list[Ranked], config: RewardConfig, pad_id: int, dist: Dist
) -> tuple[float, float]:
    """Mean ranking loss per prompt and pairwise accuracy over `groups` (all processes together)."""
    model.eval()
    size = config.train.batch_size
    batches = [groups[i : i + size] for i in range(0, len(groups), size)]
    totals = torch.zeros(4, dtype=torch.float64, device=dist.device)  # loss sum, prompts, correct, pairs
    for chunk, counts in in_lockstep(batches, dist, is_sharded(model)):
        loss, correct, pairs = ranked_loss(model, chunk, config, pad_id, dist)
        totals += torch.stack([loss.double(), torch.tensor(len(chunk)), correct, pairs]) * counts
    model.train()
    totals = all_reduce_sum(totals, dist)
    return float(totals[0] / totals[1].clamp(min=1)), float(totals[2] / totals[3].clamp(min=1))


@torch.no_grad()
def held_out_rows(
    model: nn.Module, groups: list[Ranked], config: RewardConfig, pad_id: int, dist: Dist
) -> list[dict[str, Any]]:
    """Per held-out comparison (all processes', in id order): its scores best first (no normalising
    bias) and how many of its pairs the model orders right, for `eval_scores.jsonl`."""
    model.eval()
    size, width = config.train.batch_size, config.model.max_length if config.packing else 0
    batches = [groups[i : i + size] for i in range(0, len(groups), size)]
    rows = []
    for chunk, counts in in_lockstep(batches, dist, is_sharded(model)):
        scores, valid = group_scores(model, chunk, width, pad_id, dist)
        tiers = group_tiers(chunk, scores.shape[1], scores.device)
        one = [slice(i, i + 1) for i in range(len(chunk))]
        correct = [pairwise_accuracy(scores[i], valid[i], tiers[i]) for i in one]
        rows += [
            {"id": g.id, "scores": [round(x, 6) for x in row[: len(g.responses)]],
             "correct": int(c), "pairs": int(n)}
            for g, row, (c, n) in zip(chunk, scores.tolist(), correct, strict=True)
        ] if counts else []  # fmt: skip
    model.train()
    if dist.world > 1:
        parts: list[Any] = [None] * dist.world
        torch.distributed.all_gather_object(parts, rows)
        rows = [row for part in parts for row in part]
    return sorted(rows, key=lambda row: row["id"])


# ----------------------------------------------------------------------------------------- normalising


@torch.no_grad()
def normalize(model: nn.Module, tokenizer: Any, config: RewardConfig, data: RewardData, dist: Dist) -> float:
    """The bias that makes the policy's answers to the normalisation prompts average reward 0 (0.0 when
    switched off or when there is no policy: a preset model.name has no SFT model to ask)."""
    options = config.normalize
    policy_name = options.policy or config.model.name
    if not options.enabled or policy_name in PRESETS:
        return 0.0
    prompts = _normalization_prompts(config, data)
    gguf = "" if options.policy else config.model.gguf_file
    policy, policy_tokenizer = load_model(
        dataclasses.replace(config.model, name=policy_name, gguf_file=gguf, tokenizer=""), "causal_lm"
    )
    policy.to(dist.device).eval()
    # A sharded reward model needs every process in every forward: then each one does all the prompts.
    mine = prompts if is_sharded(model) else prompts[dist.rank :: dist.world]
    answers = []
    for i in range(0, len(mine), options.batch_size):
        chunk = mine[i : i + options.batch_size]
        ids = [render_prompt(policy_tokenizer, p) for p in chunk]
        answers += [g.text for g in generate(policy, policy_tokenizer, ids, options.sampling)]
    del policy
    size, limit = config.train.batch_size, config.model.max_length
    scores = reward_scores(model, tokenizer, mine, answers, size, limit, dist.device)
    total = all_reduce_sum(torch.tensor([scores.sum().item(), len(scores)], dtype=torch.float64), dist)
    return -float(total[0] / total[1].clamp(min=1))


def _normalization_prompts(config: RewardConfig, data: RewardData) -> list[list[Message]]:
    if config.normalize.prompts:
        rejects = Rejects("fail", None)
        records = read_records(config.normalize.prompts, (Prompt, Conversation), rejects)
        prompts = [prompt_messages(r) for _, r in records]
    else:
        prompts = [g.prompt for g in (data.eval or data.train)]
    return [p for p in prompts if p][: config.normalize.max_prompts]


# ---------------------------------------------------------------------------------------------- data


def _build_model(
    config: RewardConfig, comparisons: list[Comparison], resume_from: Path | None, dist: Dist
) -> tuple[nn.Module, Any]:
    """The backbone with a fresh scalar head (seeded, the same on every process), LoRA-wrapped if asked."""
    texts = (t for c in comparisons for t in (*(m.content for m in c.prompt), *c.responses))
    return starting_model(config, "sequence_classification", texts, resume_from, dist, num_labels=1)


def _expect(config: RewardConfig, data: RewardData) -> dict[str, Any]:
    """What a checkpoint must share with this run for a resume to be exact."""
    return tuned_expect(config, data.fingerprint, margin=config.margin)


# ---------------------------------------------------------------------------------------------- score


@dataclass(frozen=True)
class Scored:
    """What `instructgpt score` did (score_report.json, key for key): the records read, the responses
    scored, the bias included, the agreement with the Comparisons' rankings, the scores file, the first
    records' rows."""

    records: int
    scored: int
    reward_bias: float
    pairwise_accuracy: float | None  # None: no Comparisons
    output: str
    preview: list[dict[str, Any]]


def score_file(
    inputs: Sequence[str | Path], out_dir: str | Path, config: ScoreConfig, on_error: OnError = "fail"
) -> Scored:
    """Rewards (with the model's bias) for every Comparison response or Conversation's last reply, to
    `out_dir/scores.jsonl`; for Comparisons also whether the reward model agrees with the ranking."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model(config.model, "sequence_classification", num_labels=1)
    model.eval()
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    records = [r for _, r in read_records(inputs, (Comparison, Conversation), rejects)]
    rejects.close()
    bias, scored, pairs, preview = reward_bias(model), 0, torch.zeros(2), []
    with JsonlWriter(out_dir / "scores.jsonl") as writer, torch.no_grad():
        for record in records:
            prompt, responses = _candidates(record)
            prompts = [prompt] * len(responses)
            size, limit = config.batch_size, config.model.max_length
            scores = reward_scores(model, tokenizer, prompts, responses, size, limit, Dist().device) + bias
            row: dict[str, Any] = {"id": record.id, "scores": [round(float(s), 6) for s in scores]}
            if isinstance(record, Comparison):
                ordered = scores[record.ranking][None]
                tiers = torch.tensor([record.rank_tiers()], device=ordered.device)
                correct, n = pairwise_accuracy(ordered, torch.ones_like(ordered, dtype=torch.bool), tiers)
                pairs += torch.stack([correct, n]).float()
                row["agrees"] = float(correct / n) if n else None  # None: every response tied
            writer.write(row)
            preview += [row] if len(preview) < PREVIEW else []
            scored += len(responses)
    accuracy = float(pairs[0] / pairs[1]) if pairs[1] else None
    result = Scored(len(records), scored, bias, accuracy, str(out_dir / "scores.jsonl"), preview)
    write_json(out_dir / "score_report.json", dataclasses.asdict(result))
    return result


PREVIEW = 10  # records shown by `instructgpt score`


def _candidates(record: Comparison | Conversation) -> tuple[list[Message], list[str]]:
    if isinstance(record, Comparison):
        return list(record.prompt), list(record.responses)
    if not record.messages or record.messages[-1].role != "assistant":
        raise ValueError(f"conversation {record.id}: it does not end with an assistant reply to score")
    return list(record.messages[:-1]), [record.messages[-1].content]


# -------------------------------------------------------------------------------------------- report


def _report(
    inputs: Sequence[str | Path], training: Training, config: RewardConfig, data: RewardData, bias: float
) -> RewardReport:
    return RewardReport(
        inputs=[str(p) for p in inputs],
        model=config.model.name,
        lora=config.lora.enabled,
        **training.facts("parameters", "trainable_parameters"),
        comparisons=len(data.train) + len(data.eval),
        eval_comparisons=len(data.eval),
        eval_pairs=data.eval_pairs,
        train_pairs=data.pairs,
        dropped=data.dropped,
        tied_pairs_dropped=data.tied_pairs,
        all_tied_comparisons=data.all_tied,
        **training.facts("steps", "steps_this_run", "final_loss", "eval_start", "eval_loss"),
        eval_accuracy=training.state.extra.get("best_accuracy"),
        reward_bias=bias,
        **training.facts("world_size", "sharded", "resumed_from", "train_seconds", "seconds_this_run"),
        outputs=training.outputs("model", "best", "checkpoints", "metrics.jsonl"),
        config=to_dict(config),
        **training.facts("read_errors", "decontaminated"),
    )


def print_scores(result: Scored) -> None:
    """The first records' rewards as a table, then what was scored and where all of it is."""
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "rewards", "agrees with ranking", box=None)
    for row in result.preview:
        agrees = f"{row['agrees']:.0%}" if row.get("agrees") is not None else ""
        table.add_row(str(row["id"]), "  ".join(f"{s:+.3f}" for s in row["scores"]), agrees)
    Console().print(table)

    agreement = result.pairwise_accuracy
    agrees = f"; agrees with {agreement:.1%} of ranked pairs" if agreement is not None else ""
    Console().print(
        f"score: {result.scored} responses of {result.records} records (bias "
        f"{result.reward_bias:+.4f} included){agrees} → {result.output}"
    )
