"""The run report: `report.md` and `report.html` in a run folder, from what the stage folders hold.

Each stage writes a JSON report (and training stages a `metrics.jsonl`); this module gathers them into
one document: the stages and the recipe, data statistics (prepare, instruct, corpus), training curves
(drawn here from metrics.jsonl with matplotlib's Agg backend, saved in `report_files/`), per-task score
tables with 95% intervals, paired comparisons, bar charts with error bars, win rates and side-by-side
samples from `eval_report.json` (that section is report_eval.py's). The document is built once as a list
of blocks and rendered twice (report_document.py): Markdown linking the PNGs, and self-contained HTML with
the PNGs embedded as base64. A missing piece is skipped with a line saying so.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from instructgpt.metrics_log import read_metrics
from instructgpt.report_document import (
    Collapsed,
    Heading,
    Image,
    Table,
    Text,
    fmt_value,
    pyplot,
    render_html,
    render_markdown,
    save_figure,
)
from instructgpt.report_eval import eval_blocks
from instructgpt.reports import StageReport
from instructgpt.reports.data import CorpusReport, InstructReport, PrepareReport
from instructgpt.reports.demo import DemoClaimsReport
from instructgpt.reports.inference import EvalReport
from instructgpt.reports.training import TrainingStageReport
from instructgpt.stages import STAGES

FILES_DIR = "report_files"
TRAINING_KINDS = ("pretrain", "sft", "reward", "dpo", "ppo", "finetune-task")


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
    if isinstance(report, EvalReport):
        return eval_blocks(report, run_dir / FILES_DIR, name)
    if isinstance(report, DemoClaimsReport):
        return _claims_blocks(report)
    if isinstance(report, PrepareReport):
        return _prepare_blocks(report)
    if isinstance(report, InstructReport):
        return _instruct_blocks(run_dir / name, report)
    if isinstance(report, CorpusReport):
        return _corpus_blocks(report)
    return [Text(f"No {STAGES[kind].report.FILE} in {run_dir / name}: skipped.")]


def _claims_blocks(report: DemoClaimsReport) -> list[Any]:
    header, rows = report.table()
    held = f"{report.held} of {report.checked} measured claims held on this run (one seed)."
    return [Text(held), Table(header, rows)]


def _stage_report(run_dir: Path, stage: Mapping[str, Any]) -> StageReport | None:
    """The report the stage's run left in its folder, read through its type (None: none, or unreadable)."""
    return STAGES[stage["stage"]].report.read(run_dir / stage["name"])


def _configs(run_dir: Path, stages: Sequence[Mapping[str, Any]]) -> list[Any]:
    reports = {s["name"]: _stage_report(run_dir, s) for s in stages}
    configs = {name: report.to_dict().get("config") for name, report in reports.items() if report}
    return [
        Collapsed(f"{name}: config as run", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        for name, config in configs.items()
        if config is not None
    ]


# --------------------------------------------------------------------------------------------- data


def _prepare_blocks(report: PrepareReport) -> list[Any]:
    langs = ", ".join(f"{k} {v}" for k, v in report.languages_out.items()) or "none"
    rows = [
        [f["name"], fmt_value(f["in"]), fmt_value(f["removed"]), fmt_value(f["out"])] for f in report.filters
    ]
    return [
        Text(
            f"Documents kept: {report.documents_out} of {report.documents_in} "
            f"(languages kept: {langs}; read errors: {report.read_errors}). "
            "Each filter's row counts the documents it saw and removed, in the order they ran."
        ),
        Table(["filter", "in", "removed", "out"], rows),
    ]


def _instruct_blocks(folder: Path, report: InstructReport) -> list[Any]:
    counts: dict[str, Counter[tuple[str, str]]] = {}
    for split in ("train", "heldout"):
        counts[split] = _count_conversations(folder / f"{split}.jsonl")
    keys = sorted(set(counts["train"]) | set(counts["heldout"]))
    rows = [
        [task, lang, fmt_value(counts["train"][(task, lang)]), fmt_value(counts["heldout"][(task, lang)])]
        for task, lang in keys
    ]
    text = f"{report.examples} task examples rendered into conversations; per task and language:"
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


def _corpus_blocks(report: CorpusReport) -> list[Any]:
    docs, fraction = report.documents, report.augmented_fraction
    tokens = [[kind, fmt_value(n)] for kind, n in report.tokens.items()]
    return [
        Text(
            f"{docs.get('augmented', 0)} augmented and {docs.get('raw', 0)} raw documents, "
            f"{report.pairs.get('total', 0)} instruction pairs; augmented share of tokens "
            f"{fmt_value(fraction.get('achieved'))} (target {fmt_value(fraction.get('target'))}). "
            f"Tokens are counted in {report.token_unit}."
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


def _training_blocks(run_dir: Path, name: str, kind: str) -> list[Any]:
    blocks: list[Any] = [Text(_MEASURED.get(kind, _MEASURED["default"]))]
    report = _stage_report(run_dir, {"name": name, "stage": kind})
    found = report.facts() if isinstance(report, TrainingStageReport) else {}
    facts = [[key, fmt_value(value)] for key, value in found.items()]
    blocks += [Table(["", "value"], facts)] if facts else []
    rows = read_metrics(run_dir / name / "metrics.jsonl")
    if not rows:
        return [*blocks, Text(f"No metrics.jsonl in {run_dir / name}: no curves.")]
    panels = _PANELS.get(kind, _PANELS["default"])
    image = plot_curves(rows, panels, run_dir / FILES_DIR / f"{name}_curves.png", name)
    return [*blocks, image if isinstance(image, Image) else Text(image)]


def plot_curves(
    rows: list[dict[str, Any]], panels: Iterable[tuple[str, tuple[str, ...]]], path: Path, title: str
) -> Image | str:
    """One subplot per panel that has data, one line per metric key; returns the Image or why none."""
    used = [(label, keys) for label, keys in panels if any(k in r for r in rows for k in keys)]
    if not used:
        return f"{title}: metrics.jsonl has none of the plotted metrics."
    try:
        plt = pyplot()
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
    return save_figure(plt, fig, path, f"{title} curves")
