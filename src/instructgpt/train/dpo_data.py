"""DPO's data: Comparisons read, split and rendered into the pairs the loss compares.

A seeded share `eval_fraction` of the *comparisons* is held out, so the pairs of one prompt never straddle
train and eval. Each Comparison's K ranked responses give all C(K, 2) (better, worse) pairs; with
`ties=drop` the pairs of two responses the ranking ties (its `tiers`) are left out and counted, as is a
comparison whose responses are all tied (no pair; written to the rejects file). Every response
a kept pair uses is rendered once with chat_format.render_response (prompt as context, the reply and its
end-of-turn tokens as targets) and pairs point into that list. A pair with a sequence longer than
`model.max_length` is dropped and counted (`too_long=drop`, written to the rejects file) or stops the run
(`too_long=error`); a comparison the chat template cannot render stops the run or is skipped
(`--on-error skip`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt.chat_format import Rendered, render_response
from instructgpt.config import DPOConfig
from instructgpt.data.decontam import Decontaminator
from instructgpt.io import Rejects
from instructgpt.records import Comparison
from instructgpt.records import to_dict as to_record_dict
from instructgpt.train.loop import split_indices
from instructgpt.train.run import read_all


@dataclass(frozen=True)
class Pair:
    """One (better, worse) pair of a comparison, as indices into `DPOData.sequences`."""

    chosen: int
    rejected: int
    comparison: str  # the Comparison's id


@dataclass
class DPOData:
    sequences: list[Rendered]  # every response a kept pair uses, train and eval, each once
    pairs: list[Pair]  # training pairs
    eval_pairs: list[Pair]
    comparisons: int  # training comparisons with at least one pair kept
    eval_comparisons: int
    dropped: int  # pairs dropped for a sequence longer than model.max_length
    tied: int  # pairs of tied responses not expanded (ties=drop)
    all_tied: int  # comparisons whose responses are all tied: no pair (ties=drop)
    fingerprint: str  # of the training pairs: a resume on other data is refused


def read_comparisons(
    inputs: Sequence[str | Path], rejects: Rejects, decontaminate: Decontaminator | None = None
) -> list[Comparison]:
    """All Comparisons of `inputs` (any format that converts to one), less those sharing an n-gram with
    `decontaminate`'s evaluation files."""
    hint = ": dpo reads preference data (chosen/rejected pairs, ranked responses, HH transcripts)"
    return read_all(inputs, Comparison, rejects, hint, decontaminate)


def ranked_pairs(ranking: Sequence[int], tiers: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The (better, worse) response indices of a best-first `ranking`: all C(K, 2), less, given the tier of
    each position (`Comparison.rank_tiers`), the pairs within one tier."""
    k = len(ranking)
    return [
        (ranking[i], ranking[j])
        for i in range(k)
        for j in range(i + 1, k)
        if tiers is None or tiers[i] < tiers[j]
    ]


def build_data(tokenizer: Any, comparisons: list[Comparison], config: DPOConfig, rejects: Rejects) -> DPOData:
    """Split the comparisons, render each response once, expand the rankings into pairs, apply the limit."""
    train_ids, eval_ids = split_indices(len(comparisons), config.train.eval_fraction, config.train.seed)
    sequences: list[Rendered] = []
    splits: tuple[list[Pair], list[Pair]] = ([], [])
    used, dropped, ties = [0, 0], 0, Ties(config.ties == "drop", rejects)
    for split, ids in enumerate((train_ids, eval_ids)):
        for i in ids:
            rendered = _render(tokenizer, comparisons[i], rejects)
            pairs = None if rendered is None else ties.pairs(comparisons[i])
            if not pairs:
                continue
            fits, too_long = _fitting_pairs(comparisons[i], pairs, rendered, config, rejects)
            index = {r: len(sequences) + k for k, r in enumerate(sorted({r for pair in fits for r in pair}))}
            sequences.extend(rendered[r] for r in index)  # each response a kept pair uses, once
            splits[split].extend(Pair(index[b], index[w], comparisons[i].id) for b, w in fits)
            used[split], dropped = used[split] + bool(fits), dropped + too_long
    if not splits[0]:
        raise ValueError("no training pairs left after the eval split and the length limit")
    texts = repr([(sequences[p.chosen].input_ids, sequences[p.rejected].input_ids) for p in splits[0]])
    digest = hashlib.sha256(texts.encode()).hexdigest()[:16]
    counts = (used[0], used[1], dropped, ties.tied, ties.all_tied)
    return DPOData(sequences, splits[0], splits[1], *counts, digest)


@dataclass
class Ties:
    """Expands rankings into pairs, leaving out (`drop`) or keeping in ranking order the tied ones, and
    counts what it left out."""

    drop: bool
    rejects: Rejects
    tied: int = 0  # pairs left out
    all_tied: int = 0  # comparisons with no pair left

    def pairs(self, comparison: Comparison) -> list[tuple[int, int]]:
        """The comparison's (better, worse) pairs; an all-tied comparison is counted and rejected."""
        if not self.drop or comparison.tiers is None:
            return ranked_pairs(comparison.ranking)
        pairs = ranked_pairs(comparison.ranking, comparison.rank_tiers())
        k = len(comparison.ranking)
        self.tied += k * (k - 1) // 2 - len(pairs)
        if not pairs:
            self.all_tied += 1
            reason = f"all {k} responses are tied: no pair to train (ties=drop)"
            self.rejects.filtered("all_tied", comparison.id, reason, to_record_dict(comparison))
        return pairs


def _render(tokenizer: Any, comparison: Comparison, rejects: Rejects) -> list[Rendered] | None:
    """Each response after the prompt; a comparison the template cannot render stops the run, or with
    `--on-error skip` is counted and written to the rejects file (None)."""
    try:
        return [render_response(tokenizer, comparison.prompt, r) for r in comparison.responses]
    except ValueError as err:
        if rejects.on_error == "fail":
            raise ValueError(f"comparison {comparison.id}: {err}") from err
        rejects.filtered("render", comparison.id, str(err), to_record_dict(comparison))
        return None


def _fitting_pairs(
    comparison: Comparison,
    pairs: list[tuple[int, int]],
    rendered: list[Rendered],
    config: DPOConfig,
    rejects: Rejects,
) -> tuple[list[tuple[int, int]], int]:
    """The `pairs` of `comparison` whose two sequences fit in model.max_length, and how many did not."""
    limit = config.model.max_length
    fits = [(b, w) for b, w in pairs if max(len(rendered[b]), len(rendered[w])) <= limit]
    if len(fits) < len(pairs):
        longest = max(len(r) for r in rendered)
        if config.too_long == "error":
            raise ValueError(
                f"comparison {comparison.id} has a sequence of {longest} tokens, more than "
                f"model.max_length={limit} (too_long=drop drops such pairs)"
            )
        reason = f"{len(pairs) - len(fits)} of {len(pairs)} pairs longer than model.max_length={limit}"
        rejects.filtered("too_long", comparison.id, reason, to_record_dict(comparison))
    return fits, len(pairs) - len(fits)
