"""The tables of a recipes/smollm2_flan_cpu.yaml run, as Markdown for the README.

    .venv/bin/python recipes/smollm2_flan/summarize.py RUN_DIR [--data runs/smollm2_flan_data]

`instructgpt eval` reports scores per template and per (family, language, split); this pools them per
task and language (and per source for English summarization), from the per-example scores in each
eval's generations-MODEL.jsonl: every model's mean with a 95% percentile-bootstrap interval, and the
paired difference to the base model (and DPO − SFT) with a paired-bootstrap interval over the same
examples. Then the eval's own per-split comparisons, the reward-model win rates, the label shares of the
sentiment answers (a model that always says one label shows), the stage times, and the overlap check:
every training record the run used (instruct/train.jsonl, the Alpaca slices, the preference pairs)
searched for a span of 8 words or 13 Chinese characters of any evaluation example.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from instructgpt.data.decontam import Decontaminator, strings_in

METRICS = {  # task → metrics shown, the first the headline
    "sentiment_binary": ("accuracy", "accuracy_ranked", "accuracy_calibrated"),
    "qa_multiple_choice": ("accuracy", "accuracy_ranked"),
    "summarization": ("rougeL", "rouge1"),
    "qa_extractive": ("f1", "exact_match"),
    "dialogue_next": ("rougeL",),
    "reading_title": ("rougeL",),
}
SOURCES = {"samsum": "SAMSum", "cnn_dailymail": "CNN/DM", "gigaword": "Gigaword"}
RESAMPLES, SEED = 2000, 0
NGRAM = {"en": 8, "zh": 13}
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("runs/smollm2_flan_data"))
    args = parser.parse_args()
    run = args.run_dir
    evals = [run / name for name in ("eval_cls", "eval_gen") if (run / name / "eval_report.json").exists()]
    reports = [json.loads((d / "eval_report.json").read_text()) for d in evals]
    models = reports[0]["models"]
    examples = [ex for d, r in zip(evals, reports, strict=True) for ex in _examples(d, r["models"])]
    print(task_table(examples, models))
    print(split_table(reports))
    print(label_shares(examples, models))
    print(win_rates(reports))
    print(stage_times(run))
    print(overlap(run, args.data))


# ------------------------------------------------------------------------------------------- reading


def _examples(eval_dir: Path, models: list[str]) -> list[dict[str, Any]]:
    """One row per eval example: task, lang, split, source and each model's scores and predictions."""
    rows: dict[str, dict[str, Any]] = {}
    for model in models:
        path = eval_dir / f"generations-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            g = json.loads(line)
            row = rows.setdefault(g["id"], {
                "task": g["task"], "lang": g["lang"], "split": g["split"], "source": _source(g["id"]),
                "scores": {}, "predicted": {},
            })  # fmt: skip
            row["scores"][model] = g["scores"]
            row["predicted"][model] = g.get("predicted", {})
    return list(rows.values())


def _source(example_id: str) -> str:
    head = example_id.split("#")[0].lower()
    return next((name for key, name in SOURCES.items() if key.split("_")[0] in head), "")


# ---------------------------------------------------------------------------------------- statistics


