"""The reports of the stages that run models without training them: generate and eval; and eval's score
and comparison tables, which `instructgpt eval` prints and the run report (report_eval.py) shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from instructgpt.reports import StageReport, rendered, saved_as


@dataclass(frozen=True)
class GenerateReport(StageReport):
    """`generate`: records answered, tokens generated, finish reasons and speed."""

    FILE: ClassVar[str] = "generate_report.json"
    inputs: list[str]
    records: int
    read_errors: int
    generated_tokens: int
    finish_reasons: dict[str, int]
    seconds: float
    tokens_per_second: float | None
    config: dict[str, Any]

    def summary(self) -> str:
        """Counts, finish reasons and speed."""
        reasons = ", ".join(f"{k} {v}" for k, v in self.finish_reasons.items()) or "none"
        return (
            f"generate → {Path(self.folder or '.') / 'generations.jsonl'}: {self.records} answers "
            f"({reasons}); {self.generated_tokens} tokens at {self.tokens_per_second} tokens/s"
        )


@dataclass(frozen=True)
class EvalReport(StageReport):
    """`eval`: score rows per template (`scores`), pooled per family, language and split
    (`summary_rows`, saved as `summary`) and per split, paired comparisons, win rates, samples, and the
    files written (`outputs`). The rows are eval's (evaluate/score_rows.py, winrate.py)."""

    FILE: ClassVar[str] = "eval_report.json"
    models: list[str]
    scores: list[dict[str, Any]]
    summary_rows: list[dict[str, Any]] = field(metadata=saved_as("summary"))
    summary_by_split: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    win_rates: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    config: dict[str, Any]
    seconds: float
    inputs: list[str]
    read_errors: int
    outputs: dict[str, str]

    def summary(self) -> str:
        """The summary scores as a table (rows family/lang/split/metric, a column per model: the score, its
        95% interval and the labels chosen), the paired comparisons, then the win rates."""
        from rich.markup import escape
        from rich.table import Table

        from instructgpt.evaluate.winrate import win_rate_table

        models = list(self.models)
        table = Table(*SCORE_HEADERS, *models, title="eval scores [95% intervals]", box=None)
        for row in score_table(self.summary_rows):
            table.add_row(*map(escape, score_cells(row, models)))
        parts: list[Any] = [table]
        if self.comparisons:
            table = Table(*COMPARISON_HEADERS, title="paired differences on the same examples", box=None)
            for cells in comparison_table(self.comparisons):
                table.add_row(*map(escape, cells))
            parts.append(table)
        if self.win_rates:
            parts.append(win_rate_table(self.win_rates))
        done = f"eval: {len(models)} models in {self.seconds} s → {self.outputs['report']}"
        return f"{rendered(*parts)}\n{done}"


# ---------------------------------------------------------------------------------------- tables

SPLIT_ORDER = ("seen", "heldout_template", "heldout_family")
SCORE_HEADERS = ["family", "lang", "split", "metric", "n"]
COMPARISON_HEADERS = ["a", "b", "family", "lang", "split", "metric", "n", "a - b [95% CI]", "verdict"]


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


def score_table(rows: Iterable[Mapping[str, Any]]) -> list[ScoreRow]:
    """Rows of an eval report's `summary` (or `summary_by_split`: no family, lang), one per model,
    gathered into a row per (family, lang, split, metric); seen split first, then family, lang, metric."""
    table: dict[tuple[str, str, str, str], ScoreRow] = {}
    for r in rows:
        key = (str(r.get("family", "")), str(r.get("lang", "")), str(r.get("split", "")), str(r["metric"]))
        row, model = table.setdefault(key, ScoreRow(*key, {}, {}, {}, {})), str(r["model"])
        row.values[model], row.n[model] = float(r["value"]), int(r["n"])
        row.intervals[model] = (float(r["ci_low"]), float(r["ci_high"]))
        if r.get("predicted"):
            row.predicted[model] = dict(r["predicted"])
    return sorted(table.values(), key=lambda r: (split_rank(r.split), r.family, r.lang, r.metric))


def split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


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
    """Rows of COMPARISON_HEADERS from an eval report's `comparisons`, each pair in the score table's
    order (seen split first, then family, lang, metric)."""
    keys = ("a", "b", "family", "lang", "split", "metric", "n")
    pairs = list(dict.fromkeys((str(c["a"]), str(c["b"])) for c in comparisons))
    order = sorted(
        comparisons,
        key=lambda c: (pairs.index((str(c["a"]), str(c["b"]))), split_rank(str(c["split"])),
                       str(c["family"]), str(c["lang"]), str(c["metric"])),
    )  # fmt: skip
    return [
        [*(str(c[k]) for k in keys), f"{c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]",
         str(c["verdict"])]
        for c in order
    ]  # fmt: skip
