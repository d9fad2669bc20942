"""Deduplication: exact (normalised text), shared long prefix (InstructGPT prompts) and MinHash + LSH.

The stateless part (`MinHasher.signature`) is meant to run in worker processes: it returns a small numpy
array that pickles cheaply. The stateful parts (`ExactDeduper`, `PrefixDeduper`, `MinHashLSH`) live in
one process and see documents in input order, so the first occurrence of a duplicate is the one kept.
"""

from __future__ import annotations

import numpy as np
import xxhash

from instructgpt.data.text import hash64, hash_key, units

_MERSENNE_61 = (1 << 61) - 1
_MASK_32 = (1 << 32) - 1
# An empty text has no shingles; its signature is all-max, which no real minimum reaches in practice
# (every slot would need the largest of 2^32 values), and MinHashLSH never indexes or matches it.
_EMPTY_SLOT = np.uint32(_MASK_32)
# Default LSH weights: every candidate is verified against its signature, so a false positive costs one
# comparison while a false negative keeps a duplicate; weighting misses more moves the S-curve left.
_VERIFIED_FP_WEIGHT, _VERIFIED_FN_WEIGHT = 0.1, 0.9
# Shingles are permuted in chunks of this many uint64 values (64 KiB): a long document never builds a
# huge (shingles, num_perm) matrix, and temporaries this small reuse heap memory instead of fresh mmap'd
# pages, which measured twice as fast as 2048-shingle chunks.
_CHUNK_VALUES = 8192


class ExactDeduper:
    """Recognises texts equal to an earlier one once case, punctuation and whitespace are ignored.

    Memory: one 64-bit hash (a Python int in a set) per kept text. All texts without any letter or digit
    share one key, so only the first of them is kept.
    """

    def __init__(self) -> None:
        self._keys: set[int] = set()

    def seen(self, text: str) -> bool:
        """True if an equal text was seen before; otherwise remember this one and return False."""
        key = hash64(hash_key(text))
        if key in self._keys:
            return True
        self._keys.add(key)
        return False


class PrefixDeduper:
    """InstructGPT-style prompt dedupe: texts whose first `prefix_units` lower-cased units agree.

    Texts shorter than `prefix_units` units never match and are not remembered: no later text can share
    a prefix that long with them. Memory: one 64-bit hash per remembered text.
    """

    def __init__(self, prefix_units: int) -> None:
        if prefix_units < 1:
            raise ValueError(f"prefix_units must be >= 1, got {prefix_units}")
        self.prefix_units = prefix_units
        self._keys: set[int] = set()

    def seen(self, text: str) -> bool:
        """True if an earlier text had the same first `prefix_units` units; otherwise remember this one."""
        prefix = units(text.lower())[: self.prefix_units]
        if len(prefix) < self.prefix_units:
            return False
        key = hash64(" ".join(prefix))
        if key in self._keys:
            return True
        self._keys.add(key)
        return False


def shingles(text: str, n: int) -> list[str]:
    """The n-grams of lower-cased units, each joined by spaces; fewer than n units give one shingle.

    An empty text (no letters or digits) gives no shingles.
    """
    toks = units(text.lower())
    if len(toks) <= n:
        return [" ".join(toks)] if toks else []
    return [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]


