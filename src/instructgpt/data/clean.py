"""Per-document work of `prepare`: normalise, scrub, identify the language, filter, fingerprint.

Everything here depends on one document only, so it runs in worker processes; the stateful steps
(deduplication) happen afterwards in the main process, in input order. A `Cleaner` is built once from
the config and holds plain functions with their thresholds bound (picklable, so any start method works).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from instructgpt.config import PrepareConfig
from instructgpt.data import langid, normalize, pii, quality, segment
from instructgpt.data.decontam import STAGE, Decontaminator
from instructgpt.data.dedup import MinHasher
from instructgpt.data.text import units

Transform = Callable[[str], str]
Check = Callable[[str, list[str]], "str | None"]


@dataclass(frozen=True)
class Cleaner:
    """The per-document steps, in order; `checks` are named quality filters over (text, units)."""

    transforms: tuple[Transform, ...]
    pii_kinds: tuple[str, ...]
    keep_langs: frozenset[str] | None
    checks: tuple[tuple[str, Check], ...]
    decontaminator: Decontaminator | None
    minhasher: MinHasher | None
    segment: bool
    remove_stopwords: bool


@dataclass
class Outcome:
    """What a worker found for one document. `stage` names the filter that dropped it, if any."""

    text: str
    lang: str
    share: dict[str, float]
    n_units: int
    stage: str | None = None
    reason: str = ""
    pii: Counter[str] = field(default_factory=Counter)
    signature: np.ndarray | None = None
    tokens: list[str] | None = None


def build_cleaner(config: PrepareConfig, decontaminator: Decontaminator | None) -> Cleaner:
    """Bind the config's switches and thresholds to the filter functions."""
    near = config.near_dedup
    return Cleaner(
        transforms=_transforms(config),
        pii_kinds=tuple(config.pii.kinds) if config.pii.enabled else (),
        keep_langs=frozenset(config.lang.keep) if config.lang.enabled else None,
        checks=_checks(config),
        decontaminator=decontaminator,
        minhasher=MinHasher(near.num_perm, near.ngram, near.seed) if near.enabled else None,
        segment=config.segment.enabled,
        remove_stopwords=config.segment.remove_stopwords,
    )


def _transforms(config: PrepareConfig) -> tuple[Transform, ...]:
    n = config.normalize
    steps = [
        (n.html, normalize.strip_html),
        (n.control_chars, normalize.strip_control_chars),
        (n.nfkc, normalize.nfkc),
        (n.traditional_to_simplified, normalize.to_simplified),
        (n.whitespace, normalize.normalize_whitespace),
    ]
    return tuple(fn for enabled, fn in steps if enabled)


def _checks(config: PrepareConfig) -> tuple[tuple[str, Check], ...]:
    c = config
    checks: list[tuple[bool, str, Check]] = [
        (c.length.enabled, "length", partial(
            _length, min_units=c.length.min_units, max_units=c.length.max_units)),
        (c.repeated_lines.enabled, "repeated_lines", partial(
            _repeated_lines,
            max_dup_line_fraction=c.repeated_lines.max_dup_line_fraction,
            max_dup_line_char_fraction=c.repeated_lines.max_dup_line_char_fraction)),
        (c.repeated_ngrams.enabled, "repeated_ngrams", partial(
            _repeated_ngrams,
            max_top_ngram_fraction=c.repeated_ngrams.max_top_ngram_fraction,
            max_dup_ngram_fraction=c.repeated_ngrams.max_dup_ngram_fraction)),
        (c.symbols.enabled, "symbols", partial(
            _symbols,
            max_symbol_ratio=c.symbols.max_symbol_ratio,
            max_bullet_line_fraction=c.symbols.max_bullet_line_fraction,
            max_ellipsis_line_fraction=c.symbols.max_ellipsis_line_fraction,
            min_word_char_fraction=c.symbols.min_word_char_fraction)),
    ]  # fmt: skip
    return tuple((name, fn) for enabled, name, fn in checks if enabled)


def _length(text: str, toks: list[str], *, min_units: int, max_units: int) -> str | None:
    return quality.check_length(len(toks), min_units, max_units)


def _repeated_lines(text: str, toks: list[str], **thresholds: float) -> str | None:
    return quality.check_repeated_lines(text, **thresholds)


def _repeated_ngrams(text: str, toks: list[str], **thresholds: dict[int, float]) -> str | None:
    return quality.check_repeated_ngrams(toks, **thresholds)


def _symbols(text: str, toks: list[str], **thresholds: float) -> str | None:
    return quality.check_symbols(text, toks, **thresholds)


def clean(cleaner: Cleaner, text: str, lang: str = "") -> Outcome:
    """Run every per-document step on `text`; `lang`, when the record already has one, is trusted."""
    for transform in cleaner.transforms:
        text = transform(text)
    counts: Counter[str] = Counter()
    if cleaner.pii_kinds:
        text, counts = pii.scrub_pii(text, cleaner.pii_kinds)
    guess = langid.detect_language(text)
    toks = units(text)
    out = Outcome(text, lang or guess.lang, guess.share, len(toks), pii=counts)
    if cleaner.keep_langs is not None and out.lang not in cleaner.keep_langs:
        return _drop(out, "lang", f"language {out.lang!r} not in {sorted(cleaner.keep_langs)}")
    for name, check in cleaner.checks:
        if reason := check(text, toks):
            return _drop(out, name, reason)
    if cleaner.decontaminator is not None and (found := cleaner.decontaminator.find(text)):
        return _drop(out, STAGE, found.reason)
    if cleaner.minhasher is not None:
        out.signature = cleaner.minhasher.signature(text)
    if cleaner.segment:
        tokens = segment.segment(text, out.lang)
        out.tokens = segment.remove_stopwords(tokens, out.lang) if cleaner.remove_stopwords else tokens
    return out


def _drop(out: Outcome, stage: str, reason: str) -> Outcome:
    out.stage, out.reason = stage, reason
    return out


def clean_shard(cleaner: Cleaner, shard: list[tuple[str, str]]) -> list[Outcome]:
    """`clean` over a shard of (text, lang) pairs; the unit of work sent to a worker."""
    return [clean(cleaner, text, lang) for text, lang in shard]
