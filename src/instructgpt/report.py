"""The run report: `report.md` and `report.html` in a run folder, from what the stage folders hold.

Each stage writes a JSON report (and training stages a `metrics.jsonl`); this module gathers them into
one document: the stages and the recipe, data statistics (prepare, instruct, corpus), training curves
(drawn here from metrics.jsonl with matplotlib's Agg backend, saved in `report_files/`), per-task score
tables, bar charts, win rates and side-by-side samples from `eval_report.json`. The document is built
once as a list of blocks and rendered twice: Markdown linking the PNGs, and self-contained HTML with
the PNGs embedded as base64. A missing piece is skipped with a line saying so.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

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
    makers = {"prepare": _prepare_blocks, "instruct": _instruct_blocks, "corpus": _corpus_blocks}
    return makers[kind](run_dir / name, report)


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
    from instructgpt.train.loop import read_metrics  # torch, only when a report is written

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
    """One (family, lang, split, metric) row: per model, the mean over templates weighted by n."""

    family: str
    lang: str
    split: str
    metric: str
    values: dict[str, float]
    n: dict[str, int]


def score_table(scores: Iterable[Mapping[str, Any]]) -> list[ScoreRow]:
    """Aggregate eval scores: rows ordered by split (seen first), family, lang, metric."""
    sums: dict[tuple[str, str, str, str], dict[str, list[float]]] = defaultdict(dict)
    for s in scores:
        key = (str(s.get("family", "")), str(s.get("lang", "")), str(s.get("split", "")), str(s["metric"]))
        total = sums[key].setdefault(str(s["model"]), [0.0, 0])
        n = 1 if s.get("n") is None else int(s["n"])
        total[0] += float(s["value"]) * n
        total[1] += n
    rows = [
        ScoreRow(
            *key,
            {m: t[0] / t[1] if t[1] else float("nan") for m, t in by_model.items()},
            {m: int(t[1]) for m, t in by_model.items()},
        )
        for key, by_model in sums.items()
    ]
    return sorted(rows, key=lambda r: (_split_rank(r.split), r.family, r.lang, r.metric))


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _models(report: Mapping[str, Any]) -> list[str]:
    models = [str(m) for m in report.get("models", [])]
    seen = dict.fromkeys([*models, *(str(s["model"]) for s in report.get("scores", []))])
    return list(seen)


_SCORES_MEASURED = (
    "Each task's metric on its n examples, averaged over templates (and over the tasks of a family) "
    "weighted by n; splits: seen templates, held-out templates, held-out task families."
)


def eval_blocks(report: Mapping[str, Any], files_dir: Path, name: str) -> list[Any]:
    """Score table, one bar chart per metric, win rates and samples of one eval_report.json."""
    models, rows = _models(report), score_table(report.get("scores", []))
    blocks: list[Any] = [Heading(4, "Task scores")]
    if rows:
        headers = ["family", "lang", "split", "metric", "n", *models]
        blocks += [Text(_SCORES_MEASURED), Table(headers, [_score_cells(r, models) for r in rows])]
        blocks += _bar_charts(report.get("scores", []), models, files_dir, name)
    else:
        blocks.append(Text("The eval report has no task scores."))
    blocks += _win_rate_blocks(report.get("win_rates", []))
    blocks += _sample_blocks(report.get("samples", []), models)
    return blocks


def _score_cells(row: ScoreRow, models: list[str]) -> list[str]:
    ns = "/".join(str(n) for n in dict.fromkeys(row.n.values()))
    values = [f"{row.values[m]:.3f}" if m in row.values else "–" for m in models]
    return [row.family, row.lang, row.split, row.metric, ns, *values]


def _bar_charts(scores: list[Mapping[str, Any]], models: list[str], files_dir: Path, name: str) -> list[Any]:
    metrics = sorted({str(s["metric"]) for s in scores})
    blocks: list[Any] = []
    for metric in metrics:
        rows = score_table({**s, "family": "", "lang": ""} for s in scores if s["metric"] == metric)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in metric)
        chart = bar_chart(rows, models, files_dir / f"{name}_{safe}.png", metric)
        blocks.append(chart if isinstance(chart, Image) else Text(chart))
    return blocks


def bar_chart(rows: list[ScoreRow], models: list[str], path: Path, metric: str) -> Image | str:
    """Grouped bars: one group per split, one bar per model (means weighted by n)."""
    try:
        plt = _pyplot()
    except ImportError:
        return "matplotlib is not installed: charts skipped."
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(rows) * max(len(models), 1) ** 0.5), 3.6))
    for i, model in enumerate(models):
        xs = [j + i * width for j in range(len(rows))]
        ax.bar(xs, [r.values.get(model, float("nan")) for r in rows], width, label=model)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(rows))], [r.split for r in rows])
    ax.set(ylabel=metric, title=f"{metric} by split")
    ax.legend()
    return _save(plt, fig, path, f"{metric} by split")


def _win_rate_blocks(win_rates: list[Mapping[str, Any]]) -> list[Any]:
    if not win_rates:
        return [Heading(4, "Win rates"), Text("The eval report has no judged win rates.")]
    keys = ("a", "b", "judge", "wins", "losses", "ties", "invalid")
    rows = [[_fmt(w.get(k, "")) for k in keys] + [_rate(w.get("win_rate"))] for w in win_rates]
    return [
        Heading(4, "Win rates"),
        Text("How often the judge preferred model a's answer to model b's (ties count half)."),
        Table(["a", "b", "judge", "wins", "losses", "ties", "invalid", "win rate"], rows),
    ]


def _rate(value: float | None) -> str:
    return "n/a (no valid verdict)" if value is None else f"{value:.3f}"


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
