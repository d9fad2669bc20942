"""`instructgpt pretrain`: causal-LM (GPT family) or masked-LM (BERT family) pretraining on Documents.

Data: Documents (or plain text) are read with io.read_records; a share `eval_fraction` of documents is
held out (by a seeded draw) for the eval loss, measured before the first step (the starting point:
`eval_start` in the report, step 0 in metrics.jsonl), every `eval_every` steps and at the end. A preset
model gets a tokenizer trained on the input texts. Causal: each document is `render_text` (text + eos),
all are concatenated and cut into rows of `block_size + 1` tokens (input = row[:-1], target = row[1:];
the last short row is padded and its pad targets ignored), so every token is predicted once per epoch.
Masked: each document becomes rows of `[CLS] up to block_size - 2 tokens [SEP]`; the masking
(losses.mlm_mask, 15 %, 80/10/10) is drawn per optimizer step from a generator seeded by (seed, step),
over the whole global batch, so it is the same on resume and for any number of processes. Inputs are
read row by row (`hf:` datasets streamed, files in batches); only the kept texts are held in memory.

The loop below is the whole training procedure, top to bottom; run.py opens and closes the run around
it (resume, optimizer, metrics, checkpoints; see loop.py for how several processes share the work).
Outputs in OUT: `model/` (a plain Hugging Face folder), `checkpoints/step-N/`, `metrics.jsonl`,
`tensorboard/`, `train_report.json`, `loss_curve.png` (when matplotlib is installed), `rejects.jsonl`.
`train.resume=auto` continues from the latest checkpoint and ends with bitwise the same weights as an
uninterrupted run (on the same hardware).
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
from torch import Tensor, nn

from instructgpt.chat_format import render_text
from instructgpt.config import PretrainConfig, to_dict
from instructgpt.distributed import Dist, all_reduce_sum, broadcast_parameters, is_sharded
from instructgpt.io import OnError, Rejects, read_typed
from instructgpt.lm_rows import ROW_PAD, causal_inputs, causal_rows
from instructgpt.losses import IGNORE_INDEX, lm_loss_sum, mlm_mask
from instructgpt.models import load_model
from instructgpt.records import Document
from instructgpt.reports.training import PretrainReport
from instructgpt.train.loop import evaluate_start, next_indices, shard_rows, split_indices
from instructgpt.train.progress import metrics_row
from instructgpt.train.rng import seed_everything
from instructgpt.train.run import RUN_FACTS, Training, open_run
from instructgpt.train.sharding import in_lockstep
from instructgpt.train.starting import resumed_options


@dataclass
class LMBatch:
    input_ids: Tensor  # (B, T) long
    labels: Tensor  # (B, T) long: the target at input position t (already shifted for causal), -100 = none
    attention_mask: Tensor | None  # (B, T) long, 1 = real token; None for causal rows (pads only at the end)
    tokens: int  # real (non-pad) input tokens

    def take(self, rows: Sequence[int], device: torch.device) -> LMBatch:
        index = torch.tensor(rows)
        mask = None if self.attention_mask is None else self.attention_mask[index].to(device)
        tokens = int(mask.sum()) if mask is not None else len(rows) * self.input_ids.shape[1]
        return LMBatch(self.input_ids[index].to(device), self.labels[index].to(device), mask, tokens)


@dataclass
class PretrainData:
    train: Tensor  # (N, L) long rows, ROW_PAD-filled; L = block_size + 1 (causal) or block_size (masked)
    eval_batches: list[LMBatch]
    documents: int
    eval_documents: int
    fingerprint: str  # of the training rows: a resume on other data is refused


@dataclass(frozen=True)
class Specials:
    """What batching needs from the tokenizer."""

    pad: int
    cls: int | None = None
    sep: int | None = None
    mask: int | None = None
    all_special: tuple[int, ...] = ()
    vocab_size: int = 0


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: PretrainConfig, on_error: OnError = "fail"
) -> PretrainReport:
    """Pretrain on `inputs` into `out_dir`; returns the report also written to train_report.json."""
    with open_run(out_dir, config, on_error) as run:
        with run.reading():
            texts = _read_texts(inputs, config, run.rejects)
        model, tokenizer = _build_model(config, texts, run.resume_from, run.dist)
        specials = _specials(tokenizer)
        data = build_data(tokenizer, texts, config, specials)
        training = run.start(model, tokenizer, _expect(config, data))
        _train(training, data, specials, config)
        report = _report(inputs, training, config, data)
        return training.finish(report, partial(training.save_with_plot, title="pretraining loss"))


def _train(training: Training, data: PretrainData, specials: Specials, config: PretrainConfig) -> None:
    """The training loop: one iteration is one optimizer step over `batch_size * grad_accum * world` rows."""
    opts, state, model, dist = config.train, training.state, training.model, training.dist
    global_rows = opts.batch_size * opts.grad_accum * dist.world
    with training.logging(f"pretrain {config.objective}"):
        model.train()
        # 0. The starting point: the held-out loss before any update (a fresh run only).
        held_out = partial(evaluate, model, data.eval_batches, dist)
        evaluate_start(state, training.logger, lambda: {"eval_loss": held_out()}, bool(data.eval_batches))
        while state.step < opts.steps:
            step_start = time.perf_counter()
            # 1. The step's rows: the same on every process; each takes its own micro-batches of them.
            indices, state.epoch, state.position = next_indices(
                len(data.train), global_rows, opts.seed, state.epoch, state.position
            )
            batch = make_batch(data.train[indices], config, specials, _mask_generator(opts.seed, state.step))
            n_targets = max(int((batch.labels != IGNORE_INDEX).sum()), 1)
            # 2. Forward/backward per micro-batch; each loss is a sum divided by the step's target count.
            loss_sum = torch.zeros((), device=dist.device)
            for rows in training.accumulate(
                shard_rows(range(global_rows), opts.batch_size, opts.grad_accum, dist)
            ):
                with training.autocast():
                    micro_loss = loss_sum_of(training.engine, batch.take(rows, dist.device))
                training.backward(micro_loss / n_targets)
                loss_sum += micro_loss.detach()
            # 3. Sum gradients over processes, guard against NaN/inf, clip, step.
            loss, grad_norm, lr = training.optimizer_step(loss_sum, n_targets)
            # 4. Book-keeping: counters, eval, metrics, checkpoint.
            training.advance(batch.tokens, loss, step_start)
            eval_loss = _maybe_evaluate(training, data)
            row = partial(metrics_row, state, lr, grad_norm, eval_loss=eval_loss, n_rows=len(data.train))
            training.end_step(loss, eval_loss is not None, row, lr=lr)


def loss_sum_of(model: nn.Module, batch: LMBatch) -> Tensor:
    """Summed NLL over the batch's targets (a () tensor), from the model's full forward: any head and
    any logit post-processing (softcaps, scales) is taken into account."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
    return lm_loss_sum(logits.flatten(0, 1), batch.labels.flatten(), consume=True)


