"""The tasks a TaskExample can hold: their family (the FLAN "cluster"), fields and label sets.

Every loader writes TaskExamples in these shapes and every template reads them, so this table is the
contract between the two. Labels are canonical and language-independent (`positive`, `"4"`); a
template maps them to words of its language with `answer_choices`.

| task | family | required fields | optional fields |
|---|---|---|---|
| summarization | summarization | text, summary | title |
| qa_extractive | qa | context, question, answer | answer_start |
| qa_open | qa | question, answer | context |
| qa_multiple_choice | qa | context, question, choices, answer | |
| dialogue_next | dialogue | turns | topic |
| dialogue_persona | dialogue | turns, persona | |
| sentiment_binary | sentiment | text, label (negative/positive) | |
| sentiment_fine | sentiment | text, label ("1".."5", 1 = very negative) | |
| reading_title | reading | text, title | |
| reading_continuation | reading | text, continuation | |
| reading_fill_blank | reading | text, answer (text holds the blank as `____`) | |
| reading_connective | reading | premise, connective, conclusion | |
| reading_keywords | reading | text, keywords (a list of strings) | |

The `reading` family holds the tasks `instructgpt corpus` mines from raw documents with rules (reading-
comprehension style: a document's own title, continuation, a blanked key word, a sentence pair joined by
a connective such as "because"/"因此", the sentence a list of key words comes from).

`turns` is a list of at least two strings, speakers alternating; the last turn is the one to predict.
For `qa_multiple_choice`, `choices` is a list of strings and `answer` is one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instructgpt.records import FieldError

LIST_FIELDS: tuple[str, ...] = ("turns", "choices", "keywords")
FAMILIES: tuple[str, ...] = ("summarization", "qa", "dialogue", "sentiment", "reading")


@dataclass(frozen=True)
class Task:
    """A task's schema. `required[0]` is its primary input: examples sharing it (several questions on
    one passage) belong together, e.g. on the same side of a held-out split."""

    name: str
    family: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def primary(self) -> str:
        return self.required[0]

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("summarization", "summarization", ("text", "summary"), ("title",)),
        Task("qa_extractive", "qa", ("context", "question", "answer"), ("answer_start",)),
        Task("qa_open", "qa", ("question", "answer"), ("context",)),
        Task("qa_multiple_choice", "qa", ("context", "question", "choices", "answer")),
        Task("dialogue_next", "dialogue", ("turns",), ("topic",)),
        Task("dialogue_persona", "dialogue", ("turns", "persona")),
        Task("sentiment_binary", "sentiment", ("text", "label"), labels=("negative", "positive")),
        Task("sentiment_fine", "sentiment", ("text", "label"), labels=("1", "2", "3", "4", "5")),
        Task("reading_title", "reading", ("text", "title")),
        Task("reading_continuation", "reading", ("text", "continuation")),
        Task("reading_fill_blank", "reading", ("text", "answer")),
        Task("reading_connective", "reading", ("premise", "connective", "conclusion")),
        Task("reading_keywords", "reading", ("text", "keywords")),
    )
}


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name is an error listing the known ones."""
    if name not in TASKS:
        raise FieldError("task", f"unknown task {name!r}; expected one of: {', '.join(TASKS)}")
    return TASKS[name]


def check_fields(task_name: str, fields: Mapping[str, Any]) -> None:
    """Raise FieldError (naming `fields.X`) unless `fields` has the task's shape."""
    task = get_task(task_name)
    for name in task.required:
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise FieldError(
                f"fields.{name}", f"missing or empty (task {task_name} needs {', '.join(task.required)})"
            )
    for name in LIST_FIELDS:
        if name in fields and not _strings(fields[name], 2):
            raise FieldError(f"fields.{name}", "expected a list of at least 2 strings")
    for name, value in fields.items():
        if name not in LIST_FIELDS and not isinstance(value, (str, int)):
            raise FieldError(f"fields.{name}", f"expected a string, got {type(value).__name__}")
    if task.labels and str(fields["label"]) not in task.labels:
        raise FieldError("fields.label", f"expected one of {', '.join(task.labels)}, got {fields['label']!r}")
    if task_name == "qa_multiple_choice" and fields["answer"] not in fields["choices"]:
        raise FieldError("fields.answer", "must be one of fields.choices")


def _strings(value: Any, at_least: int) -> bool:
    return isinstance(value, list) and len(value) >= at_least and all(isinstance(v, str) for v in value)
