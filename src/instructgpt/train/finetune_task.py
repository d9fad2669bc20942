"""`instructgpt finetune-task`: an encoder (BERT family) fine-tuned on labelled TaskExamples and scored.

The heads are in task_heads.py (features, loss, decoding and scoring per task kind: classification over
the task's canonical labels, or extractive QA over the context windows of encoder_features.py). This
module owns the rest of the stage:
- reading the TaskExamples of one task and the seeded held-out split (whole groups sharing a primary
  input, so every question on a passage lands on one side), or the eval examples from `eval_files`;
- the encoder with the task's head (for a preset, a tokenizer trained on the training texts);
- the training loop (built on train/run.py, as pretrain.py is), evaluating before the first step too
  (`eval_start` in the report beside the final `eval`, step 0 in metrics.jsonl), every `eval_every`
  steps and at the end, on the main process: accuracy, or SQuAD exact match / F1, overall and per
  language.

Outputs in `out_dir`: `model/` (loads with plain `AutoModelForSequenceClassification` or
`AutoModelForQuestionAnswering`; class names in `config.id2label`), `predictions.jsonl` (each eval
example with its prediction, reference and scores), `metrics.jsonl`, `finetune_report.json`,
`checkpoints/` (`train.resume=auto` continues the run), `rejects.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from instructgpt import models
from instructgpt.config import FinetuneTaskConfig, to_dict
from instructgpt.data.text import hash64
from instructgpt.distributed import Dist, broadcast_parameters
from instructgpt.instruct.loaders import read_task_examples
from instructgpt.instruct.split import primary_key
from instructgpt.io import JsonlWriter, OnError, Rejects
from instructgpt.records import TaskExample
from instructgpt.reports.training import FinetuneTaskReport
from instructgpt.train.encoder_features import Feature, Tokenizer, collate
from instructgpt.train.loop import LoopState, evaluate_start, next_indices, shard_rows
from instructgpt.train.rng import seed_everything
from instructgpt.train.run import Training, open_run
from instructgpt.train.sharding import sharding_requested
from instructgpt.train.starting import resumed_options
from instructgpt.train.task_heads import SUPPORTED_TASKS, Evaluation, Head, evaluate, make_head

# ------------------------------------------------------------------------------------------- run


@dataclass
class TaskData:
    task: str
    train: list[TaskExample]
    eval: list[TaskExample]
    counts: dict[str, Any]  # read, used, other tasks, eval source, train, eval


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: FinetuneTaskConfig, on_error: OnError = "fail"
) -> FinetuneTaskReport:
    """Fine-tune on the TaskExamples in `inputs` into `out_dir`; returns the report (finetune_report.json)."""
    if sharding_requested(config.train.fsdp):
        raise ValueError("train.fsdp: finetune-task replicates its encoder on every process (no sharding)")
    with open_run(out_dir, config, on_error) as run:
        with run.reading():
            data = read_data(inputs, config, run.rejects)
        head = make_head(data.task)
        model, tokenizer = _build_model(config, head, data.train, run.resume_from, run.dist)
        features = featurize(head, data, model, tokenizer, config)
        expect = {"task": data.task, "labels": list(head.labels), "features": _fingerprint(features.train)}
        training = run.start(model, tokenizer, expect)
        run_eval = partial(evaluate, model, head, features.eval, data.eval, tokenizer.pad_token_id, config)
        final = _train(training, head, features.train, run_eval, config)
        report: FinetuneTaskReport | None = None  # scored on the main process: the others read its report
        if run.dist.main:
            final = final or run_eval()  # None when resumed from a finished run
            report = _report(inputs, training, config, head, data, final, features)
        save = partial(_save, training, head, data.eval, final)
        return training.finish(report, save, FinetuneTaskReport)


def read_data(inputs: Sequence[str | Path], config: FinetuneTaskConfig, rejects: Rejects) -> TaskData:
    """The chosen task's examples, split into train and eval (or eval read from `eval_files`)."""
    examples = _read_examples(inputs, config, rejects)
    tasks = Counter(e.task for e in examples)
    task = choose_task(tasks, config.task)
    used = [e for e in examples if e.task == task]
    counts: dict[str, Any] = {"read": len(examples), "used": len(used)}
    counts["other_tasks"] = {name: n for name, n in sorted(tasks.items()) if name != task}
    if config.eval_files:
        train, counts["eval_from"] = used, "eval_files"
        held = [e for e in _read_examples(config.eval_files, config, rejects) if e.task == task]
    else:
        train, held = split_examples(used, config.train.eval_fraction, config.train.seed)
        counts["eval_from"] = f"split (fraction {config.train.eval_fraction:g}, seed {config.train.seed})"
    if not held or not train:
        side = "evaluate" if not held else "train"
        raise ValueError(f"no {task} examples to {side} on: adjust train.eval_fraction or give eval_files")
    return TaskData(task, train, held, counts | {"train": len(train), "eval": len(held)})


