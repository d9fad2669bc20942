"""`instructgpt eval`: Conversation files and models in; per-task scores on seen and held-out templates and
families, judged win rates, and `eval_report.json` out.

Every Conversation is one example: the prompt is everything before its last assistant message, the
reference is that message. Per file, at most `max_per_task` examples per (task, language) are kept (a
seeded sample). Each example is labelled with the split it measures, from the instruct stage's
`split.json`: `heldout_family` (its task family was kept out of training), `heldout_template` (its template
was, or never occurs among the training templates), else `seen`.

Each model answers every prompt (batched `generate`, greedy by default; a prompt too long for
`max_length` keeps its end) into `generations-NAME.jsonl`, and is scored per (task, language, template):

| task | metrics |
|---|---|
| summarization | rouge1, rouge2, rougeL (Chinese by character) |
| qa_extractive, qa_open | exact_match, f1 (SQuAD; CMRC for Chinese) |
| qa_multiple_choice, sentiment_* | accuracy (`parse_choice` of the answer), accuracy_ranked |
| dialogue_* | rougeL, bleu (sacrebleu, 0-100), distinct_1, distinct_2 |
| any other task, and inverse templates | rougeL |
| every task | ref_nll: mean per-token NLL of the reference reply given the prompt (teacher forced) |

The options of a classification example are the distinct references of its task, language and template
in its file; for multiple choice, those its prompt mentions when it lists at least two including the
reference (each question has its own choices). accuracy_ranked picks the option of highest mean log-prob
per token (as `likelihood.rank_options`, in packed batches), over examples with at least two options.
Inverse templates (the built-in packs' `kind: inverse`: write a review for a label, a question for an
answer) produce text, so they are scored as text whatever their task.

Win rates (winrate.py): every later model against the first, by a reward model and/or an LLM judge.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from instructgpt.chat_format import Rendered, render_prompt, render_response
from instructgpt.config import ConfigError, EvalConfig, ModelOptions, SamplingOptions, to_dict
from instructgpt.evaluate import winrate
from instructgpt.evaluate.metrics import bleu, distinct_n, parse_choice, rouge, squad_em_f1
from instructgpt.evaluate.winrate import prompt_text
from instructgpt.generation import check_options, generate, prompt_messages
from instructgpt.io import JsonlWriter, OnError, Rejects, read_records, write_json
from instructgpt.records import Conversation, Message

CHOICE_TASKS = frozenset({"qa_multiple_choice", "sentiment_binary", "sentiment_fine"})
_KIND_OF_TASK = {"summarization": "rouge", "qa_extractive": "squad", "qa_open": "squad"}
_GENERIC_NAMES = ("model", "best", "final")  # folder names that say nothing: keep the parent's too


@dataclass
class EvalExample:
    """One Conversation of an eval file as a prompt, its reference reply and where it belongs."""

    id: str
    file: str
    task: str
    family: str
    lang: str
    template: str
    split: str  # seen | heldout_template | heldout_family
    prompt: list[Message]
    reference: str
    options: list[str]  # classification: the candidate answers, the reference among them; else []


@dataclass(frozen=True)
class SplitInfo:
    """What the instruct stage held out (split.json)."""

    templates: frozenset[str]
    families: frozenset[str]
    train_templates: frozenset[str] | None  # None: the file does not list them

    def label(self, family: str, template: str) -> str:
        if family in self.families:
            return "heldout_family"
        unseen = self.train_templates is not None and bool(template) and template not in self.train_templates
        return "heldout_template" if template in self.templates or unseen else "seen"


@dataclass
class ModelResult:
    """What one model produced: its answers and its score rows."""

    answers: list[str]  # one per example
    win_answers: list[str]  # answers to the win-rate prompts read from their own files
    scores: list[dict[str, Any]]


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: EvalConfig, on_error: OnError = "fail"
) -> dict[str, Any]:
    """Evaluate `config.models` on the Conversations of `inputs` into `out_dir`; returns the report
    also written to eval_report.json."""
    from instructgpt.train.loop import stage_process

    started, out_dir = time.perf_counter(), Path(out_dir)
    models = parse_models(config.models)
    _check(config, models)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    try:
        examples = load_examples(inputs, config.split_file, config.max_per_task, config.seed, rejects)
        wr, prompts = config.win_rate, [e.prompt for e in examples]
        count = wr.max_prompts if wr.reward_model or wr.judge_url else 0  # 0: no win rate, no prompts
        win_prompts, win_index = winrate.choose_prompts(prompts, wr.prompts, count, config.seed, rejects)
    except BaseException:
        rejects.abort()
        raise
    rejects.close()
    results: dict[str, ModelResult] = {}
    with stage_process(config.threads) as dist:
        extra = win_prompts if win_index is None else []
        for name, path in models:
            results[name] = _evaluate_model(name, path, examples, extra, config, out_dir, dist.device)
        win_rates = _win_rates(config, win_prompts, win_index, results, dist.device)
    report = {
        "models": [name for name, _ in models],
        "scores": [row for result in results.values() for row in result.scores],
        "win_rates": win_rates,
        "samples": _samples(examples, results, config.samples, config.seed),
        "config": to_dict(config),
        "seconds": round(time.perf_counter() - started, 3),
        "inputs": [str(p) for p in inputs],
        "read_errors": rejects.counts["read_error"],
        "outputs": {"report": str(out_dir / "eval_report.json")}
        | {f"generations-{name}": str(_generations_path(out_dir, name)) for name, _ in models},
    }
    write_json(out_dir / "eval_report.json", report)
    return report


# ---------------------------------------------------------------------------------------------- models


def parse_models(specs: Sequence[str]) -> list[tuple[str, str]]:
    """(display name, path) of each `PATH` or `NAME=PATH`; a bare path is named by its last folder
    (with the parent's when that is model/best/final: `sft/model`) or its .gguf file's stem."""
    models = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or Path(spec).exists():
            name, path = default_name(spec), spec
        models.append((name.strip(), path.strip()))
    names = [name for name, _ in models]
    if repeated := [n for i, n in enumerate(names) if n in names[:i]]:
        raise ConfigError(f"models: two models are both called {repeated[0]!r}; name them NAME=PATH")
    return models


def default_name(path: str) -> str:
    parts = Path(path.rstrip("/\\")).parts or (path,)
    if parts[-1].lower().endswith(".gguf"):
        return Path(parts[-1]).stem
    return "/".join(parts[-2:]) if parts[-1] in _GENERIC_NAMES and len(parts) > 1 else parts[-1]


def _check(config: EvalConfig, models: list[tuple[str, str]]) -> None:
    if not models:
        raise ConfigError(
            "models: give the models to evaluate, e.g. models=[base=runs/sft/model,runs/ppo/model]"
        )
    judging = config.win_rate.reward_model or config.win_rate.judge_url
    if judging and len(models) < 2:
        raise ConfigError("win_rate: a win rate compares models; give at least two in `models`")
    if config.win_rate.judge_url and not config.win_rate.judge_model:
        raise ConfigError("win_rate.judge_model: name the model the judge server should use")
    if config.max_length <= config.sampling.max_new_tokens:
        raise ConfigError("max_length: must exceed sampling.max_new_tokens (prompt + reply must fit)")
    if config.batch_size < 1 or config.max_per_task < 0 or config.samples < 0:
        raise ConfigError("batch_size must be >= 1; max_per_task and samples >= 0")
    check_options(config.sampling)


# ------------------------------------------------------------------------------------------------ data


def load_examples(
    inputs: Sequence[str | Path], split_file: str, max_per_task: int, seed: int, rejects: Rejects
) -> list[EvalExample]:
    """The examples of every file, sampled per (task, lang) and labelled with their split."""
    examples: list[EvalExample] = []
    for path in inputs:
        split = read_split(split_file or Path(path).parent / "split.json", required=bool(split_file))
        unreadable = rejects.counts["read_error"]
        records = [
            r for _, r in read_records([path], (Conversation,), rejects) if isinstance(r, Conversation)
        ]
        found = [e for r in records if (e := _example(r, str(path), split)) is not None]
        if not found:
            skipped = rejects.counts["read_error"] - unreadable
            raise ValueError(
                f"{path}: no conversations ending in an assistant reply (the reference answer) among "
                f"{len(records)} read and {skipped} unreadable records; eval reads Conversation files "
                "such as the heldout.jsonl of `instructgpt instruct`"
            )
        _add_options(found)
        examples += _sample_per_task(found, max_per_task, seed)
    return examples


def read_split(path: str | Path, required: bool) -> SplitInfo | None:
    """The held-out templates and families of a split.json; None when there is none (and none was named)."""
    path = Path(path)
    if not path.exists():
        if required:
            raise ValueError(f"split_file {path}: no such file")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        train = data.get("counts", {}).get("train_templates")
        held = frozenset(data.get("templates", [])), frozenset(data.get("families", []))
        return SplitInfo(*held, None if train is None else frozenset(train))
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise ValueError(f"{path}: not a split.json of `instructgpt instruct`: {err}") from err


def _example(record: Conversation, file: str, split: SplitInfo | None) -> EvalExample | None:
    from instructgpt.data.langid import detect_language
    from instructgpt.instruct.tasks import TASKS

    prompt = prompt_messages(record)
    reference = record.messages[-1].content
    if not prompt or record.messages[-1].role != "assistant" or len(prompt) != len(record.messages) - 1:
        return None  # a reply to nothing, or several trailing replies: no single prompt/reference pair
    family = TASKS[record.task].family if record.task in TASKS else "other"
    lang = record.lang or detect_language(" ".join(m.content for m in record.messages)).lang
    label = split.label(family, record.template) if split is not None else "seen"
    return EvalExample(
        record.id, file, record.task, family, lang, record.template, label, prompt, reference, []
    )


def _add_options(examples: list[EvalExample]) -> None:
    """Classification examples get the distinct references of their (task, lang, template) in the file."""
    groups: dict[tuple[str, str, str], dict[str, None]] = defaultdict(dict)
    for ex in examples:
        if ex.task in CHOICE_TASKS and _scoring_kind(ex.task, ex.template) == "choice":
            groups[ex.task, ex.lang, ex.template][ex.reference] = None
    for ex in examples:
        options = list(groups.get((ex.task, ex.lang, ex.template), {}))
        if ex.task == "qa_multiple_choice" and options:
            text = prompt_text(ex.prompt).lower()
            listed = [o for o in options if re.search(rf"(?<!\w){re.escape(o.lower())}(?!\w)", text)]
            options = listed if len(listed) >= 2 and ex.reference in listed else options
        ex.options = options


def _sample_per_task(examples: list[EvalExample], limit: int, seed: int) -> list[EvalExample]:
    by_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_task[ex.task, ex.lang].append(i)
    kept: list[int] = []
    for (task, lang), indices in by_task.items():
        if limit and len(indices) > limit:
            indices = random.Random(f"{seed}:{task}:{lang}").sample(indices, limit)
        kept += indices
    return [examples[i] for i in sorted(kept)]


# ---------------------------------------------------------------------------------------- one model


def _evaluate_model(
    name: str,
    path: str,
    examples: list[EvalExample],
    extra_prompts: list[list[Message]],
    config: EvalConfig,
    out_dir: Path,
    device: torch.device,
) -> ModelResult:
    """Load one model, score the references and options, answer every prompt, score the answers."""
    from instructgpt.chat_format import use_packed_attention
    from instructgpt.models import load_model

    model, tokenizer = load_model(ModelOptions(name=path, dtype=config.dtype), "causal_lm")
    model.to(device).eval()
    with contextlib.suppress(ValueError):  # a model that cannot swap is exact with its own attention
        use_packed_attention(model)  # packed scoring without a (T, T) mask; generation is unaffected
    context = getattr(model.config, "max_position_embeddings", None) or config.max_length
    limit, size, sampling = min(config.max_length, context), config.batch_size, config.sampling
    ranked, nll = _likelihoods(model, tokenizer, examples, config.rank_options, size, limit)
    answers = _answers(model, tokenizer, [e.prompt for e in examples], sampling, size, limit)
    extra = _answers(model, tokenizer, extra_prompts, sampling, size, limit)
    _write_generations(_generations_path(out_dir, name), examples, answers)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return ModelResult(answers, extra, score_rows(name, examples, answers, ranked, nll))


def _answers(
    model: Any, tokenizer: Any, prompts: list[list[Message]], sampling: SamplingOptions, size: int, limit: int
) -> list[str]:
    """Answers in prompt order; generated longest prompt first so a batch pads little."""
    from tqdm import tqdm

    keep = max(1, limit - sampling.max_new_tokens)
    ids = [render_prompt(tokenizer, p)[-keep:] for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    answers = [""] * len(ids)
    for start in tqdm(range(0, len(order), size), desc="eval generate", unit=" batches", disable=None):
        chunk = order[start : start + size]
        for i, gen in zip(chunk, generate(model, tokenizer, [ids[i] for i in chunk], sampling), strict=True):
            answers[i] = gen.text
    return answers


def _likelihoods(
    model: Any, tokenizer: Any, examples: list[EvalExample], rank: bool, size: int, limit: int
) -> tuple[list[str | None], list[float]]:
    """Per example: the best-ranked option (None when not ranked) and the reference's mean NLL per token."""
    texts = [ex.options if rank and len(ex.options) > 1 else [ex.reference] for ex in examples]
    items = [(i, text) for i, options in enumerate(texts) for text in options]
    sequences = [_last(render_response(tokenizer, examples[i].prompt, text), limit) for i, text in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    means = _mean_logprobs(model, sequences, size * limit, limit, pad)
    best: dict[int, tuple[float, str]] = {}
    nll = [math.nan] * len(examples)
    for (i, text), mean in zip(items, means, strict=True):
        if text == examples[i].reference:
            nll[i] = -mean
        if rank and len(examples[i].options) > 1 and (i not in best or mean > best[i][0]):
            best[i] = (mean, text)  # strictly greater: ties go to the first option
    return [best[i][1] if i in best else None for i in range(len(examples))], nll


def _last(rendered: Rendered, limit: int) -> Rendered:
    """The last `limit` tokens: the reply (the targets) stays whole unless it alone is longer."""
    return Rendered(rendered.input_ids[-limit:], rendered.loss_mask[-limit:])


@torch.no_grad()
def _mean_logprobs(model: Any, sequences: list[Rendered], budget: int, limit: int, pad: int) -> list[float]:
    """Mean log-prob per target token of each sequence; rows of `limit` tokens, `budget` tokens a pass."""
    from instructgpt.sequences import pack_sequences, target_logprobs

    device = next(model.parameters()).device
    out: list[float] = []
    start = 0
    while start < len(sequences):
        end, tokens = start, 0
        while end < len(sequences) and (end == start or tokens + len(sequences[end]) <= budget):
            tokens += len(sequences[end])
            end += 1
        sums, counts = target_logprobs(model, pack_sequences(sequences[start:end], limit, pad).to(device))
        out += (sums / counts.clamp(min=1)).tolist()
        start = end
    return out


def _generations_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"generations-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.jsonl"


def _write_generations(path: Path, examples: list[EvalExample], answers: list[str]) -> None:
    """Conversations ending with the model's answer, with the reference and split beside them."""
    with JsonlWriter(path) as writer:
        for ex, answer in zip(examples, answers, strict=True):
            messages = [{"role": m.role, "content": m.content} for m in ex.prompt]
            writer.write({
                "id": ex.id, "messages": [*messages, {"role": "assistant", "content": answer}],
                "task": ex.task, "template": ex.template, "lang": ex.lang, "source": ex.file,
                "split": ex.split, "reference": ex.reference,
            })  # fmt: skip


# --------------------------------------------------------------------------------------------- scoring


def score_rows(
    model: str, examples: list[EvalExample], answers: list[str], ranked: list[str | None], nll: list[float]
) -> list[dict[str, Any]]:
    """One row per (task, lang, template, split) and metric: {model, task, family, lang, template, split,
    metric, value, n}."""
    groups: dict[tuple[str, str, str, str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.task, ex.family, ex.lang, ex.template, ex.split].append(i)
    rows = []
    for (task, family, lang, template, split), index in groups.items():
        group = [examples[i] for i in index]
        metrics = group_metrics(group, [answers[i] for i in index], [ranked[i] for i in index])
        metrics["ref_nll"] = (sum(nll[i] for i in index) / len(index), len(index))
        for metric, (value, n) in metrics.items():
            key = {"model": model, "task": task, "family": family, "lang": lang, "template": template}
            rows.append(key | {"split": split, "metric": metric, "value": round(value, 6), "n": n})
    return rows


def group_metrics(
    examples: list[EvalExample], answers: list[str], ranked: list[str | None]
) -> dict[str, tuple[float, int]]:
    """metric → (value, n) for examples of one task, language and template (see the module table)."""
    refs, lang, n = [e.reference for e in examples], examples[0].lang, len(examples)
    kind = _scoring_kind(examples[0].task, examples[0].template)
    if kind == "rouge":
        return {k: (v, n) for k, v in rouge(answers, refs, lang).items()}
    if kind == "squad":
        em_f1 = [squad_em_f1(a, [r], lang) for a, r in zip(answers, refs, strict=True)]
        return {"exact_match": (_mean(x[0] for x in em_f1), n), "f1": (_mean(x[1] for x in em_f1), n)}
    if kind == "choice":
        chosen = [_chosen(e, a) == e.reference for e, a in zip(examples, answers, strict=True)]
        hits = [r == e.reference for e, r in zip(examples, ranked, strict=True) if r is not None]
        by_rank = {"accuracy_ranked": (_mean(hits), len(hits))} if hits else {}
        return {"accuracy": (_mean(chosen), n)} | by_rank
    rouge_l = {"rougeL": (rouge(answers, refs, lang)["rougeL"], n)}
    if kind != "dialogue":
        return rouge_l
    diversity = {f"distinct_{k}": (distinct_n(answers, k, lang), n) for k in (1, 2)}
    return rouge_l | {"bleu": (bleu(answers, refs, lang), n)} | diversity


def _chosen(example: EvalExample, answer: str) -> str | None:
    try:
        index = parse_choice(answer, example.options)
    except ValueError:  # an option that is only punctuation cannot be told apart
        return None
    return None if index is None else example.options[index]


def _scoring_kind(task: str, template: str) -> str:
    if template in _inverse_templates():
        return "text"
    if task in CHOICE_TASKS:
        return "choice"
    return "dialogue" if task.startswith("dialogue_") else _KIND_OF_TASK.get(task, "text")


@functools.cache
def _inverse_templates() -> frozenset[str]:
    from instructgpt.instruct.templates import load_templates

    return frozenset(t.id for t in load_templates() if t.kind == "inverse")


def _mean(values: Any) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0


# ------------------------------------------------------------------------------------ win rates, report


def _win_rates(
    config: EvalConfig,
    prompts: list[list[Message]],
    index: list[int] | None,
    results: dict[str, ModelResult],
    device: torch.device,
) -> list[dict[str, Any]]:
    """Rows {a, b, judge, ...} of every later model against the first, for each judge configured."""
    options = config.win_rate
    if not prompts:
        return []
    answers = {
        n: r.win_answers if index is None else [r.answers[i] for i in index] for n, r in results.items()
    }
    scores, judge = None, None
    if options.reward_model:
        size, limit = config.batch_size, config.max_length
        scores = winrate.reward_model_scores(
            options.reward_model, prompts, answers, size, limit, device, config.dtype
        )
    if options.judge_url:
        key = os.environ.get(options.judge_api_key_env, "") if options.judge_api_key_env else ""
        judge = winrate.Judge(options.judge_url, options.judge_model, key, options.judge_timeout)
    return winrate.win_rate_rows(
        list(results), prompts, answers, options.tie_margin, config.seed, scores, judge
    )


def _samples(
    examples: list[EvalExample], results: dict[str, ModelResult], k: int, seed: int
) -> list[dict[str, Any]]:
    """Up to `k` examples with every model's answer, drawn in turn from each task (seeded)."""
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_task[ex.task].append(i)
    for task, indices in by_task.items():
        random.Random(f"{seed}:samples:{task}").shuffle(indices)
    picked: list[int] = []
    while len(picked) < k and any(by_task.values()):
        for task in sorted(by_task):
            if by_task[task] and len(picked) < k:
                picked.append(by_task[task].pop())
    return [
        {"id": examples[i].id, "task": examples[i].task, "prompt": prompt_text(examples[i].prompt),
         "reference": examples[i].reference, "outputs": {m: r.answers[i] for m, r in results.items()}}
        for i in picked
    ]  # fmt: skip


def print_summary(report: dict[str, Any]) -> None:
    """The scores as a table (rows family/lang/split/metric, a column per model, templates and tasks
    averaged weighted by n), then the win rates."""
    from rich.console import Console
    from rich.table import Table

    from instructgpt.report import score_table  # the report's own aggregation: the same numbers there

    console, models = Console(), list(report["models"])
    table = Table("family", "lang", "split", "metric", "n", *models, title="eval scores", box=None)
    for row in score_table(report["scores"]):
        ns = "/".join(str(n) for n in dict.fromkeys(row.n.values()))
        values = [f"{row.values[m]:.3f}" if m in row.values else "–" for m in models]
        table.add_row(row.family, row.lang, row.split, row.metric, ns, *values)
    console.print(table)
    if report["win_rates"]:
        console.print(winrate.win_rate_table(report["win_rates"]))
    console.print(f"eval: {len(models)} models in {report['seconds']} s → {report['outputs']['report']}")
