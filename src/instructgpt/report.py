"""The run report: `report.md` and `report.html` in a run folder, from what the stage folders hold.

Each stage writes a JSON report (and training stages a `metrics.jsonl`); this module gathers them into
one document: the stages and the recipe, data statistics (prepare, instruct, corpus), training curves
(drawn here from metrics.jsonl with matplotlib's Agg backend, saved in `report_files/`), per-task score
tables with 95% intervals, paired comparisons, bar charts with error bars, win rates and side-by-side
samples from `eval_report.json`. The document is built
once as a list of blocks and rendered twice: Markdown linking the PNGs, and self-contained HTML with
the PNGs embedded as base64. A missing piece is skipped with a line saying so.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from instructgpt.metrics_log import read_metrics

FILES_DIR = "report_files"
TRAINING_KINDS = ("pretrain", "sft", "reward", "dpo", "ppo", "finetune-task")
SPLIT_ORDER = ("seen", "heldout_template", "heldout_family")
SAMPLES_SHOWN = 8


# ------------------------------------------------------------------------------------------- blocks


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Text:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: Path  # a PNG inside RUN_DIR/report_files
    alt: str


@dataclass
class Collapsed:
    """A folded code block: the recipe, a stage's config."""

    summary: str
    code: str
    lang: str = "yaml"


# ------------------------------------------------------------------------------------------ entry


def write_report(
    run_dir: str | Path, recipe: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]
) -> dict[str, Path]:
    """Write RUN_DIR/report.md and RUN_DIR/report.html; `recipe` has `path` and `text` (the YAML),
    `stages` the run's entries (name, stage, status, seconds). Returns both paths."""
    run_dir = Path(run_dir)
    blocks = build_blocks(run_dir, recipe, stages)
    paths = {"markdown": run_dir / "report.md", "html": run_dir / "report.html"}
    paths["markdown"].write_text(render_markdown(blocks, run_dir), encoding="utf-8")
    paths["html"].write_text(render_html(blocks, f"Run report: {run_dir}"), encoding="utf-8")
    return paths


