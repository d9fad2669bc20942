"""Throughput (documents/s, MB/s) and peak memory of `instructgpt prepare` with every filter on.

    .venv/bin/python benchmarks/prepare_throughput.py                       # shared raw data + 100k generated
    .venv/bin/python benchmarks/prepare_throughput.py --docs 20000 --workers 2 --segment   # + segmentation

Corpora: the plain-text and JSONL files of ../shared/data/raw and ../shared/data/zh/raw (when present),
and a deterministic generated corpus of English and Chinese documents with planted exact duplicates,
near-duplicates, HTML pages, boilerplate and junk. Each run is a separate `instructgpt prepare` process;
peak memory is the largest sum of resident memory over that process and its workers (sampled every
50 ms). Running the generated corpus at two sizes shows how memory grows with the number of documents.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RAW_FILES = ("raw/c4_demo.jsonl", "raw/wiki_demo.txt", "zh/raw/clue_corpus_small_sample.txt",
             "zh/raw/chinese_classics.jsonl")  # fmt: skip
# Every filter and cleaning step on (the defaults plus those off by default); segmentation, which is
# not a filter, is added with --segment.
EVERYTHING_ON = ["pii.enabled=true", "normalize.traditional_to_simplified=true", "prefix_dedup.enabled=true"]
SEGMENT = ["segment.enabled=true", "segment.remove_stopwords=true"]
EN_FUNCTION = ("the", "of", "and", "to", "is", "that", "for", "it", "with", "as", "was", "on", "be", "by",
               "this", "from", "or", "have", "not", "but", "are")  # fmt: skip


def generated_corpus(path: Path, n_docs: int, seed: int = 0) -> None:
    """Write `n_docs` JSONL documents, half English and half Chinese, with planted dirty cases."""
    rng = random.Random(seed)
    en_vocab = [_pseudo_word(rng) for _ in range(8000)]
    zh_chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3500)]
    kept: list[str] = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(n_docs):
            text = _dirty_case(rng, kept) or (_en_doc(rng, en_vocab) if i % 2 else _zh_doc(rng, zh_chars))
            if len(kept) < 2000:
                kept.append(text)
            f.write(json.dumps({"id": f"gen-{i}", "text": text}, ensure_ascii=False) + "\n")


def _pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))


def _skewed_choice(rng: random.Random, items: list[str]) -> str:
    """Frequent items first, but flat enough that no n-gram dominates (as in natural text)."""
    return items[int(len(items) * rng.random() ** 2)]


def _en_doc(rng: random.Random, vocab: list[str]) -> str:
    sentences = []
    for _ in range(rng.randint(5, 30)):
        words = [
            rng.choice(EN_FUNCTION) if rng.random() < 0.4 else _skewed_choice(rng, vocab) for _ in range(12)
        ]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def _zh_doc(rng: random.Random, chars: list[str]) -> str:
    sentences = [
        "".join(_skewed_choice(rng, chars) for _ in range(rng.randint(8, 25)))
        for _ in range(rng.randint(5, 25))
    ]
    return "。".join(sentences) + "。"


def _dirty_case(rng: random.Random, kept: list[str]) -> str | None:
    roll = rng.random()
    if roll < 0.05 and kept:
        return rng.choice(kept).upper()  # exact duplicate up to case
    if roll < 0.10 and kept:
        words = rng.choice(kept).split(" ")
        if len(words) > 40:  # near-duplicate: one word in forty replaced
            return " ".join(w if rng.random() > 0.025 else "changed" for w in words)
    if roll < 0.13 and kept:
        return f"<html><body><p>{rng.choice(kept)}</p><script>var x = 1;</script></body></html>"
    if roll < 0.15:
        return "\n".join(["Home | About | Contact | Sign in to your account today"] * 20)
    return None


def measure(inputs: list[Path], workers: int, extra: list[str]) -> dict[str, float]:
    """Run one `prepare` process; wall time, documents in/out and peak memory of the process tree."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "instructgpt.cli", "prepare", *map(str, inputs), "-o", out,
               f"workers={workers}", *EVERYTHING_ON, *extra]  # fmt: skip
        started = time.perf_counter()
        process = psutil.Popen(cmd, stdout=subprocess.DEVNULL)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _tree_rss(process))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"prepare failed ({process.returncode}): {' '.join(cmd)}")
        report = json.loads((Path(out) / "prepare_report.json").read_text())
    size_mb = sum(p.stat().st_size for p in inputs) / 1e6
    return {
        "docs": report["documents_in"],
        "kept": report["documents_out"],
        "seconds": seconds,
        "docs_per_s": report["documents_in"] / seconds,
        "mb_per_s": size_mb / seconds,
        "peak_mb": peak / 1e6,
    }


def _tree_rss(process: psutil.Process) -> int:
    try:
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--docs", type=int, nargs="+", default=[20_000, 100_000], help="generated corpus sizes"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--segment", action="store_true", help="also add jieba / rule-based segmentation")
    args = parser.parse_args()
    extra = SEGMENT if args.segment else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if SHARED.is_dir():
            raw = [SHARED / name for name in RAW_FILES]
            for workers in args.workers:
                rows.append(
                    ("shared raw (line per doc)", workers, measure(raw, workers, ["text_unit=line", *extra]))
                )
        for n_docs in args.docs:
            path = Path(tmp) / f"generated_{n_docs}.jsonl"
            generated_corpus(path, n_docs)
            for workers in args.workers:
                rows.append((f"generated {n_docs // 1000}k", workers, measure([path], workers, extra)))
    print(f"{'corpus':<28}{'workers':>8}{'docs':>9}{'kept':>9}{'s':>8}{'docs/s':>9}{'MB/s':>7}{'peak MB':>9}")
    for name, workers, m in rows:
        print(f"{name:<28}{workers:>8}{m['docs']:>9}{m['kept']:>9}{m['seconds']:>8.1f}{m['docs_per_s']:>9.0f}"
              f"{m['mb_per_s']:>7.2f}{m['peak_mb']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
