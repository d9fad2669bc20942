"""`instructgpt sft`: Conversations in, a fine-tuned model out — full fine-tuning or LoRA.

Data: Conversations are rendered by chat_format.render_conversation with the model's chat template (the
one inference uses), assistant tokens as targets by default (`train_on=all` trains every token). One
longer than `model.max_length` is cut, dropped or refused (`truncate`), and counted; a dropped one is
written to `rejects.jsonl` with its length. A seeded share `eval_fraction` is held out for the eval loss,
measured before the first step (the starting point: `eval_start` in the report, step 0 in
metrics.jsonl), every `eval_every` steps and at the end. With `packing` the examples are packed
first-fit into rows of `model.max_length` tokens, each example keeping its own position ids and
attending only to itself (chat_format.use_packed_attention: per-example SDPA, no block mask); without it
every row holds one.

Loss: the LM head applied only at target positions (a boolean `logits_to_keep`), summed and divided
by the number of targets in the whole optimizer step, so accumulation and several processes give the
same update. The loop below is the whole procedure, top to bottom; run.py opens and closes the run
around it (resume, optimizer, metrics, checkpoints). Outputs in OUT: `model/` (the last weights,
LoRA merged unless `lora.merge=false`), `best/` (the lowest eval loss), `checkpoints/step-N/`,
`metrics.jsonl`, `tensorboard/`, `train_report.json`, `loss_curve.png`, `rejects.jsonl`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instructgpt import chat_format
from instructgpt.chat_format import PackedBatch, Rendered, collate, pack, render_conversation
from instructgpt.config import SFTConfig, to_dict
from instructgpt.data.decontam import load_decontaminator
from instructgpt.distributed import Dist, all_reduce_sum, is_sharded
from instructgpt.io import OnError, Rejects
from instructgpt.losses import IGNORE_INDEX, lm_loss_sum
from instructgpt.models import load_model
from instructgpt.records import Conversation
from instructgpt.records import to_dict as to_record_dict
from instructgpt.reports.training import SFTReport
from instructgpt.train.loop import evaluate_start, next_indices, shard_rows, split_indices
from instructgpt.train.progress import metrics_row
from instructgpt.train.run import RUN_FACTS, Run, Training, open_run, read_all
from instructgpt.train.sharding import in_lockstep
from instructgpt.train.starting import starting_model, tuned_expect


@dataclass
class SFTData:
    rows: list[list[Rendered]]  # training rows: one or more examples each
    eval_rows: list[list[Rendered]]
    examples: int
    eval_examples: int
    truncated: int
    dropped: int
    fingerprint: str  # of the training rows: a resume on other data is refused

    @property
    def target_tokens(self) -> int:
        return sum(sum(e.loss_mask) for row in self.rows for e in row)


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: SFTConfig, on_error: OnError = "fail"
) -> SFTReport:
    """Fine-tune on `inputs` into `out_dir`; returns the report also written to train_report.json."""
    with open_run(out_dir, config, on_error) as run:
        training, data = _setup(inputs, config, run)
        _train(training, data, config)
        report = _report(inputs, training, config, data)
        save = partial(training.save_with_plot, title="SFT loss", merge_lora=config.lora.merge)
        return training.finish(report, save)


def _setup(inputs: Sequence[str | Path], config: SFTConfig, run: Run) -> tuple[Training, SFTData]:
    """The conversations read, the starting model built (a preset's tokenizer trained on their texts)
    and their rows rendered; then the run started on them."""
    with run.reading():
        decontaminate = load_decontaminator(config.decontaminate)
        conversations = read_all(inputs, Conversation, run.rejects, decontaminate=decontaminate)
        model, tokenizer = _build_model(config, conversations, run.resume_from, run.dist)
        data = build_data(tokenizer, conversations, config, run.rejects)
    return run.start(model, tokenizer, _expect(config, data)), data


def _train(training: Training, data: SFTData, config: SFTConfig) -> None:
    """The training loop: one iteration is one optimizer step over `batch_size * grad_accum * world` rows."""
    opts, state, model, dist = config.train, training.state, training.model, training.dist
    global_rows, pad = opts.batch_size * opts.grad_accum * dist.world, training.tokenizer.pad_token_id
    with training.logging("sft"):
        model.train()
        # 0. The starting point: the held-out loss before any update (a fresh run only).
        held_out = partial(evaluate, model, training.tokenizer, data.eval_rows, opts.batch_size, dist)
        evaluate_start(state, training.logger, lambda: {"eval_loss": held_out()}, bool(data.eval_rows))
        while state.step < opts.steps:
            step_start = time.perf_counter()
            # 1. The step's rows: the same on every process; each takes its own micro-batches of them.
            indices, state.epoch, state.position = next_indices(
                len(data.rows), global_rows, opts.seed, state.epoch, state.position
            )
            step_rows = [data.rows[i] for i in indices]
            n_targets = max(sum(sum(e.loss_mask) for row in step_rows for e in row), 1)
            # 2. Forward/backward per micro-batch; each loss is a sum divided by the step's target count.
            loss_sum, tokens = torch.zeros((), device=dist.device), 0
            for rows in training.accumulate(
                shard_rows(range(global_rows), opts.batch_size, opts.grad_accum, dist)
            ):
                batch = collate([step_rows[r] for r in rows], pad).to(dist.device)
                with training.autocast():
                    micro_loss, _ = loss_sum_of(training.engine, batch)
                training.backward(micro_loss / n_targets)
                loss_sum += micro_loss.detach()
                tokens += sum(len(e) for r in rows for e in step_rows[r])
            # 3. Sum gradients over processes, guard against NaN/inf, clip, step.
            loss, grad_norm, lr = training.optimizer_step(loss_sum, n_targets)
            # 4. Book-keeping: counters, eval (and the best model), metrics, checkpoint.
            tokens = int(all_reduce_sum(torch.tensor(tokens, device=dist.device), dist))
            training.advance(tokens, loss, step_start)
            eval_loss = _maybe_evaluate(training, data, config)
            row = partial(metrics_row, state, lr, grad_norm, eval_loss=eval_loss, n_rows=len(data.rows))
            training.end_step(loss, eval_loss is not None, row, lr=lr)


def loss_sum_of(model: nn.Module, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL over the batch's targets and their count, the LM head applied at target positions only.

    The model runs on the packed rows with their restarting position ids and no attention mask: under
    packed attention every example attends only to itself, and padding only follows a row's last example.
    A boolean `logits_to_keep` makes the model's own forward project only the target positions: (N, V)
    logits, never (B, T, V). Going through the top-level forward (not the decoder and head separately)
    keeps wrappers working: PEFT, FSDP's parameter gathering, models that post-process their logits.
    """
    keep = batch.labels != IGNORE_INDEX  # (B, T)
    # use_cache=False: training needs no KV cache (and transformers' own packing detection needs none).
    out = model(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False, logits_to_keep=keep
    )
    return lm_loss_sum(out.logits, batch.labels[keep], consume=True), keep.sum()  # (N, V), (N,)


def _maybe_evaluate(training: Training, data: SFTData, config: SFTConfig) -> float | None:
    if not data.eval_rows or not training.eval_due():
        return None
    state = training.state
    loss = evaluate(
        training.model, training.tokenizer, data.eval_rows, config.train.batch_size, training.dist
    )
    state.last_eval = loss
    if state.best_eval is None or loss < state.best_eval:
        state.best_eval = loss
        training.save_best(config.lora.merge)
    return loss


@torch.no_grad()
def evaluate(
    model: nn.Module, tokenizer: Any, rows: list[list[Rendered]], batch_size: int, dist: Dist
) -> float:
    """Mean NLL per target token over `rows` (process r takes batches r, r + world, ...)."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=dist.device)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    for chunk, counts in in_lockstep(batches, dist, is_sharded(model)):
        loss_sum, count = loss_sum_of(model, collate(chunk, tokenizer.pad_token_id).to(dist.device))
        totals += torch.stack([loss_sum.double(), count.double()]) * counts
    model.train()
    totals = all_reduce_sum(totals, dist)
    return float(totals[0] / totals[1].clamp(min=1))


# ---------------------------------------------------------------------------------------------- data


def _build_model(
    config: SFTConfig, conversations: list[Conversation], resume_from: Path | None, dist: Dist
) -> tuple[nn.Module, Any]:
    """Seeded model (identical on every process), LoRA-wrapped when asked, switched to packed attention."""
    texts = (m.content for c in conversations for m in c.messages)
    return starting_model(config, "causal_lm", texts, resume_from, dist)


def render_all(
    tokenizer: Any, conversations: list[Conversation], config: SFTConfig, rejects: Rejects
) -> tuple[list[Rendered], int, int]:
    """Rendered examples, and how many were truncated and dropped for being longer than max_length.

    A conversation the chat template cannot render with a safe mask (see chat_format) stops the run, or
    with `--on-error skip` is counted and written to the rejects file."""
    limit, out, truncated, dropped = config.model.max_length, [], 0, 0
    for conv in conversations:
        try:
            example = render_conversation(tokenizer, conv.messages, config.train_on)
        except ValueError as err:
            if rejects.on_error == "fail":
                raise ValueError(f"conversation {conv.id}: {err}") from err
            rejects.filtered("render", conv.id, str(err), to_record_dict(conv))
            continue
        if len(example) <= limit:
            out.append(example)
        elif config.truncate == "error":
            raise ValueError(
                f"conversation {conv.id} has {len(example)} tokens, more than model.max_length={limit}"
            )
        elif config.truncate == "truncate" and any(example.loss_mask[:limit]):
            out.append(Rendered(example.input_ids[:limit], example.loss_mask[:limit]))
            truncated += 1
        else:  # drop, or truncation would leave no target
            why = "truncate=drop" if config.truncate == "drop" else f"no target in the first {limit} tokens"
            reason = f"{len(example)} tokens, more than model.max_length={limit} ({why})"
            rejects.filtered("too_long", conv.id, reason, to_record_dict(conv))
            dropped += 1
    return out, truncated, dropped


def build_data(
    tokenizer: Any, conversations: list[Conversation], config: SFTConfig, rejects: Rejects
) -> SFTData:
    """Render, split off the eval examples, and make rows (packed or one example each)."""
    examples, truncated, dropped = render_all(tokenizer, conversations, config, rejects)
    train_ids, eval_ids = split_indices(len(examples), config.train.eval_fraction, config.train.seed)
    train = [examples[i] for i in train_ids]
    held = [examples[i] for i in eval_ids]
    if not train:
        raise ValueError("no training examples left after the eval split and the length limit")
    rows = _rows(train, config)
    digest = hashlib.sha256(repr([[e.input_ids for e in row] for row in rows]).encode()).hexdigest()[:16]
    return SFTData(rows, _rows(held, config), len(examples), len(held), truncated, dropped, digest)


def _rows(examples: list[Rendered], config: SFTConfig) -> list[list[Rendered]]:
    if not config.packing:
        return [[e] for e in examples]
    return [[examples[i] for i in row] for row in pack([len(e) for e in examples], config.model.max_length)]


def _expect(config: SFTConfig, data: SFTData) -> dict[str, Any]:
    """What a checkpoint must share with this run for a resume to be exact."""
    return tuned_expect(config, data.fingerprint, train_on=config.train_on)


def show_mask(inputs: Sequence[str | Path], config: SFTConfig, n: int, console: Any = None) -> None:
    """Print the first `n` conversations as the model will see them, trained tokens highlighted."""
    from rich.console import Console
    from rich.panel import Panel

    conversations = read_all(inputs, Conversation, Rejects("fail"))
    _, tokenizer = load_model(
        config.model, "causal_lm", texts=(m.content for c in conversations for m in c.messages)
    )
    console = console or Console()
    for conv in conversations[:n]:
        rendered = render_conversation(tokenizer, conv.messages, config.train_on)
        title = f"{conv.id}: {sum(rendered.loss_mask)} of {len(rendered)} tokens trained"
        console.print(Panel(chat_format.show_mask(tokenizer, rendered), title=title, title_align="left"))


# -------------------------------------------------------------------------------------------- report


def _report(inputs: Sequence[str | Path], training: Training, config: SFTConfig, data: SFTData) -> SFTReport:
    return SFTReport(
        stage="sft",
        model=config.model.name,
        **training.facts("parameters", "trainable_parameters"),
        lora=config.lora.enabled,
        inputs=[str(p) for p in inputs],
        examples=data.examples,
        eval_examples=data.eval_examples,
        truncated=data.truncated,
        dropped=data.dropped,
        train_rows=len(data.rows),
        target_tokens=data.target_tokens,
        **training.facts(*RUN_FACTS, "decontaminated"),
        outputs=training.outputs("model", "best", "checkpoints", "metrics.jsonl"),
        config=to_dict(config),
        stripped_end_markers=training.run.rejects.counts["stripped_end_marker"],
    )