def build_blocks(run_dir: Path, recipe: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The whole document, section by section."""
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    blocks: list[Any] = [
        Heading(1, f"Run report: {run_dir}"),
        Text(f"Recipe {recipe.get('path', '?')}, report written {when}."),
        Heading(2, "Stages"),
        Table(
            ["stage", "kind", "status", "seconds"],
            [[s["name"], s["stage"], s["status"], f"{s.get('seconds') or 0:.1f}"] for s in stages],
        ),
        Collapsed(f"recipe {recipe.get('path', '')}", str(recipe.get("text", ""))),
    ]
    for stage in (s for s in stages if s["stage"] == "demo-claims"):
        blocks += [Heading(2, "The method's claims"), *_stage_blocks(run_dir, stage)]
    blocks += _configs(run_dir, stages)
    for title, kinds, none in _SECTIONS:
        blocks.append(Heading(2, title))
        found = [s for s in stages if s["stage"] in kinds]
        blocks += [] if found else [Text(f"No {none[0]} stage in this run: {none[1]}.")]
        for stage in found:
            blocks += [Heading(3, f"{stage['name']} ({stage['stage']})"), *_stage_blocks(run_dir, stage)]
    return blocks


_SECTIONS = (
    ("Data", ("prepare", "instruct", "corpus"), ("prepare, instruct or corpus", "no data statistics")),
    ("Training", TRAINING_KINDS, ("training", "no curves")),
    ("Evaluation", ("eval",), ("eval", "no task scores, win rates or samples")),
)


def _stage_blocks(run_dir: Path, stage: Mapping[str, Any]) -> list[Any]:
    name, kind = stage["name"], stage["stage"]
    if kind in TRAINING_KINDS:
        return _training_blocks(run_dir, name, kind)
    report = _stage_report(run_dir, stage)
    if report is None:
        return [Text(f"No {_REPORT_FILES[kind]} in {run_dir / name}: skipped.")]
    if kind == "eval":
        return eval_blocks(report, run_dir / FILES_DIR, name)
    if kind == "demo-claims":
        return _claims_blocks(report)
    makers = {"prepare": _prepare_blocks, "instruct": _instruct_blocks, "corpus": _corpus_blocks}
    return makers[kind](run_dir / name, report)


def _claims_blocks(report: dict[str, Any]) -> list[Any]:
    from instructgpt.demo.claims import claims_table

    header, rows = claims_table(report)
    held = f"{report['held']} of {report['checked']} measured claims held on this run (one seed)."
    return [Text(held), Table(header, rows)]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


_REPORT_FILES = {
    "prepare": "prepare_report.json",
    "instruct": "instruct_report.json",
    "corpus": "corpus_stats.json",
    "finetune-task": "finetune_report.json",
    "eval": "eval_report.json",
    "demo-claims": "claims.json",
}


def _stage_report(run_dir: Path, stage: Mapping[str, Any]) -> dict[str, Any] | None:
    return _read_json(run_dir / stage["name"] / _REPORT_FILES.get(stage["stage"], "train_report.json"))


def _configs(run_dir: Path, stages: Sequence[Mapping[str, Any]]) -> list[Any]:
    configs = {s["name"]: (_stage_report(run_dir, s) or {}).get("config") for s in stages}
    return [
        Collapsed(f"{name}: config as run", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        for name, config in configs.items()
        if config is not None
    ]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --------------------------------------------------------------------------------------------- data


def _prepare_blocks(folder: Path, report: dict[str, Any]) -> list[Any]:
    langs = ", ".join(f"{k} {v}" for k, v in report.get("languages_out", {}).items()) or "none"
    rows = [[f["name"], _fmt(f["in"]), _fmt(f["removed"]), _fmt(f["out"])] for f in report.get("filters", [])]
    return [
        Text(
            f"Documents kept: {report.get('documents_out')} of {report.get('documents_in')} "
            f"(languages kept: {langs}; read errors: {report.get('read_errors', 0)}). "
            "Each filter's row counts the documents it saw and removed, in the order they ran."
        ),
        Table(["filter", "in", "removed", "out"], rows),
    ]


def _instruct_blocks(folder: Path, report: dict[str, Any]) -> list[Any]:
    counts: dict[str, Counter[tuple[str, str]]] = {}
    for split in ("train", "heldout"):
        counts[split] = _count_conversations(folder / f"{split}.jsonl")
    keys = sorted(set(counts["train"]) | set(counts["heldout"]))
    rows = [
        [task, lang, _fmt(counts["train"][(task, lang)]), _fmt(counts["heldout"][(task, lang)])]
        for task, lang in keys
    ]
    text = f"{report.get('examples')} task examples rendered into conversations; per task and language:"
    return [Text(text), Table(["task", "lang", "train conversations", "held-out conversations"], rows)]


def _count_conversations(path: Path) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    if not path.is_file():
        return counts
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                counts[(str(record.get("task", "")), str(record.get("lang", "")))] += 1
    return counts


def _corpus_blocks(folder: Path, report: dict[str, Any]) -> list[Any]:
    docs, fraction = report.get("documents", {}), report.get("augmented_fraction", {})
    tokens = [[kind, _fmt(n)] for kind, n in report.get("tokens", {}).items()]
    return [
        Text(
            f"{docs.get('augmented', 0)} augmented and {docs.get('raw', 0)} raw documents, "
            f"{report.get('pairs', {}).get('total', 0)} instruction pairs; augmented share of tokens "
            f"{_fmt(fraction.get('achieved'))} (target {_fmt(fraction.get('target'))}). "
            f"Tokens are counted in {report.get('token_unit', 'units')}."
        ),
        Table(["part", "tokens"], tokens),
    ]


# ----------------------------------------------------------------------------------------- training


_PANELS = {
    "ppo": (("mean score", ("score",)), ("KL (nats per answer)", ("kl",))),
    "default": (
        ("loss", ("loss", "eval_loss")),
        ("accuracy", ("accuracy", "eval_accuracy", "reward_accuracy", "eval_reward_accuracy")),
    ),
}
_MEASURED = {
    "ppo": "Per iteration: the reward model's mean score of the policy's answers and the KL to the "
    "reference policy (nats per answer).",
    "reward": "Pairwise ranking loss per step (train) and on held-out comparisons (eval), and the "
    "fraction of pairs ranked correctly.",
    "dpo": "Preference loss per step (train and eval) and reward accuracy: the fraction of pairs whose "
    "implicit reward prefers the chosen response.",
    "default": "Mean token cross-entropy per logged step (train) and on the held-out split (eval).",
}
_KEY_FACTS = ("model", "parameters", "steps", "iterations", "final_loss", "eval_loss", "best_eval_loss",
              "eval_accuracy", "eval_reward_accuracy", "final_score", "final_kl")  # fmt: skip


def _training_blocks(run_dir: Path, name: str, kind: str) -> list[Any]:
    blocks: list[Any] = [Text(_MEASURED.get(kind, _MEASURED["default"]))]
    report = _stage_report(run_dir, {"name": name, "stage": kind}) or {}
    facts = [[key, _fmt(report[key])] for key in _KEY_FACTS if key in report]
    blocks += [Table(["", "value"], facts)] if facts else []
    rows = read_metrics(run_dir / name / "metrics.jsonl")
    if not rows:
        return [*blocks, Text(f"No metrics.jsonl in {run_dir / name}: no curves.")]
    panels = _PANELS.get(kind, _PANELS["default"])
    image = plot_curves(rows, panels, run_dir / FILES_DIR / f"{name}_curves.png", name)
    return [*blocks, image if isinstance(image, Image) else Text(image)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    rows: list[dict[str, Any]], panels: Iterable[tuple[str, tuple[str, ...]]], path: Path, title: str
) -> Image | str:
    """One subplot per panel that has data, one line per metric key; returns the Image or why none."""
    used = [(label, keys) for label, keys in panels if any(k in r for r in rows for k in keys)]
    if not used:
        return f"{title}: metrics.jsonl has none of the plotted metrics."
    try:
        plt = _pyplot()
    except ImportError:
        return "matplotlib is not installed: curves skipped."
    fig, axes = plt.subplots(1, len(used), figsize=(5.5 * len(used), 3.8), squeeze=False)
    for ax, (label, keys) in zip(axes[0], used, strict=True):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if points:
                style = "o-" if key.startswith("eval") else "-"
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=key, markersize=3)
        ax.set(xlabel="step", ylabel=label, title=f"{title}: {label}")
        ax.legend()
    return _save(plt, fig, path, f"{title} curves")


def _save(plt: Any, fig: Any, path: Path, alt: str) -> Image:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Image(path, alt)


# --------------------------------------------------------------------------------------------- eval


@dataclass
class ScoreRow:
    """One (family, lang, split, metric) row of eval scores with, per model, its pooled score, number of
    examples, 95% interval and, for classification, the share of each option it chose."""

    family: str
    lang: str
    split: str
    metric: str
    values: dict[str, float]
    n: dict[str, int]
    intervals: dict[str, tuple[float, float]]
    predicted: dict[str, dict[str, float]]


SCORE_HEADERS = ["family", "lang", "split", "metric", "n"]
COMPARISON_HEADERS = ["a", "b", "family", "lang", "split", "metric", "n", "a - b [95% CI]", "verdict"]


def score_table(rows: Iterable[Mapping[str, Any]]) -> list[ScoreRow]:
    """Rows of eval_report.json's `summary` (or `summary_by_split`: no family, lang), one per model,
    gathered into a row per (family, lang, split, metric); seen split first, then family, lang, metric."""
    table: dict[tuple[str, str, str, str], ScoreRow] = {}
    for r in rows:
        key = (str(r.get("family", "")), str(r.get("lang", "")), str(r.get("split", "")), str(r["metric"]))
        row, model = table.setdefault(key, ScoreRow(*key, {}, {}, {}, {})), str(r["model"])
        row.values[model], row.n[model] = float(r["value"]), int(r["n"])
        row.intervals[model] = (float(r["ci_low"]), float(r["ci_high"]))
        if r.get("predicted"):
            row.predicted[model] = dict(r["predicted"])
    return sorted(table.values(), key=lambda r: (_split_rank(r.split), r.family, r.lang, r.metric))


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _models(report: Mapping[str, Any]) -> list[str]:
    models = [str(m) for m in report.get("models", [])]
    seen = dict.fromkeys([*models, *(str(s["model"]) for s in report.get("summary", []))])
    return list(seen)


_SCORES_MEASURED = (
    "Each metric over the n examples of a task family, language and split (its tasks and templates "
    "pooled), with a 95% interval: Wilson for accuracies and exact match, else a percentile bootstrap "
    "over the examples. Splits: seen templates, held-out templates, held-out task families. Under a "
    "classification accuracy, the share of the examples on which the model chose each label."
)
_COMPARISONS_MEASURED = (
    "Model a minus model b on the same examples, with a paired-bootstrap 95% interval (both models "
    "rescored on the same resampled examples): better or worse when the interval excludes 0, else no "
    "difference. Lower is better for ref_nll."
)


def eval_blocks(report: Mapping[str, Any], files_dir: Path, name: str) -> list[Any]:
    """Score table, bar charts, paired comparisons, win rates and samples of one eval_report.json."""
    models, rows = _models(report), score_table(report.get("summary", []))
    blocks: list[Any] = [Heading(4, "Task scores")]
    if rows:
        blocks += [
            Text(_SCORES_MEASURED),
            Table(SCORE_HEADERS + models, [score_cells(r, models) for r in rows]),
        ]
        blocks += _bar_charts(report.get("summary_by_split", []), models, files_dir, name)
    else:
        blocks.append(Text("The eval report has no task scores."))
    blocks += _comparison_blocks(report.get("comparisons", []))
    blocks += _win_rate_blocks(report.get("win_rates", []))
    blocks += _sample_blocks(report.get("samples", []), models)
    return blocks


def score_cells(row: ScoreRow, models: list[str]) -> list[str]:
    """A table row: family, lang, split, metric, n (one per distinct count) and a cell per model, each
    "value [low, high]" with the shares of the options chosen on a second line."""
    ns = "/".join(str(n) for n in dict.fromkeys(row.n.values()))
    return [row.family, row.lang, row.split, row.metric, ns, *(_score_cell(row, m) for m in models)]


def _score_cell(row: ScoreRow, model: str) -> str:
    if model not in row.values:
        return "–"
    low, high = row.intervals[model]
    shares = " · ".join(f"{label} {share:.2f}" for label, share in row.predicted.get(model, {}).items())
    return f"{row.values[model]:.3f} [{low:.3f}, {high:.3f}]" + (f"\n{shares}" if shares else "")


def comparison_table(comparisons: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Rows of COMPARISON_HEADERS from eval_report.json's `comparisons`, each pair in the score table's
    order (seen split first, then family, lang, metric)."""
    keys = ("a", "b", "family", "lang", "split", "metric", "n")
    pairs = list(dict.fromkeys((str(c["a"]), str(c["b"])) for c in comparisons))
    order = sorted(
        comparisons,
        key=lambda c: (pairs.index((str(c["a"]), str(c["b"]))), _split_rank(str(c["split"])),
                       str(c["family"]), str(c["lang"]), str(c["metric"])),
    )  # fmt: skip
    return [
        [*(str(c[k]) for k in keys), f"{c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]",
         str(c["verdict"])]
        for c in order
    ]  # fmt: skip


def _comparison_blocks(comparisons: list[Mapping[str, Any]]) -> list[Any]:
    if not comparisons:
        return [Heading(4, "Paired comparisons"), Text("The eval report compares no models.")]
    table = Table(COMPARISON_HEADERS, comparison_table(comparisons))
    return [Heading(4, "Paired comparisons"), Text(_COMPARISONS_MEASURED), table]


def _bar_charts(rows: list[Mapping[str, Any]], models: list[str], files_dir: Path, name: str) -> list[Any]:
    blocks: list[Any] = []
    for metric in sorted({str(r["metric"]) for r in rows}):
        table = score_table(r for r in rows if r["metric"] == metric)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in metric)
        chart = bar_chart(table, models, files_dir / f"{name}_{safe}.png", metric)
        blocks.append(chart if isinstance(chart, Image) else Text(chart))
    return blocks