def _indices(n: int) -> np.ndarray:
    return np.random.default_rng(SEED).integers(0, n, size=(RESAMPLES, n))


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    means = values[_indices(len(values))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _cell(values: np.ndarray) -> str:
    mean, low, high = mean_ci(values)
    return f"{mean:.3f} [{low:.2f}, {high:.2f}]"


def _diff_cell(a: np.ndarray, b: np.ndarray) -> str:
    mean, low, high = mean_ci(a - b)  # paired: the same resampled examples for both models
    mark = "**" if low > 0 or high < 0 else ""
    return f"{mark}{mean:+.3f} [{low:+.2f}, {high:+.2f}]{mark}"


# -------------------------------------------------------------------------------------------- tables


def task_table(examples: list[dict[str, Any]], models: list[str]) -> str:
    """Per task, language (and summarization source) and metric: each model, and the paired differences."""
    base, *tuned = models
    pairs = [(m, base) for m in tuned] + ([(models[2], models[1])] if len(models) > 2 else [])
    head = ["task", "lang", "metric", "n", *models, *(f"{a} − {b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for ex in examples:
        groups[ex["task"], ex["lang"], ""].append(ex)
        if ex["task"] == "summarization" and ex["source"]:
            groups[ex["task"], ex["lang"], ex["source"]].append(ex)
    for (task, lang, source), rows in sorted(groups.items()):
        for metric in METRICS.get(task, ("rougeL",)):
            got = [r for r in rows if all(metric in r["scores"][m] for m in models)]
            if not got:
                continue
            values = {m: np.array([r["scores"][m][metric] for r in got]) for m in models}
            name = f"{task} ({source})" if source else task
            cells = [name, lang, metric, str(len(got)), *(_cell(values[m]) for m in models)]
            cells += [_diff_cell(values[a], values[b]) for a, b in pairs]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nBold: the 95% paired-bootstrap interval of the difference excludes 0.\n"


def split_table(reports: list[dict[str, Any]]) -> str:
    """The eval's own paired comparisons per family, language and split (headline metrics only)."""
    lines = ["| family | lang | split | metric | n | a − b | difference [95%] | verdict |", "|" + "---|" * 8]
    keep = {"accuracy", "accuracy_ranked", "rougeL", "f1"}
    for report in reports:
        for row in report.get("comparisons", []):
            if row.get("metric") not in keep:
                continue
            diff = f"{row['difference']:+.3f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
            cells = [row["family"], row["lang"], row["split"], row["metric"], str(row.get("n", "")),
                     f"{row['a']} − {row['b']}", diff, row.get("verdict", "")]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def label_shares(examples: list[dict[str, Any]], models: list[str]) -> str:
    """Share of each label among the parsed sentiment answers, per language and model."""
    lines = ["| lang | model | answers parsed as each label |", "|---|---|---|"]
    for lang in ("en", "zh"):
        rows = [r for r in examples if r["task"] == "sentiment_binary" and r["lang"] == lang]
        for m in models:
            shares = Counter(r["predicted"][m].get("accuracy", "(none)") for r in rows)
            text = ", ".join(f"{k} {v / len(rows):.2f}" for k, v in shares.most_common())
            lines.append(f"| {lang} | {m} | {text} |")
    return "\n".join(lines) + "\n"


def win_rates(reports: list[dict[str, Any]]) -> str:
    rows = [row for report in reports for row in report.get("win_rates", [])]
    return "win rates:\n" + "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n"


def stage_times(run: Path) -> str:
    path = run / "run_report.json"
    if not path.exists():
        return ""
    report = json.loads(path.read_text())
    stages = report.get("stages", [])
    text = ", ".join(f"{s.get('name')} {float(s.get('seconds') or 0) / 60:.1f} min" for s in stages)
    total = sum(float(s.get("seconds") or 0) for s in stages)
    return f"stage times: {text}; total {total / 60:.1f} min\n"


# ------------------------------------------------------------------------------------------- overlap


def overlap(run: Path, data: Path) -> str:
    """Training records (as the run used them) that contain a span of an evaluation example."""
    spans = {lang: Decontaminator(ngram=n, min_units=8) for lang, n in NGRAM.items()}
    eval_examples = 0
    for path in sorted((data / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = json.loads(line)["fields"]
            eval_examples += 1
            for k, v in fields.items():
                for s in strings_in(v) if k != "label" else ():
                    spans["zh" if _HAN.search(s) else "en"].add(s)
    files = [run / "instruct" / "train.jsonl", *sorted((data / "chat").glob("alpaca_*.json")),
             *sorted((data / "preference").glob("*.jsonl"))]  # fmt: skip
    lines = [f"overlap with {eval_examples} evaluation examples (spans of 8 words / 13 Chinese characters):"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        records = json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines()]
        hits = []
        for record in records:
            for s in strings_in(record):
                found = spans["en"].match(s) or spans["zh"].match(s)
                if found:
                    hits.append(found)
                    break
        shown = f" e.g. {hits[:2]}" if hits else ""
        lines.append(f"- {path.name}: {len(hits)} of {len(records)} records{shown}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
