"""`instructgpt dpo`: Comparisons in, a policy tuned directly on the preferences out (DPO, IPO or SimPO).

Data: each Comparison's K ranked responses give all C(K, 2) (better, worse) pairs, less the tied ones
with `ties=drop` (dpo_data.py). A seeded share
`eval_fraction` of the *comparisons* is held out, so the pairs of one prompt never straddle train and eval;
it is evaluated before the first step (the starting point: `eval_start` in the report, step 0 in
metrics.jsonl), every `eval_every` steps and at the end.
Every response is rendered once with chat_format.render_response (prompt as context, the reply and its
end-of-turn tokens as targets); a pair with a sequence longer than `model.max_length` is dropped and
counted (`too_long=drop`, written to the rejects file) or stops the run (`too_long=error`).

Reference: the summed target log-probs of every sequence under the reference are computed once, before
the first step, in no-grad packed batches, and cached in `reference_logps.pt` (keyed by the rendered data
and the reference), so a resumed run reads them back; a cache that cannot be read or does not fit is
computed again, with a warning. The default reference is the starting model: the policy itself before
its first step (with LoRA: with its adapters disabled), so no second copy is loaded; `reference=FOLDER`
loads one for the pass and frees it. SimPO has no reference and skips the pass.

Loss: `LOSSES` maps `loss` to a small adapter over losses.py (DPO on summed log-probs; IPO and SimPO on
length-averaged ones): DPO and SimPO scale by `beta`, IPO regularises by `tau`. A step takes
`batch_size * grad_accum * world` pairs; each micro-batch packs its pairs' 2n sequences into rows for ONE
policy forward, and its loss is the per-pair mean times n_micro / n_global, so accumulation and
processes give the update of one big batch. The loop below is the whole procedure, top to bottom;
run.py opens and closes the run around it, loop.py holds the rest.

Outputs in OUT: `model/` (the last weights, LoRA merged unless `lora.merge=false`), `best/` (the lowest
eval loss), `checkpoints/step-N/`, `reference_logps.pt`, `metrics.jsonl` (loss, reward accuracy, margin,
chosen/rejected rewards, lr, grad_norm, pairs/s), `tensorboard/`, `train_report.json`, `loss_curve.png`,
`reward_accuracy.png`, `rejects.jsonl`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from instructgpt.chat_format import Rendered, use_packed_attention
from instructgpt.config import DPOConfig, to_dict
from instructgpt.data.decontam import load_decontaminator
from instructgpt.distributed import Dist, all_reduce_sum, barrier, is_sharded
from instructgpt.io import OnError
from instructgpt.losses import PreferenceLoss, dpo_loss, ipo_loss, simpo_loss
from instructgpt.metrics_log import read_metrics
from instructgpt.models import load_model
from instructgpt.records import Comparison
from instructgpt.reports.training import DPOReport
from instructgpt.sequences import pack_sequences, target_logprobs
from instructgpt.train.dpo_data import DPOData, Pair, build_data, read_comparisons
from instructgpt.train.loop import evaluate_start, next_indices, shard_rows
from instructgpt.train.progress import RateMeter, metrics_row, plot_metrics
from instructgpt.train.run import Run, Training, open_run
from instructgpt.train.sharding import in_lockstep
from instructgpt.train.starting import starting_model

REFERENCE_CACHE = "reference_logps.pt"
_STATS = ("loss", "reward_accuracy", "margin", "chosen_reward", "rejected_reward")


class PairLogps(NamedTuple):
    """Log-probs of n pairs' responses, summed over their targets, and the target counts."""

    chosen: Tensor  # (n,) policy
    rejected: Tensor  # (n,)
    chosen_count: Tensor  # (n,) long
    rejected_count: Tensor  # (n,) long
    ref_chosen: Tensor  # (n,) reference (0 for SimPO)
    ref_rejected: Tensor  # (n,)


class Reference(NamedTuple):
    logps: Tensor  # (S,) float32 on the CPU: summed target log-probs of each of DPOData.sequences
    origin: str  # "computed", "cache" or "none" (SimPO)


# ---------------------------------------------------------------------------------------------- losses


def _dpo(p: PairLogps, config: DPOConfig) -> PreferenceLoss:
    return dpo_loss(p.chosen, p.rejected, p.ref_chosen, p.ref_rejected, config.beta, config.label_smoothing)


