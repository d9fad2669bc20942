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


# --------------------------------------------------------------------------------------------- data


def _prepare_blocks(folder: Path, report: dict[str, Any]) -> list[Any]:
    langs = ", ".join(f"{k} {v}" for k, v in report.get("languages_out", {}).items()) or "none"
    rows = [
        [f["name"], fmt_value(f["in"]), fmt_value(f["removed"]), fmt_value(f["out"])]
        for f in report.get("filters", [])
    ]
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
        [task, lang, fmt_value(counts["train"][(task, lang)]), fmt_value(counts["heldout"][(task, lang)])]
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
    tokens = [[kind, fmt_value(n)] for kind, n in report.get("tokens", {}).items()]
    return [
        Text(
            f"{docs.get('augmented', 0)} augmented and {docs.get('raw', 0)} raw documents, "
            f"{report.get('pairs', {}).get('total', 0)} instruction pairs; augmented share of tokens "
            f"{fmt_value(fraction.get('achieved'))} (target {fmt_value(fraction.get('target'))}). "
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
    facts = [[key, fmt_value(report[key])] for key in _KEY_FACTS if key in report]
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
