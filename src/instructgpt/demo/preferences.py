"""Ranked comparisons for the demo's reward model, made from instruction Conversations.

The demo has no human labellers, so it ranks answers whose order is known by construction: for each
conversation, its own reference reply is best; the same reply cut to its first half (when it is long
enough to cut) is next; the reply of another conversation of the same task and language is worst. The
reward model must therefore learn to prefer complete answers that belong to the question — a property
the policy can then be optimised for. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from instructgpt.records import Comparison, Conversation

MIN_UNITS_TO_CUT = 6  # a reply shorter than this (a label, a number) is not cut


def comparisons_from(conversations: Sequence[Conversation], seed: int = 0) -> list[Comparison]:
    """One Comparison per conversation that ends with an assistant reply (K = 3, or 2 for short replies)."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Conversation]] = defaultdict(list)
    for conversation in conversations:
        if conversation.messages and conversation.messages[-1].role == "assistant":
            groups[(conversation.task, conversation.lang)].append(conversation)
    out = []
    for group in groups.values():
        for conversation in group:
            comparison = _ranked(conversation, group, rng)
            if comparison is not None:
                out.append(comparison)
    return out


def _ranked(conversation: Conversation, group: list[Conversation], rng: random.Random) -> Comparison | None:
    reply = conversation.messages[-1].content
    others = [c.messages[-1].content for c in group if c.messages[-1].content != reply]
    if not others:
        return None
    responses = [reply]
    cut = first_half(reply, conversation.lang)
    if cut is not None:
        responses.append(cut)
    responses.append(rng.choice(others))
    prompt = list(conversation.messages[:-1])
    return Comparison(
        f"{conversation.id}-ranked", prompt, responses, list(range(len(responses))), conversation.id
    )


def first_half(text: str, lang: str) -> str | None:
    """The first half of `text` by characters (zh) or words (others), or None when it is too short."""
    units = list(text) if lang == "zh" else text.split()
    if len(units) < MIN_UNITS_TO_CUT:
        return None
    half = units[: len(units) // 2]
    return "".join(half) if lang == "zh" else " ".join(half)