def bar_chart(rows: list[ScoreRow], models: list[str], path: Path, metric: str) -> Image | str:
    """Grouped bars: one group per split, one bar per model, error bars its 95% interval."""
    try:
        plt = _pyplot()
    except ImportError:
        return "matplotlib is not installed: charts skipped."
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(rows) * max(len(models), 1) ** 0.5), 3.6))
    for i, model in enumerate(models):
        xs = [j + i * width for j in range(len(rows))]
        values = [r.values.get(model, float("nan")) for r in rows]
        spans = [r.intervals.get(model, (v, v)) for r, v in zip(rows, values, strict=True)]
        errors = [[max(0.0, v - lo) for v, (lo, _) in zip(values, spans, strict=True)],
                  [max(0.0, hi - v) for v, (_, hi) in zip(values, spans, strict=True)]]  # fmt: skip
        ax.bar(xs, values, width, yerr=errors, capsize=3, label=model)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(rows))], [r.split for r in rows])
    ax.set(ylabel=metric, title=f"{metric} by split (95% intervals)")
    ax.legend()
    return _save(plt, fig, path, f"{metric} by split")


def _win_rate_blocks(win_rates: list[Mapping[str, Any]]) -> list[Any]:
    if not win_rates:
        return [Heading(4, "Win rates"), Text("The eval report has no judged win rates.")]
    keys = ("a", "b", "judge", "wins", "losses", "ties", "invalid", "n")
    rows = [[_fmt(w.get(k, "")) for k in keys] + [win_rate_cell(w)] for w in win_rates]
    return [
        Heading(4, "Win rates"),
        Text(
            "How often the judge preferred model a's answer to model b's over n valid verdicts (ties "
            "count half), with its Wilson 95% interval."
        ),
        Table(["a", "b", "judge", "wins", "losses", "ties", "invalid", "n", "win rate [95% CI]"], rows),
    ]


