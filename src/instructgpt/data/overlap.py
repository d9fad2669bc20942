"""`instructgpt decontam TRAIN... --against EVAL...`: how much training data shares an n-gram with
evaluation sets, without changing anything.

The index is the one every stage's `decontaminate` option builds (decontam.py: the same n-gram, the same
`cjk_ngram` and `min_units`, every string of the evaluation files); each training record (any file type
the readers know, read raw: every string of it but the fields naming it, `decontam.texts_in`) is looked
up in it. Per training file the report counts the records checked and those overlapping, the records
overlapping each evaluation file (a span held by several evaluation files counts for the first of them),
and lists the first `examples` overlaps with where they are and the matched n-gram. Outputs:
`report.json` only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from instructgpt.config import DecontamConfig, to_dict
from instructgpt.data.decontam import Decontaminator, load_decontaminator
from instructgpt.io import DataError, OnError, Rejects, iter_raw
from instructgpt.reports.data import DecontamReport


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: DecontamConfig, on_error: OnError = "fail"
) -> DecontamReport:
    """Check every record of `inputs` against `config.eval_files`; returns the report in `report.json`."""
    started = time.perf_counter()
    index = load_decontaminator(config)
    if index is None:
        raise ValueError("decontam: no evaluation files to check against (--against EVAL...)")
    rejects = Rejects(on_error)  # unreadable records are counted; there is nothing else to reject
    files = [check_file(path, index, config, rejects) for path in inputs]
    by_eval: Counter[str] = Counter()
    for row in files:
        by_eval.update(row["by_eval_file"])
    report = DecontamReport(
        inputs=[str(p) for p in inputs],
        eval_files=[str(p) for p in config.eval_files],
        eval_spans=len(index),
        records=sum(row["records"] for row in files),
        overlapping=sum(row["overlapping"] for row in files),
        by_eval_file=dict(by_eval),
        files=files,
        read_errors=rejects.counts["read_error"],
        seconds=round(time.perf_counter() - started, 3),
        config=to_dict(config),
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return report.write(out_dir)


def check_file(
    path: str | Path, index: Decontaminator, config: DecontamConfig, rejects: Rejects
) -> dict[str, Any]:
    """One training file's counts: records, overlapping, by_eval_file and the first `config.examples`."""
    records = overlapping = 0
    by_eval: Counter[str] = Counter()
    examples: list[dict[str, str]] = []
    for item in tqdm(iter_raw(path, config.text_unit), desc=f"decontam {Path(path).name}", disable=None):
        if isinstance(item, DataError):
            rejects.read_error(item)
            continue
        records += 1
        found = index.sources_in(item.data)
        if not found:
            continue
        overlapping += 1
        by_eval.update(found.keys())
        if len(examples) < config.examples:
            eval_file, ngram = next(iter(found.items()))
            examples.append({"where": item.where, "eval_file": eval_file, "ngram": ngram})
    return {
        "file": str(path),
        "records": records,
        "overlapping": overlapping,
        "by_eval_file": dict(by_eval),
        "examples": examples,
    }