def _ipo(p: PairLogps, config: DPOConfig) -> PreferenceLoss:
    c, r = p.chosen_count.clamp(min=1), p.rejected_count.clamp(min=1)  # length-averaged, as IPO wants
    return ipo_loss(p.chosen / c, p.rejected / r, p.ref_chosen / c, p.ref_rejected / r, config.tau)


def _simpo(p: PairLogps, config: DPOConfig) -> PreferenceLoss:
    c, r = p.chosen_count.clamp(min=1), p.rejected_count.clamp(min=1)
    return simpo_loss(p.chosen / c, p.rejected / r, config.beta, config.simpo_gamma)


LOSSES: dict[str, Callable[[PairLogps, DPOConfig], PreferenceLoss]] = {
    "dpo": _dpo,
    "ipo": _ipo,
    "simpo": _simpo,
}


# ------------------------------------------------------------------------------------------------- run


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: DPOConfig, on_error: OnError = "fail"
) -> DPOReport:
    """Tune a policy on the Comparisons of `inputs` into `out_dir`; returns the report (train_report.json)."""
    with open_run(out_dir, config, on_error) as run:
        training, data, reference = _setup(inputs, config, run)
        outcome = _train(training, data, reference, config)
        report = _report(inputs, training, config, data, outcome, reference)
        return training.finish(report, partial(_save, training, config))


def _setup(inputs: Sequence[str | Path], config: DPOConfig, run: Run) -> tuple[Training, DPOData, Reference]:
    """The comparisons read, the starting model built and their pairs rendered; the reference log-probs
    (of the starting weights: before the first step); then the run started on them."""
    with run.reading():
        comparisons = read_comparisons(inputs, run.rejects, load_decontaminator(config.decontaminate))
        model, tokenizer = _build_model(config, comparisons, run.resume_from, run.dist)
        data = build_data(tokenizer, comparisons, config, run.rejects)
    with run.precision.autocast():  # the reference in the policy's precision: equal at the start
        reference = reference_for(model, tokenizer, data, config, run.out_dir, run.dist)
    return run.start(model, tokenizer, _expect(config, data)), data, reference


def _save(training: Training, config: DPOConfig, final: nn.Module) -> dict[str, str]:
    """The model, and the loss and reward accuracy plots."""
    plots = training.save_with_plot(final, f"{config.loss.upper()} loss", merge_lora=config.lora.merge)
    series = [("reward_accuracy", "train", "-"), ("eval_reward_accuracy", "eval", "o-")]
    title, accuracy_png = "chosen reward > rejected", training.out_dir / "reward_accuracy.png"
    metrics = read_metrics(training.out_dir / "metrics.jsonl")
    return plots | {"accuracy_plot": plot_metrics(metrics, accuracy_png, title, "reward accuracy", series)}


def _train(training: Training, data: DPOData, reference: Reference, config: DPOConfig) -> dict[str, float]:
    """The training loop: one iteration is one optimizer step over `batch_size * grad_accum * world` pairs.
    Returns the outcome: the last eval's means and the train means of the last 10 steps."""
    opts, state, model, dist = config.train, training.state, training.model, training.dist
    n = opts.batch_size * opts.grad_accum * dist.world
    pairs_meter, recent, last_eval = RateMeter(), deque(maxlen=10), {}
    with training.logging(config.loss):
        model.train()
        # 0. The starting point: the held-out loss and rewards before any update (a fresh run only).
        held_out = partial(evaluate, model, data, data.eval_pairs, reference.logps, config, dist)
        with training.autocast():
            evaluate_start(state, training.logger, held_out, bool(data.eval_pairs))
        while state.step < opts.steps:
            step_start = time.perf_counter()
            # 1. The step's pairs: the same on every process; each takes its own micro-batches of them.
            indices, state.epoch, state.position = next_indices(
                len(data.pairs), n, opts.seed, state.epoch, state.position
            )
            # 2. One policy forward + backward per micro-batch (its share of the step's mean loss).
            sums = _step_gradients(training, data, reference.logps, indices, config)
            # 3. Sum gradients over processes, guard against NaN/inf, clip, step.
            loss, grad_norm, lr = training.optimizer_step(sums[0], n)
            # 4. Book-keeping: counters, reward statistics, eval (and the best model), metrics, checkpoint.
            sums = all_reduce_sum(sums, dist)
            training.advance(int(sums[-1]), loss, step_start)
            pairs_meter.add(n)
            recent.append(stats := _means(sums[1:-1], n, _STATS[1:]))
            evaluation = _maybe_evaluate(training, data, reference, config)
            last_eval = evaluation or last_eval
            base = partial(metrics_row, state, lr, grad_norm, eval_loss=None, n_rows=len(data.pairs))
            row = partial(_metrics_row, base=base, stats=stats, pairs=pairs_meter, evaluation=evaluation)
            training.end_step(loss, bool(evaluation), row, acc=stats["reward_accuracy"])
    means = {f"train_{k}": sum(s[k] for s in recent) / len(recent) for k in _STATS[1:]} if recent else {}
    return means | last_eval