def _maybe_evaluate(training: Training, data: PretrainData) -> float | None:
    if not data.eval_batches or not training.eval_due():
        return None
    state = training.state
    loss = evaluate(training.model, data.eval_batches, training.dist)
    state.last_eval = loss
    state.best_eval = loss if state.best_eval is None else min(state.best_eval, loss)
    return loss


@torch.no_grad()
def evaluate(model: nn.Module, batches: Sequence[LMBatch], dist: Dist) -> float:
    """Mean NLL per target over all `batches` (process r takes batches r, r + world, ...)."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=dist.device)
    for batch, counts in in_lockstep(batches, dist, is_sharded(model)):
        batch = batch.take(range(len(batch.input_ids)), dist.device)
        totals[0] += loss_sum_of(model, batch).double() * counts
        totals[1] += (batch.labels != IGNORE_INDEX).sum() * counts
    model.train()
    totals = all_reduce_sum(totals, dist)
    return float(totals[0] / totals[1].clamp(min=1))


# ---------------------------------------------------------------------------------------------- data


def _read_texts(inputs: Sequence[str | Path], config: PretrainConfig, rejects: Rejects) -> list[str]:
    texts = []
    documents = read_typed(inputs, Document, rejects, config.format or None, config.text_unit, stream=True)
    for _, record in documents:
        if record.text.strip():
            texts.append(record.text)
    if not texts:
        raise ValueError(f"no documents with text in {', '.join(map(str, inputs))}")
    return texts


def _build_model(
    config: PretrainConfig, texts: list[str], resume_from: Path | None, dist: Dist
) -> tuple[nn.Module, Any]:
    """Seeded model (identical on every process) and tokenizer; on resume a preset reuses the
    checkpoint's tokenizer, so the text is tokenized exactly as before."""
    options = resumed_options(config.model, resume_from)
    kind = "causal_lm" if config.objective == "clm" else "masked_lm"
    seed_everything(config.train.seed)
    model, tokenizer = load_model(options, kind, texts=texts)
    model.to(dist.device)
    broadcast_parameters(model, dist)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and config.block_size > limit:
        raise ValueError(f"block_size={config.block_size} is longer than the model's {limit} positions")
    return model, tokenizer


def _specials(tokenizer: Any) -> Specials:
    return Specials(
        pad=tokenizer.pad_token_id,
        cls=tokenizer.cls_token_id,
        sep=tokenizer.sep_token_id,
        mask=tokenizer.mask_token_id,
        all_special=tuple(tokenizer.all_special_ids),
        vocab_size=len(tokenizer),
    )