def _read_examples(
    paths: Sequence[str | Path], config: FinetuneTaskConfig, rejects: Rejects
) -> list[TaskExample]:
    found = read_task_examples(paths, rejects, config.layout or None, config.lang or None, config.text_unit)
    return [example for _, example in found]


def choose_task(tasks: Counter[str], wanted: str) -> str:
    """`wanted` if the inputs hold it; for "auto" the only supported task among them."""
    supported = sorted(t for t in tasks if t in SUPPORTED_TASKS)
    found = ", ".join(f"{t} ({n})" for t, n in sorted(tasks.items())) or "no examples"
    if wanted != "auto" and not tasks.get(wanted):
        raise ValueError(f"task={wanted}: the inputs have no such examples (found: {found})")
    if wanted == "auto" and len(supported) != 1:
        what = "several tasks it can train" if supported else "no task it can train"
        raise ValueError(f"finetune-task: the inputs hold {what} (found: {found}); name one with task=...")
    return supported[0] if wanted == "auto" else wanted


def split_examples(
    examples: Sequence[TaskExample], fraction: float, seed: int
) -> tuple[list[TaskExample], list[TaskExample]]:
    """(train, eval): whole groups of examples sharing a primary input (a passage, a text) are held out, in
    a seeded order, until `fraction` of the examples are; at least one group, never all."""
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(primary_key(e), []).append(i)
    if fraction <= 0 or len(groups) < 2:
        return list(examples), []
    wanted, held = max(1, round(len(examples) * fraction)), set[int]()
    for key in sorted(groups, key=lambda key: hash64(f"{seed}:{key}"))[:-1]:
        if len(held) >= wanted:
            break
        held.update(groups[key])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [examples[i] for i in sorted(held)]


def _build_model(
    config: FinetuneTaskConfig, head: Head, train: Sequence[TaskExample], resume: Path | None, dist: Dist
) -> tuple[Any, Tokenizer]:
    """The seeded model (the same on every process) with the task's head, and its tokenizer: for a preset,
    one trained on the training texts (on resume, the checkpoint's)."""
    options = resumed_options(config.model, resume)
    seed_everything(config.train.seed)
    texts = [e.fields[name] for e in train for name in ("question", "context", "text") if name in e.fields]
    model, tokenizer = models.load_model(options, head.kind, texts=texts, num_labels=max(len(head.labels), 2))
    if config.lora.enabled:
        model = models.apply_lora(model, config.lora)
    model.to(dist.device)
    broadcast_parameters(model, dist)
    return model, tokenizer


@dataclass
class TaskFeatures:
    """The model inputs of both sides, in windows of `window` tokens, and what featurizing counted."""

    train: list[Feature]
    eval: list[Feature]
    window: int
    counts: dict[str, dict[str, int]]  # per side: features, and truncated or QA's windows and questions