def _metrics_row(
    tokens_per_s: float,
    base: Callable[[float], dict[str, Any]],
    stats: dict[str, float],
    pairs: RateMeter,
    evaluation: dict[str, float],
) -> dict[str, Any]:
    """The loop's metrics line, then the step's reward statistics, pairs per second and the evaluation."""
    return base(tokens_per_s) | stats | {"pairs_per_s": round(pairs.rate(), 2)} | evaluation


def _step_gradients(
    training: Training, data: DPOData, reference: Tensor, indices: list[int], config: DPOConfig
) -> Tensor:
    """Forward and backward of this process's micro-batches of a step's pairs (`indices`: all processes').

    Returns this process's sums over its pairs of [loss, correct, margin, chosen reward, rejected reward]
    and its input tokens, (6,) float64. Each micro-batch's mean loss is weighted by n_micro / n_global."""
    opts, n_global, loss_fn, dist = config.train, len(indices), LOSSES[config.loss], training.dist
    sums = torch.zeros(len(_STATS) + 1, dtype=torch.float64, device=dist.device)
    for rows in training.accumulate(shard_rows(range(n_global), opts.batch_size, opts.grad_accum, dist)):
        pairs = [data.pairs[indices[r]] for r in rows]
        with training.autocast():
            logps = pair_logps(training.engine, data.sequences, pairs, reference, config, dist.device)
            result = loss_fn(logps, config)
        training.backward(result.loss * (len(pairs) / n_global))
        sums[:-1] += _sums(result)
        sums[-1] += sum(len(data.sequences[i]) for p in pairs for i in (p.chosen, p.rejected))
    return sums


def pair_logps(
    model: nn.Module,
    sequences: Sequence[Rendered],
    pairs: Sequence[Pair],
    reference: Tensor,
    config: DPOConfig,
    device: torch.device,
) -> PairLogps:
    """ONE forward of `model` over the 2n sequences of `pairs`, packed into rows of model.max_length
    (`packing`; else one row each), and the reference log-probs (`reference`, (S,)) of the same sequences."""
    n, ids = len(pairs), [p.chosen for p in pairs] + [p.rejected for p in pairs]
    width = config.model.max_length if config.packing else 0
    batch = pack_sequences([sequences[i] for i in ids], width, _pad_id(model))
    sums, counts = target_logprobs(model, batch.to(device))  # (2n,), (2n,)
    ref = reference[torch.tensor(ids)].to(device)
    return PairLogps(sums[:n], sums[n:], counts[:n], counts[n:], ref[:n], ref[n:])


def _pad_id(model: nn.Module) -> int:
    """The pad id load_model put in the model's config (any id works: padding is never a target)."""
    return int(getattr(model.config, "pad_token_id", None) or 0)


def _sums(result: PreferenceLoss) -> Tensor:
    """[loss, correct, margin, chosen, rejected] summed over the batch's pairs: (5,) float64."""
    chosen, rejected = result.chosen_rewards.double(), result.rejected_rewards.double()
    total = result.loss.detach().double() * chosen.numel()
    correct = (chosen > rejected).sum().double()
    return torch.stack([total, correct, (chosen - rejected).sum(), chosen.sum(), rejected.sum()])


def _means(sums: Tensor, n: int, names: Sequence[str], prefix: str = "") -> dict[str, float]:
    return {prefix + name: float(value) / max(n, 1) for name, value in zip(names, sums.tolist(), strict=True)}


def _maybe_evaluate(
    training: Training, data: DPOData, reference: Reference, config: DPOConfig
) -> dict[str, float]:
    if not data.eval_pairs or not training.eval_due():
        return {}
    state = training.state
    with training.autocast():
        result = evaluate(training.model, data, data.eval_pairs, reference.logps, config, training.dist)
    state.last_eval = result["eval_loss"]
    if state.best_eval is None or state.last_eval < state.best_eval:
        state.best_eval = state.last_eval
        training.save_best(config.lora.merge)
    return result


