"""The eval section of the run report, from an eval_report.json: score tables with 95% intervals, bar
charts with error bars, paired comparisons, win rates and side-by-side samples. The score and comparison
tables are also what `instructgpt eval` prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt.report_document import Heading, Image, Table, Text, fmt_value, pyplot, save_figure

SPLIT_ORDER = ("seen", "heldout_template", "heldout_family")
SAMPLES_SHOWN = 8


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
        plt = pyplot()
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
    return save_figure(plt, fig, path, f"{metric} by split")


def _win_rate_blocks(win_rates: list[Mapping[str, Any]]) -> list[Any]:
    if not win_rates:
        return [Heading(4, "Win rates"), Text("The eval report has no judged win rates.")]
    keys = ("a", "b", "judge", "wins", "losses", "ties", "invalid", "n")
    rows = [[fmt_value(w.get(k, "")) for k in keys] + [win_rate_cell(w)] for w in win_rates]
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
