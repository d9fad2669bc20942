"""Throughput of `instructgpt instruct` and `instructgpt corpus` (records/s), on generated bilingual data.

    .venv/bin/python benchmarks/instruct_throughput.py        # 2,000 examples per family and language
    .venv/bin/python benchmarks/instruct_throughput.py --examples 5000 --documents 5000

instruct: TaskExamples of all four families in English and Chinese (the demo generator) → Conversations,
with 2 templates per example and 10% of examples plus two families held out (so the split, exemplar
pools and overlap guard are all exercised). corpus: generated documents → the instruction-augmented
corpus with 3 mined pairs per augmented document and half the tokens augmented. Each stage runs in this
process, one core; the time includes reading, validating and writing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from instructgpt.config import CorpusConfig, InstructConfig, load_config
from instructgpt.demo.tasks import generate_documents, generate_task_examples
from instructgpt.instruct import build, corpus
from instructgpt.records import to_dict

FAMILIES = ("summarization", "qa", "dialogue", "sentiment")


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text(
        "".join(json.dumps(to_dict(r), ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def bench_instruct(tmp: Path, per_family: int) -> dict[str, float]:
    examples = [
        e for f in FAMILIES for lang in ("en", "zh") for e in generate_task_examples(f, lang, per_family)
    ]
    path = write_jsonl(tmp / "examples.jsonl", examples)
    config = load_config(
        InstructConfig,
        overrides=["templates_per_example=2", "heldout.example_fraction=0.1", "heldout.families=[qa]"],
    )
    started = time.perf_counter()
    report = build.run([path], tmp / "instruct", config)
    seconds = time.perf_counter() - started
    conversations = report.split["train_conversations"] + report.split["heldout_conversations"]
    return {"records": len(examples), "outputs": conversations, "seconds": seconds}


def bench_corpus(tmp: Path, n_docs: int) -> dict[str, float]:
    docs = generate_documents("en", n_docs // 2) + generate_documents("zh", n_docs - n_docs // 2)
    path = write_jsonl(tmp / "documents.jsonl", docs)
    config = load_config(CorpusConfig, overrides=["pairs_per_document=3", "augmented_fraction=0.5"])
    started = time.perf_counter()
    report = corpus.run([path], tmp / "corpus", config)
    seconds = time.perf_counter() - started
    return {"records": len(docs), "outputs": report.pairs["total"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=2000, help="examples per family and language")
    parser.add_argument("--documents", type=int, default=4000, help="documents for the corpus stage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("instruct", "examples", "conversations", bench_instruct(Path(tmp), args.examples)),
                ("corpus", "documents", "pairs", bench_corpus(Path(tmp), args.documents))]  # fmt: skip
    print(f"{'stage':<10}{'inputs':>10}{'outputs':>10}{'s':>8}{'inputs/s':>10}{'outputs/s':>11}")
    for stage, unit_in, unit_out, m in rows:
        rates = f"{m['records'] / m['seconds']:>10.0f}{m['outputs'] / m['seconds']:>11.0f}"
        counts = f"{stage:<10}{m['records']:>10}{m['outputs']:>10}{m['seconds']:>8.1f}"
        print(f"{counts}{rates}   ({unit_in} → {unit_out})")


if __name__ == "__main__":
    main()