@torch.no_grad()
def evaluate(
    model: nn.Module, data: DPOData, pairs: list[Pair], reference: Tensor, config: DPOConfig, dist: Dist
) -> dict[str, float]:
    """Mean loss, reward accuracy, margin and rewards over `pairs` (process r: batches r, r + world, ...)."""
    model.eval()
    totals = torch.zeros(len(_STATS), dtype=torch.float64, device=dist.device)
    size = config.train.batch_size
    batches = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    for chunk, counts in in_lockstep(batches, dist, is_sharded(model)):
        logps = pair_logps(model, data.sequences, chunk, reference, config, dist.device)
        totals += _sums(LOSSES[config.loss](logps, config)) * counts
    model.train()
    return _means(all_reduce_sum(totals, dist), len(pairs), _STATS, prefix="eval_")


# ------------------------------------------------------------------------------------------- reference


def reference_for(
    model: nn.Module, tokenizer: Any, data: DPOData, config: DPOConfig, out_dir: Path, dist: Dist
) -> Reference:
    """The reference log-probs of every sequence: from OUT/reference_logps.pt when it was made for the same
    rendered data and reference, else computed now and cached. SimPO has none (zeros)."""
    if config.loss == "simpo":
        return Reference(torch.zeros(len(data.sequences)), "none")
    path, key = out_dir / REFERENCE_CACHE, _reference_key(config, data)
    cached = _read_cache(path, key, len(data.sequences), dist.main)
    found = all_reduce_sum(torch.tensor(float(cached is not None), device=dist.device), dist)
    if cached is not None and int(found) == dist.world:  # every process has it, or all compute
        return Reference(cached, "cache")
    logps = compute_reference(model, tokenizer, data, config, dist)
    if dist.main:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"key": key, "reference": config.reference or config.model.name, "logps": logps}, tmp)
        os.replace(tmp, path)  # atomic: a killed save leaves no half-written cache
    barrier(dist)
    return Reference(logps, "computed")


def compute_reference(
    model: nn.Module, tokenizer: Any, data: DPOData, config: DPOConfig, dist: Dist
) -> Tensor:
    """Summed target log-probs of every sequence under the reference: `config.reference` loaded for this
    pass and freed after it, else `model` at its starting weights (LoRA: with its adapters disabled)."""
    separate = _load_reference(config, tokenizer, dist)
    scorer = separate if separate is not None else model
    adapters_off = model.disable_adapter() if separate is None and config.lora.enabled else nullcontext()
    width = config.model.max_length if config.packing else 0
    with adapters_off:
        logps = sequence_logps(scorer, data.sequences, 2 * config.train.batch_size, width, dist)
    del separate, scorer  # the separate reference is freed here
    return logps


@torch.no_grad()
def sequence_logps(
    model: nn.Module, sequences: Sequence[Rendered], per_batch: int, width: int, dist: Dist
) -> Tensor:
    """Summed target log-probs of each of `sequences`, (S,) float32 on the CPU, in no-grad packed batches of
    `per_batch` sequences; the processes split the batches and sum their shares."""
    was_training = model.training
    model.eval()
    out = torch.zeros(len(sequences), dtype=torch.float32, device=dist.device)
    chunks = [list(range(i, min(i + per_batch, len(sequences)))) for i in range(0, len(sequences), per_batch)]
    for chunk, counts in in_lockstep(chunks, dist, is_sharded(model)):
        batch = pack_sequences([sequences[i] for i in chunk], width, _pad_id(model))
        sums, _ = target_logprobs(model, batch.to(dist.device))
        if counts:
            out[torch.tensor(chunk, device=dist.device)] = sums
    model.train(was_training)
    return all_reduce_sum(out, dist).cpu()


def _load_reference(config: DPOConfig, tokenizer: Any, dist: Dist) -> nn.Module | None:
    """`config.reference` as its own model, or None when it is the starting model (no second copy)."""
    if config.reference in ("", config.model.name):
        return None
    options = dataclasses.replace(config.model, name=config.reference, gguf_file="", tokenizer="")
    reference, ref_tokenizer = load_model(options, "causal_lm")
    if ref_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"reference {config.reference}: its tokenizer differs from the policy's ({config.model.name}); "
            "DPO compares the log-probs of the same token ids under both"
        )
    if config.packing:
        use_packed_attention(reference)
    return reference.to(dist.device)