def win_rate_cell(row: Mapping[str, Any]) -> str:
    """ "rate [low, high]" of a win-rate row, or why there is none."""
    if row.get("win_rate") is None:
        return "n/a (no valid verdict)"
    return f"{row['win_rate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _sample_blocks(samples: list[Mapping[str, Any]], models: list[str]) -> list[Any]:
    if not samples:
        return [Heading(4, "Samples"), Text("The eval report has no sample generations.")]
    shown = samples[:SAMPLES_SHOWN]
    rows = [
        [f"{s.get('task', '')} ({s.get('id', '')})", str(s.get("prompt", "")), str(s.get("reference", ""))]
        + [str(s.get("outputs", {}).get(m, "")) for m in models]
        for s in shown
    ]
    return [
        Heading(4, "Samples"),
        Text(f"{len(shown)} of {len(samples)} prompts, each model's answer side by side."),
        Table(["task", "prompt", "reference", *models], rows),
    ]


# ---------------------------------------------------------------------------------------- rendering


def render_markdown(blocks: list[Any], run_dir: Path) -> str:
    """Markdown; images are linked relative to `run_dir`, cell text is escaped."""
    return "\n\n".join(_md(block, run_dir) for block in blocks) + "\n"


def _md(block: Any, run_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Table):
        lines = [_md_row(block.headers), "|" + "---|" * len(block.headers)]
        return "\n".join(lines + [_md_row(row) for row in block.rows])
    if isinstance(block, Image):
        return f"![{block.alt}]({block.path.relative_to(run_dir).as_posix()})"
    code = f"```{block.lang}\n{block.code.rstrip()}\n```"
    return f"<details><summary>{html.escape(block.summary)}</summary>\n\n{code}\n\n</details>"


def _md_row(cells: Sequence[str]) -> str:
    escaped = (html.escape(str(c)).replace("|", "\\|").replace("\n", "<br>") for c in cells)
    return "| " + " | ".join(escaped) + " |"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;"
    "vertical-align:top;text-align:left}pre{background:#f5f5f5;padding:.5em;overflow:auto}"
    "img{max-width:100%}"
)


def render_html(blocks: list[Any], title: str) -> str:
    """One self-contained HTML page: every text escaped, images embedded as base64 PNG."""
    body = "\n".join(_html(block) for block in blocks)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _html(block: Any) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>\n" for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}</tbody></table>"
    if isinstance(block, Image):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
    code = f"<pre><code>{html.escape(block.code)}</code></pre>"
    return f"<details><summary>{html.escape(block.summary)}</summary>\n{code}\n</details>"


def _cell(text: str) -> str:
    return html.escape(str(text)).replace("\n", "<br>")
