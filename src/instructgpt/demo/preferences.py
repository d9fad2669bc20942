"""Ranked comparisons for the demo's reward model, made from instruction Conversations.

The demo has no human labellers, so it ranks answers whose order is known by construction. Each
comparison puts a conversation's own reference reply first and a worse answer after it; which flaw the
worse answer has is what a labeller following instructions would penalise (InstructGPT's labelling
guidelines: follow the instruction, be truthful to the input, answer in the user's language):

- `wrong_label` (sentiment): another label of the same template, e.g. the flipped sentiment;
- `other_input` (every task): the reply to another input of the same task and language, e.g. a span
  from another passage or the summary of another text;
- `other_language` (every task): a reply of the same task in the other language;
- `cut` (replies of ≥ 6 words or characters): the reply cut to its first half, then an `other_input`
  reply third (K = 3: partly right beats wrong).

Kinds go round-robin, over the kinds that apply, through each (task, language)'s conversations in a
seeded order, so the kinds of a task are about equally frequent and the reward model must learn them
all. The kind is the suffix of each comparison's id (`…-wrong_label`). Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from instructgpt.records import Comparison, Conversation

MIN_UNITS_TO_CUT = 6  # a reply shorter than this (a label, a number) is not cut
LABEL_TASKS = frozenset({"sentiment_binary", "sentiment_fine"})  # replies drawn from one label set
KINDS = ("wrong_label", "other_input", "other_language", "cut")


def comparisons_from(conversations: Sequence[Conversation], seed: int = 0) -> list[Comparison]:
    """One Comparison per conversation that ends with an assistant reply and has a worse answer to rank."""
    rng = random.Random(seed)
    answered = [c for c in conversations if c.messages and c.messages[-1].role == "assistant"]
    by_task: dict[tuple[str, str], list[Conversation]] = defaultdict(list)
    for conversation in answered:
        by_task[conversation.task, conversation.lang].append(conversation)
    out = []
    for (task, lang), group in sorted(by_task.items()):
        others = {k: g for k, g in by_task.items() if k[0] == task and k[1] != lang}
        foreign = [reply(c) for g in others.values() for c in g]
        order = list(range(len(group)))
        rng.shuffle(order)
        for turn, i in enumerate(order):
            comparison = _ranked(group[i], group, foreign, turn, rng)
            if comparison is not None:
                out.append(comparison)
    return sorted(out, key=lambda c: c.id)


def reply(conversation: Conversation) -> str:
    return conversation.messages[-1].content


def _ranked(
    conversation: Conversation, group: list[Conversation], foreign: list[str], turn: int, rng: random.Random
) -> Comparison | None:
    """The comparison of kind `turn` (round-robin) among the kinds that apply to `conversation`."""
    candidates = {kind: _worse(kind, conversation, group, foreign, rng) for kind in KINDS}
    kinds = [kind for kind in KINDS if candidates[kind]]
    if not kinds:
        return None
    kind = kinds[turn % len(kinds)]
    responses = [reply(conversation), *candidates[kind]]
    prompt, ranking = list(conversation.messages[:-1]), list(range(len(responses)))
    return Comparison(f"{conversation.id}-{kind}", prompt, responses, ranking, conversation.id)


def _worse(
    kind: str, conversation: Conversation, group: list[Conversation], foreign: list[str], rng: random.Random
) -> list[str]:
    """The worse answers of `kind` for `conversation`, worst last; [] when the kind does not apply."""
    own = reply(conversation)
    other_inputs = [reply(c) for c in group if reply(c) != own]
    if kind == "wrong_label":
        if conversation.task not in LABEL_TASKS:
            return []
        labels = sorted({reply(c) for c in group if c.template == conversation.template} - {own})
        return [rng.choice(labels)] if labels else []
    if kind == "other_input":
        return [rng.choice(other_inputs)] if other_inputs else []
    if kind == "other_language":
        return [rng.choice(foreign)] if foreign else []
    cut = first_half(own, conversation.lang)
    return [cut, rng.choice(other_inputs)] if cut is not None and other_inputs else []


def comparison_kind(comparison_id: str) -> str:
    """The kind of a comparison made here, from its id's suffix ('' for another id)."""
    suffix = comparison_id.rsplit("-", 1)[-1]
    return suffix if suffix in KINDS else ""


def first_half(text: str, lang: str) -> str | None:
    """The first half of `text` by characters (zh) or words (others), or None when it is too short."""
    units = list(text) if lang == "zh" else text.split()
    if len(units) < MIN_UNITS_TO_CUT:
        return None
    half = units[: len(units) // 2]
    return "".join(half) if lang == "zh" else " ".join(half)
