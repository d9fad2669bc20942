"""The eval suite's examples: each Conversation of an eval file as a prompt and its reference reply,
labelled with the split it measures (from the instruct stage's split.json), sampled per (task, language),
and for classification given its options. `scoring_kind` says how an example's answer is scored.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from instructgpt.evaluate.winrate import prompt_text
from instructgpt.io import Rejects, read_records
from instructgpt.records import Conversation, Message, prompt_messages

if TYPE_CHECKING:
    from instructgpt.instruct.templates import Template

CHOICE_TASKS = frozenset({"qa_multiple_choice", "sentiment_binary", "sentiment_fine"})
LABELLED_TASKS = CHOICE_TASKS - {"qa_multiple_choice"}  # one label set for every example
_KIND_OF_TASK = {"summarization": "rouge", "qa_extractive": "squad", "qa_open": "squad"}


@dataclass
class EvalExample:
    """One Conversation of an eval file as a prompt, its reference reply and where it belongs."""

    id: str
    file: str
    task: str
    family: str
    lang: str
    template: str
    split: str  # seen | heldout_template | heldout_family
    prompt: list[Message]
    reference: str
    options: list[str]  # classification: the candidate answers, the reference among them; else []


@dataclass(frozen=True)
class SplitInfo:
    """What the instruct stage held out (split.json)."""

    templates: frozenset[str]
    families: frozenset[str]
    train_templates: frozenset[str] | None  # None: the file does not list them

    def label(self, family: str, template: str) -> str:
        if family in self.families:
            return "heldout_family"
        unseen = self.train_templates is not None and bool(template) and template not in self.train_templates
        return "heldout_template" if template in self.templates or unseen else "seen"


def load_examples(
    inputs: Sequence[str | Path], split_file: str, max_per_task: int, seed: int, rejects: Rejects
) -> list[EvalExample]:
    """The examples of every file, sampled per (task, lang) and labelled with their split."""
    examples: list[EvalExample] = []
    for path in inputs:
        split = read_split(split_file or Path(path).parent / "split.json", required=bool(split_file))
        unreadable = rejects.counts["read_error"]
        records = [
            r for _, r in read_records([path], (Conversation,), rejects) if isinstance(r, Conversation)
        ]
        found = [e for r in records if (e := _example(r, str(path), split)) is not None]
        if not found:
            skipped = rejects.counts["read_error"] - unreadable
            raise ValueError(
                f"{path}: no conversations ending in an assistant reply (the reference answer) among "
                f"{len(records)} read and {skipped} unreadable records; eval reads Conversation files "
                "such as the heldout.jsonl of `instructgpt instruct`"
            )
        _add_options(found)
        examples += _sample_per_task(found, max_per_task, seed)
    return examples


def read_split(path: str | Path, required: bool) -> SplitInfo | None:
    """The held-out templates and families of a split.json; None when there is none (and none was named)."""
    path = Path(path)
    if not path.exists():
        if required:
            raise ValueError(f"split_file {path}: no such file")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        train = data.get("counts", {}).get("train_templates")
        held = frozenset(data.get("templates", [])), frozenset(data.get("families", []))
        return SplitInfo(*held, None if train is None else frozenset(train))
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise ValueError(f"{path}: not a split.json of `instructgpt instruct`: {err}") from err


def _example(record: Conversation, file: str, split: SplitInfo | None) -> EvalExample | None:
    from instructgpt.data.langid import detect_language
    from instructgpt.instruct.tasks import TASKS

    prompt = prompt_messages(record)
    reference = record.messages[-1].content
    if not prompt or record.messages[-1].role != "assistant" or len(prompt) != len(record.messages) - 1:
        return None  # a reply to nothing, or several trailing replies: no single prompt/reference pair
    family = TASKS[record.task].family if record.task in TASKS else "other"
    lang = record.lang or detect_language(" ".join(m.content for m in record.messages)).lang
    label = split.label(family, record.template) if split is not None else "seen"
    return EvalExample(
        record.id, file, record.task, family, lang, record.template, label, prompt, reference, []
    )


def _add_options(examples: list[EvalExample]) -> None:
    """Classification examples get the distinct references of their (task, lang, template) in the file."""
    groups: dict[tuple[str, str, str], dict[str, None]] = defaultdict(dict)
    for ex in examples:
        if ex.task in CHOICE_TASKS and scoring_kind(ex.task, ex.template) == "choice":
            groups[ex.task, ex.lang, ex.template][ex.reference] = None
    for ex in examples:
        options = list(groups.get((ex.task, ex.lang, ex.template), {}))
        if ex.task == "qa_multiple_choice" and options:
            text = prompt_text(ex.prompt).lower()
            listed = [o for o in options if re.search(rf"(?<!\w){re.escape(o.lower())}(?!\w)", text)]
            options = listed if len(listed) >= 2 and ex.reference in listed else options
        ex.options = options


def _sample_per_task(examples: list[EvalExample], limit: int, seed: int) -> list[EvalExample]:
    by_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_task[ex.task, ex.lang].append(i)
    kept: list[int] = []
    for (task, lang), indices in by_task.items():
        if limit and len(indices) > limit:
            indices = random.Random(f"{seed}:{task}:{lang}").sample(indices, limit)
        kept += indices
    return [examples[i] for i in sorted(kept)]


def scoring_kind(task: str, template: str) -> str:
    """How an answer is scored: text (inverse templates and unknown tasks), choice, dialogue, rouge, squad."""
    if template in _inverse_templates():
        return "text"
    if task in CHOICE_TASKS:
        return "choice"
    return "dialogue" if task.startswith("dialogue_") else _KIND_OF_TASK.get(task, "text")


@functools.cache
def templates() -> dict[str, Template]:
    """The built-in templates by id (loaded once)."""
    from instructgpt.instruct.templates import load_templates

    return {t.id: t for t in load_templates()}


@functools.cache
def _inverse_templates() -> frozenset[str]:
    return frozenset(i for i, t in templates().items() if t.kind == "inverse")
