"""How far two annotators of one item agree, as InstructGPT reports inter-labeller agreement.

Both measures compare the two rankings answer pair by answer pair: for answers i < j each ranking says
i is better, worse, or tied. `pair_agreement` is the share of pairs on which the two say the same;
`kendall_tau` is Kendall's tau-b, (concordant − discordant) / sqrt((n0 − t1)(n0 − t2)), with n0 the
number of pairs and t1, t2 the pairs each ranking ties.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from instructgpt.annotate.labels import Label, tier_of


def _signs(label: Label) -> list[int]:
    """Per answer pair (i < j): -1 when i ranks above j, 1 when below, 0 when tied."""
    tier = tier_of(label)
    pairs = itertools.combinations(range(len(tier)), 2)
    return [(tier[i] > tier[j]) - (tier[i] < tier[j]) for i, j in pairs]


def pair_agreement(a: Label, b: Label) -> float:
    """Share of answer pairs both labels order the same way (a tie counts as an order)."""
    sa, sb = _signs(a), _signs(b)
    return sum(x == y for x, y in zip(sa, sb, strict=True)) / len(sa)


def kendall_tau(a: Label, b: Label) -> float | None:
    """Kendall's tau-b of the two rankings; None where one ranks every answer equal."""
    sa, sb = _signs(a), _signs(b)
    products = [x * y for x, y in zip(sa, sb, strict=True)]
    denominator = math.sqrt(sum(x != 0 for x in sa) * sum(y != 0 for y in sb))
    if denominator == 0:
        return None
    return (products.count(1) - products.count(-1)) / denominator


@dataclass(frozen=True)
class Agreement:
    items: int  # items labelled by two (or more) annotators; each pair of their labels counts once
    pairs: int  # pairs of labels compared
    pair_agreement: float | None  # mean over label pairs
    kendall_tau: float | None  # mean over label pairs where it is defined


def agreement(labels: list[Label]) -> Agreement:
    """Agreement over every item that more than one annotator labelled."""
    by_item: dict[str, list[Label]] = {}
    for label in labels:
        by_item.setdefault(label.item, []).append(label)
    shared = [group for group in by_item.values() if len(group) > 1]
    compared = [pair for group in shared for pair in itertools.combinations(group, 2)]
    taus = [t for a, b in compared if (t := kendall_tau(a, b)) is not None]
    return Agreement(
        items=len(shared),
        pairs=len(compared),
        pair_agreement=sum(pair_agreement(a, b) for a, b in compared) / len(compared) if compared else None,
        kendall_tau=sum(taus) / len(taus) if taus else None,
    )
