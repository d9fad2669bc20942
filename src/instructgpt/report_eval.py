"""The eval section of the run report, from an eval report: score tables with 95% intervals, bar charts
with error bars, paired comparisons, win rates and side-by-side samples. The score and comparison tables
are the eval report's own (`instructgpt.reports.inference`), as `instructgpt eval` prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instructgpt.report_document import Heading, Image, Table, Text, fmt_value, pyplot, save_figure
from instructgpt.reports.inference import (
    COMPARISON_HEADERS,
    SCORE_HEADERS,
    EvalReport,
    ScoreRow,
    comparison_table,
    score_cells,
    score_table,
)

SAMPLES_SHOWN = 8


def _models(report: EvalReport) -> list[str]:
    models = [str(m) for m in report.models]
    seen = dict.fromkeys([*models, *(str(s["model"]) for s in report.summary_rows)])
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


def eval_blocks(report: EvalReport, files_dir: Path, name: str) -> list[Any]:
    """Score table, bar charts, paired comparisons, win rates and samples of one eval report."""
    models, rows = _models(report), score_table(report.summary_rows)
    blocks: list[Any] = [Heading(4, "Task scores")]
    if rows:
        blocks += [
            Text(_SCORES_MEASURED),
            Table(SCORE_HEADERS + models, [score_cells(r, models) for r in rows]),
        ]
        blocks += _bar_charts(report.summary_by_split, models, files_dir, name)
    else:
        blocks.append(Text("The eval report has no task scores."))
    blocks += _comparison_blocks(report.comparisons)
    blocks += _win_rate_blocks(report.win_rates)
    blocks += _sample_blocks(report.samples, models)
    return blocks


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
