"""Near-duplicate detection, ours (MinHasher + MinHashLSH) against datasketch, on one synthetic corpus.

Repeat with:

    PYTHONPATH=src .venv/bin/python benchmarks/minhash_vs_datasketch.py --docs 20000

The corpus is generated deterministically: documents of random words from a fixed vocabulary, a known
fraction of them planted near-duplicates of an earlier original with a few words replaced. Every method
sees the documents in order, keeps the first occurrence and drops later near-duplicates (ours: add_or_match;
datasketch: query, then insert when nothing came back). Both use the same shingles (word 5-grams from
`instructgpt.data.dedup.shingles`), threshold and num_perm; datasketch hashes shingles with its default
SHA-1 and does not verify candidates, as it is commonly used.

Each method runs twice: once timed, once under tracemalloc for its peak memory and for what the index
still holds at the end. Recall counts planted duplicates dropped, out of all planted and out of those whose
exact shingle Jaccard with their original reaches the threshold; found<t counts planted duplicates dropped
although their exact Jaccard is below the threshold; false drops are dropped documents that were not
planted duplicates.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import datasketch
import numpy as np

from instructgpt.data.dedup import MinHasher, MinHashLSH, jaccard, lsh_params, shingles

# A dedupe run returns the dropped document indices and its index, kept alive to measure its size.
Dedupe = Callable[[list[str]], tuple[set[int], object]]


@dataclass
class Corpus:
    docs: list[str]
    original_of: dict[int, int]  # planted duplicate index -> index of the document it was copied from


@dataclass
class Result:
    name: str
    params: tuple[int, int]
    docs_per_s: float
    peak_mib: float
    index_mib: float
    dropped: set[int]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20000, help="documents in the corpus")
    parser.add_argument("--dup-frac", type=float, default=0.1, help="fraction planted as near-duplicates")
    parser.add_argument("--max-edits", type=int, default=5, help="words replaced per duplicate, 1..N")
    parser.add_argument("--min-words", type=int, default=150)
    parser.add_argument("--max-words", type=int, default=400)
    parser.add_argument("--vocab", type=int, default=20000, help="vocabulary size")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--ngram", type=int, default=5, help="shingle size in words")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_corpus(args: argparse.Namespace) -> Corpus:
    """Random-word documents; about dup_frac of them are copies of earlier originals with words replaced."""
    rng = np.random.default_rng(args.seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(args.vocab)])
    words: list[np.ndarray] = []
    originals: list[int] = []
    original_of: dict[int, int] = {}
    for i in range(args.docs):
        if originals and rng.random() < args.dup_frac:
            source = originals[rng.integers(len(originals))]
            copy = words[source].copy()
            edits = rng.integers(1, args.max_edits + 1)
            copy[rng.choice(len(copy), size=edits, replace=False)] = rng.choice(vocab, size=edits)
            words.append(copy)
            original_of[i] = source
        else:
            words.append(rng.choice(vocab, size=rng.integers(args.min_words, args.max_words + 1)))
            originals.append(i)
    return Corpus([" ".join(w) for w in words], original_of)


def ours(threshold: float, num_perm: int, ngram: int, params: tuple[int, int]) -> Dedupe:
    def run(docs: list[str]) -> tuple[set[int], object]:
        hasher = MinHasher(num_perm=num_perm, ngram=ngram)
        lsh = MinHashLSH(threshold, num_perm, bands=params[0], rows=params[1])
        dropped = {i for i, doc in enumerate(docs) if lsh.add_or_match(str(i), hasher.signature(doc))}
        return dropped, lsh

    return run


def theirs(threshold: float, num_perm: int, ngram: int, params: tuple[int, int]) -> Dedupe:
    def run(docs: list[str]) -> tuple[set[int], object]:
        lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
        dropped = set()
        for i, doc in enumerate(docs):
            minhash = datasketch.MinHash(num_perm=num_perm, seed=1)
            minhash.update_batch([s.encode("utf-8") for s in shingles(doc, ngram)])
            if lsh.query(minhash):
                dropped.add(i)
            else:
                lsh.insert(str(i), minhash)
        return dropped, lsh

    return run


def measure(name: str, params: tuple[int, int], dedupe: Dedupe, docs: list[str]) -> Result:
    """Time one pass, then repeat it under tracemalloc (which slows it) for the memory figures."""
    start = time.perf_counter()
    dropped, _ = dedupe(docs)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    _, index = dedupe(docs)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del index
    mib = 1024 * 1024
    return Result(name, params, len(docs) / seconds, peak / mib, retained / mib, dropped)


def print_table(results: list[Result], corpus: Corpus, strong: set[int]) -> None:
    planted = set(corpus.original_of)
    header = f"{'method':<22}{'b x r':>8}{'docs/s':>9}{'peak MiB':>10}{'index MiB':>11}"
    header += f"{'found':>7}{'recall':>8}{'recall>=t':>11}{'found<t':>9}{'false drops':>13}{'precision':>11}"
    print(header)
    for r in results:
        found = len(r.dropped & planted)
        false_drops = len(r.dropped - planted)
        precision = found / len(r.dropped) if r.dropped else 1.0
        print(
            f"{r.name:<22}{f'{r.params[0]}x{r.params[1]}':>8}{r.docs_per_s:>9.0f}{r.peak_mib:>10.1f}"
            f"{r.index_mib:>11.1f}{found:>7}{found / len(planted):>8.3f}"
            f"{len(r.dropped & strong) / len(strong):>11.3f}{len(r.dropped & planted - strong):>9}"
            f"{false_drops:>13}{precision:>11.3f}"
        )


def print_ratios(results: list[Result]) -> None:
    """Ours over datasketch at the same bands and rows, so only the implementations differ."""
    print("\nours / datasketch at equal b x r:")
    for mine, theirs_ in ((results[1], results[2]), (results[0], results[3])):
        speed = mine.docs_per_s / theirs_.docs_per_s
        print(
            f"  {mine.params[0]}x{mine.params[1]}: speed {speed:.2f}x, peak memory "
            f"{mine.peak_mib / theirs_.peak_mib:.2f}x, index memory {mine.index_mib / theirs_.index_mib:.2f}x"
        )


def main() -> None:
    args = parse_args()
    corpus = make_corpus(args)
    exact = {
        i: jaccard(set(shingles(corpus.docs[i], args.ngram)), set(shingles(corpus.docs[j], args.ngram)))
        for i, j in corpus.original_of.items()
    }
    strong = {i for i, value in exact.items() if value >= args.threshold}
    equal_weights = lsh_params(args.threshold, args.num_perm)
    default_ours = MinHashLSH(args.threshold, args.num_perm)
    ours_params = (default_ours.bands, default_ours.rows)
    shape = (args.threshold, args.num_perm, args.ngram)
    runs = [
        ("ours (default b,r)", ours_params, ours(*shape, ours_params)),
        ("ours (equal weights)", equal_weights, ours(*shape, equal_weights)),
        ("datasketch (default)", equal_weights, theirs(*shape, equal_weights)),
        ("datasketch (our b,r)", ours_params, theirs(*shape, ours_params)),
    ]
    print(f"{args.docs} docs, {len(corpus.original_of)} planted near-duplicates, {len(strong)} of them with")
    print(f"exact Jaccard >= {args.threshold}; num_perm {args.num_perm}, word {args.ngram}-gram shingles\n")
    results = [measure(name, params, dedupe, corpus.docs) for name, params, dedupe in runs]
    print_table(results, corpus, strong)
    print_ratios(results)


if __name__ == "__main__":
    main()
