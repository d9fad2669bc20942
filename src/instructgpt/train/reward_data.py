"""The reward model's data: Comparisons rendered best first, with the tier of each response, and split.

Each Comparison's K responses are rendered after the prompt (chat_format.render_response) in ranking
order. A ranking with ties (the Comparison's `tiers`) keeps each response's tier: with `ties=drop` the
loss and the pairwise accuracy leave out the pairs of one tier (no preference), and a comparison whose
responses are all tied gives no pair at all: it is left out, counted and written to the rejects file;
`ties=order` trains every pair in ranking order, ties or not. A comparison with a response longer than
`model.max_length` is dropped (counted) or stops the run (`too_long`); one the chat template cannot
render stops the run or, with `--on-error skip`, is counted and skipped. A seeded share `eval_fraction`
of the comparisons is held out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from instructgpt.chat_format import Rendered, render_response
from instructgpt.config import RewardConfig
from instructgpt.io import Rejects
from instructgpt.records import Comparison, Message
from instructgpt.records import to_dict as to_record_dict
from instructgpt.train.loop import split_indices


@dataclass
class Ranked:
    """One Comparison rendered: its responses after the prompt, best first, and the tier of each (0 best;
    strictly increasing when the ranking has no tie or ties are trained in order)."""

    id: str
    prompt: list[Message]
    responses: list[Rendered]
    tiers: list[int]

    @property
    def pairs(self) -> int:
        """Its ranked pairs: those of responses in different tiers (C(K, 2) without ties)."""
        return sum(a < b for i, a in enumerate(self.tiers) for b in self.tiers[i + 1 :])

    @property
    def tied_pairs(self) -> int:
        k = len(self.responses)
        return k * (k - 1) // 2 - self.pairs


@dataclass
class RewardData:
    train: list[Ranked]
    eval: list[Ranked]
    dropped: int  # comparisons with a response longer than model.max_length
    tied_pairs: int  # pairs of tied responses left out of the loss (ties=drop), all-tied comparisons' too
    all_tied: int  # comparisons left out because every response shares one tier (ties=drop)
    fingerprint: str

    @property
    def pairs(self) -> int:
        return sum(g.pairs for g in self.train)

    @property
    def eval_pairs(self) -> int:
        return sum(g.pairs for g in self.eval)


def build_data(
    tokenizer: Any, comparisons: list[Comparison], config: RewardConfig, rejects: Rejects
) -> RewardData:
    """Render every comparison best first, leave out the all-tied and drop (or refuse) over-long ones,
    split off the eval share."""
    ranked, dropped, tied, all_tied = [], 0, 0, 0
    for comparison in comparisons:
        group = _render(tokenizer, comparison, config, rejects)
        if group is None:
            continue
        tied += group.tied_pairs
        longest = max(len(r) for r in group.responses)
        if group.pairs == 0:
            all_tied += 1
            reason = f"all {len(group.responses)} responses are tied: no pair to train (ties=drop)"
            rejects.filtered("all_tied", comparison.id, reason, to_record_dict(comparison))
        elif longest <= config.model.max_length:
            ranked.append(group)
        elif config.too_long == "error":
            raise ValueError(
                f"comparison {comparison.id}: a response renders to {longest} tokens, more than "
                f"model.max_length={config.model.max_length} (too_long=drop skips such comparisons)"
            )
        else:
            dropped += 1
            reason = f"a response of {longest} tokens, more than model.max_length={config.model.max_length}"
            rejects.filtered("too_long", comparison.id, reason, to_record_dict(comparison))
    train_ids, eval_ids = split_indices(len(ranked), config.train.eval_fraction, config.train.seed)
    train = [ranked[i] for i in train_ids]
    if not train:
        raise ValueError("no comparisons left for training after the eval split, the length limit and ties")
    held_out = [ranked[i] for i in eval_ids]
    return RewardData(train, held_out, dropped, tied, all_tied, _fingerprint(train))


def _fingerprint(train: list[Ranked]) -> str:
    """Of the training responses, and of their tiers when some are tied: a resume on other data is refused."""
    text = repr([[r.input_ids for r in g.responses] for g in train])
    if any(g.tied_pairs for g in train):
        text += repr([g.tiers for g in train])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _render(tokenizer: Any, comparison: Comparison, config: RewardConfig, rejects: Rejects) -> Ranked | None:
    try:
        responses = [
            render_response(tokenizer, comparison.prompt, comparison.responses[i]) for i in comparison.ranking
        ]
    except ValueError as err:
        if rejects.on_error == "fail":
            raise ValueError(f"comparison {comparison.id}: {err}") from err
        rejects.filtered("render", comparison.id, str(err), to_record_dict(comparison))
        return None
    tiers = comparison.rank_tiers() if config.ties == "drop" else list(range(len(responses)))
    return Ranked(comparison.id, list(comparison.prompt), responses, tiers)
