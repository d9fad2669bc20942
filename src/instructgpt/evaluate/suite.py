"""`instructgpt eval`: Conversation files and models in; per-task scores on seen and held-out templates and
families, judged win rates, and `eval_report.json` out.

Every Conversation is one example: the prompt is everything before its last assistant message, the
reference is that message. Per file, at most `max_per_task` examples per (task, language) are kept (a
seeded sample). Each example is labelled with the split it measures, from the instruct stage's
`split.json`: `heldout_family` (its task family was kept out of training), `heldout_template` (its template
was, or never occurs among the training templates), else `seen`.

Each model answers every prompt (batched `generate`, greedy by default; a prompt too long for
`max_length` keeps its end) into `generations-NAME.jsonl` (with each example's own scores and the options
it chose), and is scored per (task, language, template):

| task | metrics |
|---|---|
| summarization | rouge1, rouge2, rougeL (Chinese by character) |
| qa_extractive, qa_open | exact_match, f1 (SQuAD; CMRC for Chinese) |
| qa_multiple_choice, sentiment_* | accuracy (`parse_choice` of the answer), accuracy_ranked, and with
  `calibrate` accuracy_calibrated |
| dialogue_* | rougeL, bleu (sacrebleu corpus BLEU, 0-100), distinct_1, distinct_2 (corpus level) |
| any other task, and inverse templates | rougeL |
| every task | ref_nll: mean per-token NLL of the reference reply given the prompt (teacher forced) |

The options of a classification example are the distinct references of its task, language and template
in its file; for multiple choice, those its prompt mentions when it lists at least two including the
reference (each question has its own choices). accuracy_ranked picks the option of highest mean log-prob
per token (as `likelihood.rank_options`, in packed batches), over examples with at least two options.
accuracy_calibrated ranks them after contextual calibration (`stats.calibrate`): the example's prompt
rebuilt from its template with the input text replaced by "N/A", "" and "[MASK]"
(`likelihood.content_free_prompts`; examples of templates not in the built-in packs are left out).
Inverse templates (the built-in packs' `kind: inverse`: write a review for a label, a question for an
answer) produce text, so they are scored as text whatever their task.

Every score carries n and a 95% interval (`stats.score`: Wilson for accuracies and exact match, else a
seeded percentile bootstrap over the examples, recomputing corpus BLEU and distinct-n on each resample).
Rows of `scores` are per template; `summary` pools the examples of a family, language and split (its
tasks and templates), `summary_by_split` those of a split. Classification rows of labelled tasks
(sentiment) carry `predicted`, the share of each option chosen ("(none)": the answer named none).
`comparisons` holds each later model minus the first, and each pair of `compare_pairs`, per summary row:
the paired difference on the same examples with its paired-bootstrap interval and a verdict.

Win rates (winrate.py): every later model against the first, by a reward model and/or an LLM judge.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from instructgpt.chat_format import Rendered, render_prompt, render_response
from instructgpt.config import ConfigError, EvalConfig, ModelOptions, SamplingOptions, to_dict
from instructgpt.evaluate import stats, winrate
from instructgpt.evaluate.examples import EvalExample, load_examples, templates
from instructgpt.evaluate.likelihood import content_free_messages, mean_logprobs
from instructgpt.evaluate.score_rows import (
    SUMMARY_KEYS,
    TEMPLATE_KEYS,
    ModelResult,
    comparison_rows,
    observe,
    pairs,
    score_rows,
)
from instructgpt.evaluate.winrate import prompt_text
from instructgpt.generation.sampling import check_options, generate
from instructgpt.io import JsonlWriter, OnError, Rejects
from instructgpt.progress import track
from instructgpt.records import Message
from instructgpt.reports.inference import EvalReport

_GENERIC_NAMES = ("model", "best", "final")  # folder names that say nothing: keep the parent's too


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: EvalConfig, on_error: OnError = "fail"
) -> EvalReport:
    """Evaluate `config.models` on the Conversations of `inputs` into `out_dir`; returns the report
    also written to eval_report.json."""
    from instructgpt.distributed import stage_process

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
    names, seed, resamples = list(results), config.seed, config.bootstrap_resamples

    def rows(keys: tuple[str, ...]) -> list[dict[str, Any]]:
        return [row for n in names for row in score_rows(n, examples, results[n], keys, seed, resamples)]

    report = EvalReport(
        models=names,
        scores=rows(TEMPLATE_KEYS),
        summary_rows=rows(SUMMARY_KEYS),
        summary_by_split=rows(("split",)),
        comparisons=comparison_rows(pairs(names, config.compare_pairs), examples, results, seed, resamples),
        win_rates=win_rates,
        samples=_samples(examples, results, config.samples, config.seed),
        config=to_dict(config),
        seconds=round(time.perf_counter() - started, 3),
        inputs=[str(p) for p in inputs],
        read_errors=rejects.counts["read_error"],
        outputs={"report": str(out_dir / EvalReport.FILE)}
        | {f"generations-{name}": str(_generations_path(out_dir, name)) for name, _ in models},
    )
    return report.write(out_dir)


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
    if config.bootstrap_resamples < 1:
        raise ConfigError("bootstrap_resamples must be >= 1")
    pairs([name for name, _ in models], config.compare_pairs)  # names each model it compares
    check_options(config.sampling)


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
    scored = _likelihoods(model, tokenizer, examples, (config.rank_options, config.calibrate), size, limit)
    answers = _answers(model, tokenizer, [e.prompt for e in examples], sampling, size, limit)
    extra = _answers(model, tokenizer, extra_prompts, sampling, size, limit)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    observed = [observe(ex, answer, *s) for ex, answer, s in zip(examples, answers, scored, strict=True)]
    result = ModelResult(answers, extra, [o for o, _ in observed], [p for _, p in observed])
    _write_generations(_generations_path(out_dir, name), examples, result)
    return result


def _answers(
    model: Any, tokenizer: Any, prompts: list[list[Message]], sampling: SamplingOptions, size: int, limit: int
) -> list[str]:
    """Answers in prompt order; generated longest prompt first so a batch pads little."""
    keep = max(1, limit - sampling.max_new_tokens)
    ids = [render_prompt(tokenizer, p)[-keep:] for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    answers = [""] * len(ids)
    for start in track(range(0, len(order), size), "eval generate", "batches"):
        chunk = order[start : start + size]
        for i, gen in zip(chunk, generate(model, tokenizer, [ids[i] for i in chunk], sampling), strict=True):
            answers[i] = gen.text
    return answers


def _likelihoods(
    model: Any, tokenizer: Any, examples: list[EvalExample], ways: tuple[bool, bool], size: int, limit: int
) -> list[tuple[str | None, str | None, float]]:
    """Per example: the best-ranked option, the best after contextual calibration (None when not ranked,
    not calibrated) and the reference's mean NLL per token. `ways`: (rank options, calibrate)."""
    sequences: dict[tuple[tuple[int, ...], tuple[int, ...]], Rendered] = {}  # each scored once

    def keys(prompt: list[Message], texts: list[str]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        rendered = [_last(render_response(tokenizer, prompt, text), limit) for text in texts]
        found = [(tuple(r.input_ids), tuple(r.loss_mask)) for r in rendered]
        sequences.update(zip(found, rendered, strict=True))
        return found

    plans = []
    for ex in examples:
        ranking = ways[0] and len(ex.options) > 1
        texts = ex.options if ranking else [ex.reference]
        template = templates().get(ex.template) if ranking and ways[1] else None
        free = content_free_messages(template, ex.prompt) if template is not None else None
        plans.append((texts, ranking, keys(ex.prompt, texts), [keys(p, texts) for p in free or []]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    logps = mean_logprobs(model, list(sequences.values()), size * limit, limit, pad)
    means = dict(zip(sequences, logps, strict=True))
    out = []
    for ex, (texts, ranking, own, free_keys) in zip(examples, plans, strict=True):
        scores = [means[k] for k in own]
        free_scores = [[means[k] for k in row] for row in free_keys]
        calibrated = texts[stats.calibrated_choice(scores, free_scores)] if free_scores else None
        ranked = texts[max(range(len(texts)), key=scores.__getitem__)] if ranking else None  # ties: first
        out.append((ranked, calibrated, -scores[texts.index(ex.reference)]))
    return out


def _last(rendered: Rendered, limit: int) -> Rendered:
    """The last `limit` tokens: the reply (the targets) stays whole unless it alone is longer."""
    return Rendered(rendered.input_ids[-limit:], rendered.loss_mask[-limit:])


def _generations_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"generations-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.jsonl"


def _write_generations(path: Path, examples: list[EvalExample], result: ModelResult) -> None:
    """Conversations ending with the model's answer, with the reference and split beside them, the
    example's own scores (the metrics that have one per example: not corpus BLEU or distinct-n) and the
    options it chose."""
    with JsonlWriter(path) as writer:
        for ex, answer, observed, predicted in zip(
            examples, result.answers, result.observed, result.predicted, strict=True
        ):
            messages = [{"role": m.role, "content": m.content} for m in ex.prompt]
            scores = {m: round(float(v), 6) for m, v in observed.items() if isinstance(v, float | int)}
            writer.write({
                "id": ex.id, "messages": [*messages, {"role": "assistant", "content": answer}],
                "task": ex.task, "template": ex.template, "lang": ex.lang, "source": ex.file,
                "split": ex.split, "reference": ex.reference, "scores": scores, "predicted": predicted,
            })  # fmt: skip


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
        size, limit = options.batch_size or config.batch_size, options.max_length or config.max_length
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