def _reference_key(config: DPOConfig, data: DPOData) -> str:
    """What the cached log-probs depend on: every rendered sequence and the reference's identity."""
    who = {"reference": config.reference, "model": to_dict(config.model), "seed": config.train.seed}
    digest = hashlib.sha256(json.dumps(who, sort_keys=True).encode())
    for s in data.sequences:
        digest.update(repr((s.input_ids, s.loss_mask)).encode())
    return digest.hexdigest()


def _read_cache(path: Path, key: str, n: int, warn: bool) -> Tensor | None:
    """The `n` cached log-probs made for `key`; None when there is no cache, and with a warning (when
    `warn`) when there is one that cannot be used: it is then computed again and replaced."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        why = _unusable(saved, key, n)
    except Exception as err:  # a damaged file fails in any layer of torch.load (zip, pickle, storages)
        why = f"cannot be read ({type(err).__name__}: {next(iter(str(err).splitlines()), '')})"
    if why is None:
        return saved["logps"].float()
    if warn:
        print(f"warning: {path}: {why}; computing the reference log-probs again", file=sys.stderr)
    return None


def _unusable(saved: Any, key: str, n: int) -> str | None:
    """Why a loaded cache cannot serve this run, or None when it can."""
    if not isinstance(saved, dict) or not isinstance(saved.get("logps"), Tensor):
        return "holds no tensor of log-probs"
    if saved.get("key") != key:
        return "was made for other data or another reference"
    logps = saved["logps"]
    if logps.shape != (n,) or not logps.is_floating_point():
        return f"holds {logps.dtype} log-probs of shape {tuple(logps.shape)}, not {n} floats"
    if not bool(torch.isfinite(logps).all()):
        return "holds log-probs that are not finite"
    return None


# ----------------------------------------------------------------------------------------------- start


def _build_model(
    config: DPOConfig, comparisons: list[Comparison], resume_from: Path | None, dist: Dist
) -> tuple[nn.Module, Any]:
    """Seeded starting model (identical on every process), LoRA-wrapped when asked, packed attention."""
    texts = (t for c in comparisons for t in (*(m.content for m in c.prompt), *c.responses))
    return starting_model(config, "causal_lm", texts, resume_from, dist)


def _expect(config: DPOConfig, data: DPOData) -> dict[str, Any]:
    """What a checkpoint must share with this run for a resume to be exact."""
    coefficient = "tau" if config.loss == "ipo" else "beta"  # the one the loss reads
    same = ("loss", coefficient, "label_smoothing", "simpo_gamma", "reference", "packing", "model", "lora")
    kept = {k: v for k, v in to_dict(config).items() if k in same}
    return kept | {"seed": config.train.seed, "data": data.fingerprint}


# ---------------------------------------------------------------------------------------------- report


def _report(
    inputs: Sequence[str | Path],
    training: Training,
    config: DPOConfig,
    data: DPOData,
    outcome: dict[str, float],
    reference: Reference,
) -> DPOReport:
    outputs = ("model", "best", "checkpoints", "metrics.jsonl", REFERENCE_CACHE)
    means = ("train_reward_accuracy", "train_margin", "train_chosen_reward", "train_rejected_reward",
             "eval_reward_accuracy", "eval_margin")  # fmt: skip
    return DPOReport(
        stage="dpo", loss=config.loss, beta=config.beta, tau=config.tau,
        model=config.model.name,
        reference=config.reference or config.model.name,
        **training.facts("parameters", "trainable_parameters"),
        lora=config.lora.enabled, inputs=[str(p) for p in inputs],
        comparisons=data.comparisons, eval_comparisons=data.eval_comparisons,
        pairs=len(data.pairs), eval_pairs=len(data.eval_pairs), dropped=data.dropped,
        tied_pairs_dropped=data.tied, all_tied_comparisons=data.all_tied,
        **training.facts("steps", "tokens_seen", "final_loss", "eval_start", "eval_loss", "best_eval_loss"),
        **{k: outcome.get(k) for k in means},
        **training.facts("world_size", "sharded", "train_seconds", "read_errors"),
        render_errors=training.run.rejects.counts.get("render", 0),
        outputs=training.outputs(*outputs), config=to_dict(config),
        reference_logps=reference.origin,
        **training.facts("steps_this_run", "resumed_from", "seconds_this_run", "decontaminated"),
    )  # fmt: skip
