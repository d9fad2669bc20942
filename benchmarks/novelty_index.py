"""Self-Instruct's ROUGE-L novelty filter: our index against all-pairs checks, on synthetic instructions.

Repeat with:

    PYTHONPATH=src .venv/bin/python benchmarks/novelty_index.py --n 50000 --brute-n 1000

Instructions are generated deterministically: words drawn from a Zipf distribution over a vocabulary
that starts with the words of the Self-Instruct seed tasks (../shared/data, when present; most frequent
first) and is padded with made-up words, 5–30 words each, and a fraction of them near-duplicates of an
earlier one (a few words dropped, inserted or replaced). Every method sees them in order and keeps an
instruction unless its ROUGE-L F with a kept one (seeds included in real runs; none here) is ≥ 0.7:

- index: `NoveltyIndex.add_if_novel`, timed over all n, with the time at each checkpoint;
- all-pairs (ours): `metrics.rouge_l` against every kept instruction, on the first brute-n;
- all-pairs (rouge-score): Google's `RougeScorer(["rougeL"])` the same way (the peer: what the
  Self-Instruct code does, minus its process pool), on the first brute-n.

All-pairs cost grows with n × kept, so its time at n is extrapolated from brute-n as (n / brute-n)².
The kept sets of the three methods on the first brute-n are compared and must be equal.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rouge_score import rouge_scorer

from instructgpt.evaluate.metrics import rouge_l
from instructgpt.instruct.synth.novelty import NoveltyIndex

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SEEDS = SHARED / "instruct" / "self_instruct_seed_tasks.jsonl"
FALLBACK = "write give list explain describe a the of to and in for with about what how why is are story poem"
THRESHOLD = 0.7


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50000, help="instructions fed to the index")
    parser.add_argument("--brute-n", type=int, default=1000, help="instructions fed to the all-pairs checks")
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size")
    parser.add_argument("--dup-frac", type=float, default=0.15, help="fraction made as near-duplicates")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def seed_vocabulary() -> list[str]:
    """Words of the seed instructions, most frequent first (a few generic words without the file)."""
    if not SEEDS.is_file():
        return FALLBACK.split()
    counts: Counter[str] = Counter()
    for line in SEEDS.read_text(encoding="utf-8").splitlines():
        counts.update(re.findall(r"[a-z]+", json.loads(line)["instruction"].lower()))
    return [word for word, _ in counts.most_common()]


def make_instructions(args: argparse.Namespace) -> list[str]:
    rng = random.Random(args.seed)
    vocab = seed_vocabulary()
    vocab += [f"w{i}x" for i in range(max(0, args.vocab - len(vocab)))]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(vocab))]
    texts: list[str] = []
    for _ in range(args.n):
        if texts and rng.random() < args.dup_frac:
            texts.append(near_duplicate(rng, rng.choice(texts), vocab))
        else:
            texts.append(" ".join(rng.choices(vocab, weights, k=rng.randint(5, 30))))
    return texts


def near_duplicate(rng: random.Random, text: str, vocab: list[str]) -> str:
    words = text.split()
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(words))
        choice = rng.randrange(3)
        if choice == 0 and len(words) > 3:
            words.pop(position)
        elif choice == 1:
            words.insert(position, rng.choice(vocab))
        else:
            words[position] = rng.choice(vocab)
    return " ".join(words)


def run_index(texts: list[str], checkpoints: list[int]) -> tuple[list[int], dict[int, float]]:
    index, kept, times = NoveltyIndex(THRESHOLD), [], {}
    start = time.perf_counter()
    for i, text in enumerate(texts, 1):
        if index.add_if_novel(text) is None:
            kept.append(i - 1)
        if i in checkpoints:
            times[i] = time.perf_counter() - start
    return kept, times


def run_all_pairs(texts: list[str], score: Callable[[str, str], float]) -> tuple[list[int], float]:
    kept: list[int] = []
    start = time.perf_counter()
    for i, text in enumerate(texts):
        if all(score(text, texts[j]) < THRESHOLD for j in kept):
            kept.append(i)
    return kept, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    texts = make_instructions(args)
    checkpoints = sorted(
        {c for c in (1000, 2000, 5000, 10000, 20000, args.n) if c <= args.n} | {args.brute_n}
    )
    kept, times = run_index(texts, checkpoints)
    small = texts[: args.brute_n]
    ours_kept, ours_s = run_all_pairs(small, lambda a, b: rouge_l(a, b, "en").fmeasure)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    peer_kept, peer_s = run_all_pairs(small, lambda a, b: scorer.score(b, a)["rougeL"].fmeasure)
    index_small = [i for i in kept if i < args.brute_n]
    assert index_small == ours_kept == peer_kept, "the index and the all-pairs checks kept different sets"
    print(f"{args.n} instructions ({len(kept)} kept at ROUGE-L < {THRESHOLD}), vocabulary {args.vocab}")
    print(f"all-pairs on the first {args.brute_n}: {len(ours_kept)} kept by all three methods (identical)\n")
    print(
        f"{'n':>7}{'index s':>10}{'ours all-pairs s':>18}{'rouge-score s':>15}{'vs ours':>10}{'vs peer':>10}"
    )
    for n in checkpoints:
        scale = (n / args.brute_n) ** 2
        ours_n, peer_n = ours_s * scale, peer_s * scale
        mark = "" if n == args.brute_n else "*"
        print(
            f"{n:>7}{times[n]:>10.2f}{ours_n:>17.1f}{mark:1}{peer_n:>14.1f}{mark:1}"
            f"{ours_n / times[n]:>9.0f}x{peer_n / times[n]:>9.0f}x"
        )
    print("\n* extrapolated from the measured all-pairs time at brute-n as (n / brute-n)^2")


if __name__ == "__main__":
    main()