def build_data(tokenizer: Any, texts: list[str], config: PretrainConfig, specials: Specials) -> PretrainData:
    """Tokenize, split off the eval documents, and cut the rows (see the module docstring)."""
    train_ids, eval_ids = split_indices(len(texts), config.train.eval_fraction, config.train.seed)
    docs = _tokenize(tokenizer, texts, config.objective)
    if config.objective == "clm":
        train = causal_rows([docs[i] for i in train_ids], config.block_size)
        held = causal_rows([docs[i] for i in eval_ids], config.block_size)
    else:
        if specials.mask is None or specials.cls is None or specials.sep is None:
            raise ValueError("objective=mlm needs a tokenizer with [CLS], [SEP] and [MASK] (e.g. tiny-bert)")
        train = masked_rows([docs[i] for i in train_ids], config.block_size, specials)
        held = masked_rows([docs[i] for i in eval_ids], config.block_size, specials)
    if len(train) == 0:
        raise ValueError(f"the training documents give no rows of block_size={config.block_size}")
    eval_batches = []
    if len(held):  # masked once as a whole, so the eval masks do not depend on the batch size
        everything = make_batch(held, config, specials, _mask_generator(config.train.seed, -1))
        size, cpu = config.train.batch_size, torch.device("cpu")
        eval_batches = [
            everything.take(range(i, min(i + size, len(held))), cpu) for i in range(0, len(held), size)
        ]
    digest = hashlib.sha256(train.numpy().tobytes()).hexdigest()[:16]
    return PretrainData(train, eval_batches, len(texts), len(eval_ids), digest)


def _tokenize(tokenizer: Any, texts: list[str], objective: str) -> list[list[int]]:
    """Token ids per document: text + eos (causal) or bare text (masked; rows add [CLS] and [SEP])."""
    # Long documents are cut into rows later: silence the tokenizer's "longer than the maximum" warning.
    limit, tokenizer.model_max_length = tokenizer.model_max_length, 10**30
    try:
        if objective == "clm":
            return [render_text(tokenizer, text).input_ids for text in texts]
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    finally:
        tokenizer.model_max_length = limit


def masked_rows(docs: Sequence[Sequence[int]], block_size: int, specials: Specials) -> Tensor:
    """Each document cut into `[CLS] chunk [SEP]` rows of at most block_size tokens: (N, block_size)."""
    width = block_size - 2
    pieces = [doc[i : i + width] for doc in docs for i in range(0, len(doc), width)]
    rows = torch.full((len(pieces), block_size), ROW_PAD, dtype=torch.long)
    for i, piece in enumerate(pieces):
        rows[i, : len(piece) + 2] = torch.tensor([specials.cls, *piece, specials.sep])
    return rows


def _mask_generator(seed: int, step: int) -> torch.Generator:
    """Masking randomness of one step (step -1: the fixed eval masks), independent of the global RNG."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


def make_batch(
    rows: Tensor, config: PretrainConfig, specials: Specials, generator: torch.Generator
) -> LMBatch:
    """Stored rows (B, L) → model inputs and shifted (causal) or masked (BERT) labels, on the CPU."""
    real = rows != ROW_PAD
    if config.objective == "clm":
        inputs, labels = causal_inputs(rows, specials.pad)
        return LMBatch(inputs, labels, None, int(real[:, :-1].sum()))
    width = int(real.sum(1).max())  # drop columns that are padding in every row
    rows, real = rows[:, :width], real[:, :width]
    ids = torch.where(real, rows, specials.pad)
    special = ~real | torch.isin(ids, torch.tensor(specials.all_special))
    inputs, labels = mlm_mask(
        ids, special, config.mlm_probability, specials.mask, specials.vocab_size, generator
    )
    return LMBatch(inputs, labels, real.long(), int(real.sum()))


def _expect(config: PretrainConfig, data: PretrainData) -> dict[str, Any]:
    """What a checkpoint must share with this run for a resume to be exact."""
    return {
        "objective": config.objective,
        "block_size": config.block_size,
        "mlm_probability": config.mlm_probability,
        "model": to_dict(config.model),
        "seed": config.train.seed,
        "data": data.fingerprint,
    }


# -------------------------------------------------------------------------------------------- report


def _report(
    inputs: Sequence[str | Path], training: Training, config: PretrainConfig, data: PretrainData
) -> PretrainReport:
    return PretrainReport(
        stage="pretrain",
        objective=config.objective,
        model=config.model.name,
        **training.facts("parameters", "trainable_parameters"),
        inputs=[str(p) for p in inputs],
        documents=data.documents,
        eval_documents=data.eval_documents,
        train_rows=len(data.train),
        train_tokens=int((data.train != ROW_PAD).sum()),
        **training.facts(*RUN_FACTS),
        outputs=training.outputs("model", "checkpoints", "metrics.jsonl", "tensorboard", "train_report.json"),
        config=to_dict(config),
    )