class MinHasher:
    """MinHash signatures of unit n-gram shingles, `num_perm` uint32 values per text.

    Each shingle is hashed to 32 bits with xxh32, then permuted by `num_perm` universal hashes
    (a*x + b) mod (2^61 - 1) with a < 2^32, so a*x < 2^64 never overflows uint64. The minimum over the
    shingles is kept per permutation and stored in its low 32 bits. The (a, b) pairs come from a seeded
    numpy generator, so instances built with the same arguments agree in every process.

    An empty text gets an all-(2^32 - 1) signature that `MinHashLSH` never indexes or matches.
    """

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        if num_perm < 1 or ngram < 1:
            raise ValueError(f"num_perm and ngram must be >= 1, got {num_perm} and {ngram}")
        self.num_perm = num_perm
        self.ngram = ngram
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 1 << 32, size=num_perm, dtype=np.uint64)
        self._b = rng.integers(0, _MERSENNE_61, size=num_perm, dtype=np.uint64)

    def signature(self, text: str) -> np.ndarray:
        """The (num_perm,) uint32 MinHash signature of `text`."""
        hashes = [xxhash.xxh32_intdigest(s.encode("utf-8")) for s in shingles(text, self.ngram)]
        if not hashes:
            return np.full(self.num_perm, _EMPTY_SLOT, dtype=np.uint32)
        x = np.array(hashes, dtype=np.uint64)[:, None]
        mins = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        chunk = max(1, _CHUNK_VALUES // self.num_perm)
        for start in range(0, len(x), chunk):
            permuted = _fold(_fold(x[start : start + chunk] * self._a) + self._b)
            np.minimum(mins, permuted.min(axis=0), out=mins)
        return (mins & np.uint64(_MASK_32)).astype(np.uint32)


def _fold(v: np.ndarray) -> np.ndarray:
    """Reduce uint64 `v` modulo 2^61 - 1 by folding the top bits onto the bottom (in place, no division).

    The result is congruent to v and below 2^61 + 8, so adding b < 2^61 and folding again cannot overflow.
    It is not always the canonical residue (a few small residues come out offset by p), which MinHash
    does not need: a shingle still gets the same value in every document. About 4x faster than `%`.
    """
    high = v >> np.uint64(61)
    v &= np.uint64(_MERSENNE_61)
    v += high
    return v


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that two documents of Jaccard `s` share at least one of `bands` bands of `rows` slots."""
    return 1.0 - (1.0 - np.power(s, rows)) ** bands


def _integral(y: np.ndarray, dx: float) -> np.ndarray:
    """Trapezoid rule along the last axis of samples `y` spaced `dx` apart."""
    return (y.sum(axis=-1) - 0.5 * (y[..., 0] + y[..., -1])) * dx


def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted areas under the S-curve.

    False-positive area: the integral of the S-curve over [0, threshold] (pairs below the threshold that
    still become candidates); false-negative area: the integral of 1 - S over [threshold, 1]. Ties keep
    the pair with fewer bands. Integrals use the trapezoid rule on 1001 points per side.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    low, high = np.linspace(0.0, threshold, 1001), np.linspace(threshold, 1.0, 1001)
    best, best_error = (1, 1), np.inf
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1)[:, None]
        fp = _integral(s_curve(low, bands, rows), threshold / 1000)
        fn = _integral(1.0 - s_curve(high, bands, rows), (1.0 - threshold) / 1000)
        error = false_positive_weight * fp + false_negative_weight * fn
        i = int(np.argmin(error))
        if error[i] < best_error:
            best, best_error = (bands, i + 1), float(error[i])
    return best


class MinHashLSH:
    """Near-duplicate index: banded LSH for candidates, then the signature agreement checked.

    `add_or_match` keeps the first occurrence: a document is reported as a duplicate of the earliest
    added document that shares a band with it and agrees on at least `threshold` of the signature
    slots. Band keys are 64-bit xxh3 hashes of the band's bytes, one dict per band. Without explicit
    `bands` and `rows`, `lsh_params` is called with false-negative weight 0.9 and false-positive weight
    0.1 (e.g. threshold 0.8, num_perm 128 gives 14 bands of 9 rows, finding a pair of Jaccard 0.8 as a
    candidate with probability 0.87 instead of 0.40 under equal weights).

    Memory per added document: its signature (num_perm * 4 bytes, in a numpy array that doubles when
    full) plus one 64-bit key per band, i.e. num_perm*4 + bands*8 bytes of payload; Python's dict and
    int overhead brings the band part to roughly 85 bytes per band, plus the caller's key string
    (measured: ~2 KB per document for num_perm 128 and 14 bands, counting the doubling slack).
    """

    def __init__(self, threshold: float, num_perm: int, bands: int | None = None, rows: int | None = None):
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither")
        if bands is None or rows is None:
            bands, rows = lsh_params(threshold, num_perm, _VERIFIED_FP_WEIGHT, _VERIFIED_FN_WEIGHT)
        if bands * rows > num_perm:
            raise ValueError(f"bands*rows = {bands * rows} exceeds num_perm = {num_perm}")
        self.threshold, self.num_perm, self.bands, self.rows = threshold, num_perm, bands, rows
        # A band key maps to the index of the one document having it, or to a list when several do.
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in range(bands)]
        self._sigs = np.empty((16, num_perm), dtype=np.uint32)
        self._keys: list[str] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add_or_match(self, key: str, sig: np.ndarray) -> str | None:
        """The key of the earliest added near-duplicate of `sig`, or None after adding `sig` under `key`."""
        if sig.shape != (self.num_perm,):
            raise ValueError(f"signature shape {sig.shape} != ({self.num_perm},)")
        if np.all(sig == _EMPTY_SLOT):
            return None
        band_keys = self._band_keys(sig)
        match = self._first_match(sig, band_keys)
        if match is not None:
            return self._keys[match]
        self._add(key, sig, band_keys)
        return None

    def _band_keys(self, sig: np.ndarray) -> list[int]:
        bands = np.ascontiguousarray(sig[: self.bands * self.rows], dtype=np.uint32).reshape(self.bands, -1)
        return [xxhash.xxh3_64_intdigest(band.tobytes()) for band in bands]

    def _first_match(self, sig: np.ndarray, band_keys: list[int]) -> int | None:
        candidates: set[int] = set()
        for table, band_key in zip(self._tables, band_keys, strict=True):
            found = table.get(band_key)
            if isinstance(found, int):
                candidates.add(found)
            elif found is not None:
                candidates.update(found)
        if not candidates:
            return None
        ordered = np.array(sorted(candidates))
        agreement = (self._sigs[ordered] == sig).mean(axis=1)
        hits = np.flatnonzero(agreement >= self.threshold)
        return int(ordered[hits[0]]) if len(hits) else None

    def _add(self, key: str, sig: np.ndarray, band_keys: list[int]) -> None:
        index = len(self._keys)
        if index == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.empty_like(self._sigs)])
        self._sigs[index] = sig
        self._keys.append(key)
        for table, band_key in zip(self._tables, band_keys, strict=True):
            found = table.setdefault(band_key, index)
            if isinstance(found, list):
                found.append(index)
            elif found != index:
                table[band_key] = [found, index]


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity |a & b| / |a | b|; two empty sets give 0.0."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0