def featurize(
    head: Head, data: TaskData, model: Any, tokenizer: Tokenizer, config: FinetuneTaskConfig
) -> TaskFeatures:
    """Both sides' features in the longest window the model and tokenizer allow; none to train on stops."""
    window = _window(model, tokenizer, config.max_length)
    train_features, train_counts = head.featurize(head, data.train, tokenizer, window, config)
    eval_features, eval_counts = head.featurize(head, data.eval, tokenizer, window, config)
    if not train_features:
        raise ValueError(f"no training windows: every question is too long for max_length={window}, stride")
    counts = {"train": dict(train_counts), "eval": dict(eval_counts)}
    return TaskFeatures(train_features, eval_features, window, counts)


def _window(model: Any, tokenizer: Tokenizer, max_length: int) -> int:
    """`max_length`, capped by the model's positions and the tokenizer's own limit."""
    limits = [max_length, getattr(model.config, "max_position_embeddings", None) or max_length]
    if isinstance(tokenizer.model_max_length, int) and tokenizer.model_max_length < 10**6:
        limits.append(tokenizer.model_max_length)
    return min(limits)


def _fingerprint(features: Sequence[Feature]) -> str:
    """Of the training features: a resume on other data or another tokenization is refused."""
    digest = hashlib.sha256()
    for f in features:
        digest.update(json.dumps([f.input_ids, sorted(f.targets.items())]).encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------------- training


def _train(
    training: Training,
    head: Head,
    features: list[Feature],
    run_eval: Callable[[], Evaluation],
    config: FinetuneTaskConfig,
) -> Evaluation | None:
    """The training loop: one iteration is one optimizer step over `batch_size * grad_accum * world`
    features. Returns the last evaluation (main process)."""
    opts, state, model, dist = config.train, training.state, training.model, training.dist
    pad_id, global_rows = training.tokenizer.pad_token_id, opts.batch_size * opts.grad_accum * dist.world
    result = None
    with training.logging(f"finetune {head.kind}"):
        model.train()
        # 0. The starting point: the held-out scores before any update (a fresh run; the main process).
        evaluate_start(state, training.logger, lambda: _eval_fields(run_eval()), dist.main)
        while state.step < opts.steps:
            step_start = time.perf_counter()
            # 1. The step's rows (the same on every process); each process takes its own micro-batches.
            rows, state.epoch, state.position = next_indices(
                len(features), global_rows, opts.seed, state.epoch, state.position
            )
            # 2. Forward/backward; each loss is a sum over rows divided by the rows of the whole step.
            loss_sum = torch.zeros((), device=dist.device)
            for micro in training.accumulate(shard_rows(rows, opts.batch_size, opts.grad_accum, dist)):
                batch = collate([features[i] for i in micro], pad_id, dist.device)
                with training.autocast():
                    micro_loss = head.loss(training.engine(**batch.model_inputs()), batch)
                training.backward(micro_loss / global_rows)
                loss_sum += micro_loss.detach()
            # 3. Sum gradients over processes, guard against NaN/inf, clip, step.
            loss, grad_norm, lr = training.optimizer_step(loss_sum, global_rows)
            # 4. Book-keeping: counters, evaluation (main process), metrics, checkpoint.
            training.advance(sum(len(features[i].input_ids) for i in rows), loss, step_start)
            fresh = _maybe_evaluate(run_eval, training)
            result = fresh or result
            row = partial(_metrics_row, training.state, lr, grad_norm, result=fresh)
            training.end_step(loss, fresh is not None, row, lr=lr)
    return result


def _maybe_evaluate(run_eval: Callable[[], Evaluation], training: Training) -> Evaluation | None:
    """Every `eval_every` steps and at the end, on the main process only (the others go on and wait for
    it at the next gradient sum); the best accuracy (or F1) is kept in the loop state."""
    if not training.dist.main or not training.eval_due():
        return None
    state, result = training.state, run_eval()
    main = result.scores.get("accuracy", result.scores.get("f1", 0.0))
    state.last_eval = main
    state.best_eval = main if state.best_eval is None else max(state.best_eval, main)
    return result


def _metrics_row(
    state: LoopState, lr: float, grad_norm: float, tokens_per_s: float, result: Evaluation | None
) -> dict[str, Any]:
    row = {
        "step": state.step,
        "loss": state.log_loss_sum / max(state.log_steps, 1),
        "lr": lr,
        "grad_norm": grad_norm,
        "tokens": state.tokens_seen,
        "tokens_per_s": round(tokens_per_s, 1),
        "epoch": state.epoch,
    }
    return (row | _eval_fields(result)) if result is not None else row


def _eval_fields(result: Evaluation) -> dict[str, float]:
    """An evaluation as metrics.jsonl names it: eval_loss, eval_accuracy (or eval_exact_match, eval_f1)."""
    return {"eval_loss": result.loss} | {f"eval_{k}": v for k, v in result.scores.items() if k != "n"}


# ------------------------------------------------------------------------------------------- outputs


def _report(
    inputs: Sequence[str | Path], training: Training, config: FinetuneTaskConfig, head: Head, data: TaskData,
    final: Evaluation, features: TaskFeatures,
) -> FinetuneTaskReport:  # fmt: skip
    by_lang = {}
    for lang in sorted({e.lang for e in data.eval}):
        pairs = [(e, p) for e, p in zip(data.eval, final.predicted, strict=True) if e.lang == lang]
        by_lang[lang] = head.score([e for e, _ in pairs], [p for _, p in pairs])[0]
    evaluation: dict[str, Any] = {**final.scores, "loss": final.loss, "by_lang": by_lang}
    if head.labels:
        evaluation["majority_baseline"] = majority_baseline(data.train, data.eval)
    total, trainable = models.count_parameters(training.model)
    state, window = training.state, features.window
    return FinetuneTaskReport(
        task=data.task,
        head=head.kind,
        labels=list(head.labels),
        inputs=[str(p) for p in inputs],
        examples=data.counts,
        model={"name": config.model.name, "parameters": total, "trainable": trainable, "window": window},
        train={
            "steps": state.step,
            "resumed_at": training.first_step or None,
            "final_loss": state.last_loss,
            "tokens_seen": state.tokens_seen,
            "seconds": round(state.elapsed_s, 2),
        },
        eval_start={k.removeprefix("eval_"): v for k, v in (state.eval_start or {}).items()} or None,
        evaluation=evaluation,
        outputs={"model": "model", "predictions": "predictions.jsonl", "metrics": "metrics.jsonl"},
        config=to_dict(config),
        features=features.counts,
        rejects=dict(training.run.rejects.counts),
        seconds=_seconds(training),  # so far: `_save` counts the saving too
    )


def _save(
    training: Training, head: Head, examples: Sequence[TaskExample], final: Evaluation | None, model: Any
) -> dict[str, Any]:
    """The predictions, and the model with its class names (main process); the run's seconds."""
    assert final is not None  # evaluated on the main process
    _write_predictions(training.out_dir / "predictions.jsonl", head, examples, final)
    _label_config(model, head)
    models.save_model(model, training.tokenizer, training.out_dir / "model")
    return {"seconds": _seconds(training)}


def _seconds(training: Training) -> float:
    """The run's seconds so far."""
    return round(time.perf_counter() - training.run.started, 2)


def majority_baseline(train: Sequence[TaskExample], held: Sequence[TaskExample]) -> float:
    """Eval accuracy of always answering the most common training label (what "chance" means here)."""
    label = Counter(str(e.fields["label"]) for e in train).most_common(1)[0][0]
    return sum(str(e.fields["label"]) == label for e in held) / len(held)


def _write_predictions(path: Path, head: Head, examples: Sequence[TaskExample], final: Evaluation) -> None:
    with JsonlWriter(path) as writer:
        for e, p, scores in zip(examples, final.predicted, final.rows, strict=True):
            row = {"id": e.id, "lang": e.lang, "prediction": p, "reference": e.fields[head.reference]}
            writer.write(row | scores)


def _label_config(model: Any, head: Head) -> None:
    """Class names into the saved config, so that a plain `from_pretrained` model reports them."""
    if head.labels:
        config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
        config.id2label = dict(enumerate(head.labels))
        config.label2id = {label: i for i, label in enumerate(head.labels)}
