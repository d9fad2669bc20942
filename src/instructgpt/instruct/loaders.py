"""Loaders of public dataset layouts: each maps one raw record onto TaskExamples (tasks.py shapes).

A layout is told from a record's fields (the first record of a file decides) or named with
`--layout`; like `record_formats.FORMATS`, the first layout whose `detect` matches wins. One raw record may
give several examples (a SQuAD file or article gives one per question). Layouts:

| name | raw record | task |
|---|---|---|
| task_example | `task, fields` (+ `id, lang, source`) | as given |
| squad | `{data: [{paragraphs: [{context, qas: [{question, answers}]}]}]}` or an article | qa_extractive |
| prompted_qa | `prompt, completion` or `inputs, targets`: passage + question (prompted_qa) | qa_extractive |
| dream | `question, dialogue (str or list), choices, summary (the gold answer)` | qa_multiple_choice |
| dialogue_summary | `dialogue, summary` (SAMSum) | summarization |
| article_highlights | `article, highlights` (CNN/DailyMail) | summarization |
| document_summary | `document, summary` (Gigaword) | summarization |
| abstract_title | `abstract, title` (CSL; the title is the summary) | summarization |
| chatterbot | `category, conversation: [turns]` | dialogue_next |
| text_label | `text/sentence/review/content, label` (0/1, neg/pos, negative/positive) | sentiment_binary |
| eou_dialogue | line `turn __eou__ turn __eou__ …\\ttopic\\tacts\\temotions` (DailyDialog) | dialogue_next |
| lccc | text line, turns tab-separated, characters space-separated (LCCC / CDial-GPT) | dialogue_next |
| text_label_fine | as text_label with ratings 1..5 (named only: "1" also reads as binary) | sentiment_fine |

Every example is checked with `tasks.check_fields` (and, for qa_extractive, that the answer sits at
`answer_start` in the context) before it is yielded, so a bad question rejects only itself. With a
`context_window`, a longer qa_extractive context is then cut around its answer (qa_window.py).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from instructgpt import records
from instructgpt.data.langid import detect_language
from instructgpt.instruct import prompted_qa, tasks
from instructgpt.instruct.qa_window import window_around_answer
from instructgpt.io import DataError, RawRecord, Rejects, TextUnit, iter_raw
from instructgpt.records import FieldError, TaskExample

Convert = Callable[[Mapping[str, Any], str], list[TaskExample]]


@dataclass(frozen=True)
class Layout:
    name: str
    detect: Callable[[Mapping[str, Any]], bool]
    convert: Convert


# ------------------------------------------------------------------------------------------- helpers


def _has(*names: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda raw: all(n in raw for n in names)


def _string(raw: Mapping[str, Any], name: str) -> str:
    """`raw[name]` as a non-empty string, stripped; the error names the field as the file spells it."""
    value = raw.get(name)
    if not isinstance(value, str):
        raise FieldError(name, "missing" if value is None else f"expected str, got {type(value).__name__}")
    if not value.strip():
        raise FieldError(name, "is empty")
    return value.strip()


def _strings(value: Any, name: str) -> list[str]:
    """A list of strings, each stripped, empty ones dropped."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FieldError(name, "expected a list of strings")
    return [v.strip() for v in value if v.strip()]


def _own_id(raw: Mapping[str, Any], fallback: str, where: str = "id") -> str:
    """The record's `id` (a string or an integer), else `fallback` when it has none or a blank one."""
    value = raw.get("id")
    if value is None or (isinstance(value, str) and not value.strip()):
        return fallback
    if not _is_int(value) and not isinstance(value, str):
        raise FieldError(where, f"expected str or int, got {type(value).__name__}")
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one(raw: Mapping[str, Any], fallback_id: str, task: str, fields: dict[str, Any]) -> list[TaskExample]:
    return [TaskExample(_own_id(raw, fallback_id), task, fields)]


# ------------------------------------------------------------------------------------------- layouts


def task_example_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    return [records.task_example_from(raw, fallback_id)]


def _summary_layout(name: str, text_field: str, summary_field: str) -> Layout:
    def convert(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
        fields = {"text": _string(raw, text_field), "summary": _string(raw, summary_field)}
        return _one(raw, fallback_id, "summarization", fields)

    return Layout(name, _has(text_field, summary_field), convert)


def _objects(value: Any, name: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise FieldError(name, "expected a list of objects")
    return value


def _squad_questions(raw: Mapping[str, Any]) -> Iterator[tuple[str, Any, Mapping[str, Any]]]:
    """(where, context, qa) for each question of a whole SQuAD object or of one of its `data` articles."""
    articles = _objects(raw.get("data"), "data") if "data" in raw else [raw]
    for i, article in enumerate(articles):
        where = f"data[{i}].paragraphs" if "data" in raw else "paragraphs"
        for j, paragraph in enumerate(_objects(article.get("paragraphs"), where)):
            for k, qa in enumerate(_objects(paragraph.get("qas"), f"{where}[{j}].qas")):
                yield f"{where}[{j}].qas[{k}]", paragraph.get("context"), qa


def _first_answer(qa: Mapping[str, Any]) -> tuple[Any, Any]:
    """The first answer's (text, answer_start); (None, None) for an unanswerable (SQuAD 2) question."""
    answers = qa.get("answers")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], Mapping):
        return None, None
    return answers[0].get("text"), answers[0].get("answer_start")


def _fixed_offset(context: str, answer: str, start: Any) -> Any:
    """`start` if the answer is there, else its nearest occurrence (five CMRC2018 trial answers are off
    by one). An answer found nowhere keeps its offset, for `check_example` to reject that question alone.
    """
    if _answer_at(context, answer, start):
        return start
    found = [m.start() for m in re.finditer(re.escape(answer), context)]
    if not found:
        return start
    near = start if _is_offset(start) else 0
    return min(found, key=lambda pos: abs(pos - near))


def _is_offset(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _answer_at(context: str, answer: str, start: Any) -> bool:
    return _is_offset(start) and context.startswith(answer, start)


def squad_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    """One qa_extractive example per question; ids from the questions, else `fallback#k` (k from 1)."""
    examples = []
    for k, (where, context, qa) in enumerate(_squad_questions(raw), 1):
        answer, start = _first_answer(qa)
        question = qa.get("question")
        question = question.strip() if isinstance(question, str) else question
        fields = {"context": context, "question": question, "answer": answer}
        if isinstance(context, str) and isinstance(answer, str) and answer:
            start = _fixed_offset(context, answer, start)
        if start is not None:
            fields["answer_start"] = start
        example_id = _own_id(qa, f"{fallback_id}#{k}", f"{where}.id")
        examples.append(TaskExample(example_id, "qa_extractive", fields))
    if not examples:
        raise FieldError("data", "has no questions")
    return examples


def prompted_qa_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    """A prompted passage + question parsed back to qa_extractive fields (no `answer_start`: the answer is
    looked for in the context)."""
    return _one(raw, fallback_id, "qa_extractive", prompted_qa.parse(raw))


def dream_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    dialogue = raw.get("dialogue")
    lines = (
        _strings(dialogue, "dialogue") if isinstance(dialogue, list) else _string(raw, "dialogue").split("\n")
    )
    fields = {
        "context": "\n".join(line.strip() for line in lines if line.strip()),
        "question": _string(raw, "question"),
        "choices": _strings(raw.get("choices"), "choices"),
        "answer": _string(raw, "summary"),
    }
    return _one(raw, fallback_id, "qa_multiple_choice", fields)


def chatterbot_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    turns = _strings(raw.get("conversation"), "conversation")
    return _one(raw, fallback_id, "dialogue_next", {"turns": turns})


_TEXT_FIELDS = ("text", "sentence", "review", "content")
_BINARY_LABELS = {"0": "negative", "1": "positive", "neg": "negative", "pos": "positive",
                  "negative": "negative", "positive": "positive"}  # fmt: skip


def _text_field(raw: Mapping[str, Any]) -> str:
    for name in _TEXT_FIELDS:
        if name in raw:
            return name
    raise FieldError("text", f"missing (expected one of {', '.join(_TEXT_FIELDS)})")


def _label(raw: Mapping[str, Any]) -> str:
    value = raw.get("label")
    if value is None:
        raise FieldError("label", "missing")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldError("label", f"expected a string or an integer, got {type(value).__name__}")
    return str(value).strip().lower()


def text_label_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    label = _label(raw)
    if label not in _BINARY_LABELS:
        hint = "; for ratings 1..5 name the layout text_label_fine" if label in ("2", "3", "4", "5") else ""
        raise FieldError("label", f"expected 0/1, neg/pos or negative/positive, got {label!r}{hint}")
    fields = {"text": _string(raw, _text_field(raw)), "label": _BINARY_LABELS[label]}
    return _one(raw, fallback_id, "sentiment_binary", fields)


def text_label_fine_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    label = _label(raw)
    if label not in ("1", "2", "3", "4", "5"):
        raise FieldError("label", f"expected a rating 1..5, got {label!r}")
    fields = {"text": _string(raw, _text_field(raw)), "label": label}
    return _one(raw, fallback_id, "sentiment_fine", fields)


def _has_text_and_label(raw: Mapping[str, Any]) -> bool:
    return "label" in raw and any(name in raw for name in _TEXT_FIELDS)


def eou_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    """DailyDialog: turns end with `__eou__`; the tab-separated columns after them: topic, acts, emotions."""
    columns = _string(raw, "text").split("\t")
    fields: dict[str, Any] = {"turns": [t.strip() for t in columns[0].split("__eou__") if t.strip()]}
    if len(columns) > 1 and columns[1].strip():
        fields["topic"] = columns[1].strip()
    return _one(raw, fallback_id, "dialogue_next", fields)


def _is_eou(raw: Mapping[str, Any]) -> bool:
    return isinstance(raw.get("text"), str) and "__eou__" in raw["text"]


_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_ANY_HAN = re.compile(f"[{_HAN}]")
_SPACED_HAN = re.compile(f"[{_HAN}] [{_HAN}]")
_ADJACENT_HAN = re.compile(f"[{_HAN}]{{2}}")
_LATIN_OR_DIGIT = re.compile(r"[A-Za-z0-9\u00c0-\u024f]")


def _unspaced(turn: str) -> str:
    """Undo LCCC tokenization: join tokens, keeping one space between Latin words.

    The toy file splits Latin words into letters too ("M T K"), so two one-letter tokens are rejoined;
    a space stays only where both sides are Latin letters or digits and one side is a longer word.
    """
    tokens = turn.split()
    out = tokens[:1]
    for before, token in pairwise(tokens):
        words = bool(_LATIN_OR_DIGIT.fullmatch(before[-1]) and _LATIN_OR_DIGIT.fullmatch(token[0]))
        out.append(" " + token if words and max(len(before), len(token)) > 1 else token)
    return "".join(out)


def lccc_to_examples(raw: Mapping[str, Any], fallback_id: str) -> list[TaskExample]:
    turns = [_unspaced(t) for t in _string(raw, "text").split("\t") if t.strip()]
    return _one(raw, fallback_id, "dialogue_next", {"turns": turns})


def _is_lccc(raw: Mapping[str, Any]) -> bool:
    """Tab-separated turns in which no two Han characters touch and some are spaced apart.

    Untokenized Chinese never spaces out all its characters, so only the character-tokenized form (as
    in CDial-GPT's toy data) matches; word-tokenized LCCC has to be named.
    """
    text = raw.get("text")
    return (
        isinstance(text, str)
        and "\t" in text.strip()
        and bool(_SPACED_HAN.search(text))
        and not _ADJACENT_HAN.search(text)
    )


def _is_squad(raw: Mapping[str, Any]) -> bool:
    data = raw.get("data")
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        return "paragraphs" in data[0]
    return isinstance(raw.get("paragraphs"), list)


def _never(raw: Mapping[str, Any]) -> bool:
    return False


# Order matters: the first whose fields match wins, most specific first (DREAM also has dialogue and
# summary, so it precedes dialogue_summary).
LAYOUTS: tuple[Layout, ...] = (
    Layout("task_example", _has("task", "fields"), task_example_to_examples),
    Layout("squad", _is_squad, squad_to_examples),
    Layout("prompted_qa", lambda raw: prompted_qa.fields_of(raw) is not None, prompted_qa_to_examples),
    Layout("dream", _has("question", "dialogue", "choices", "summary"), dream_to_examples),
    _summary_layout("dialogue_summary", "dialogue", "summary"),
    _summary_layout("article_highlights", "article", "highlights"),
    _summary_layout("document_summary", "document", "summary"),
    _summary_layout("abstract_title", "abstract", "title"),
    Layout("chatterbot", _has("conversation"), chatterbot_to_examples),
    Layout("text_label", _has_text_and_label, text_label_to_examples),
    Layout("eou_dialogue", _is_eou, eou_to_examples),
    Layout("lccc", _is_lccc, lccc_to_examples),
    Layout("text_label_fine", _never, text_label_fine_to_examples),
)
LAYOUT_NAMES: tuple[str, ...] = tuple(layout.name for layout in LAYOUTS)


def get_layout(name: str) -> Layout:
    """The layout called `name`; an unknown name is an error listing the known ones."""
    return records.named(LAYOUTS, name, "layout")


def detect_layout(raw: Mapping[str, Any]) -> Layout:
    """The first layout whose fields `raw` has."""
    for layout in LAYOUTS:
        if layout.detect(raw):
            return layout
    fields = ", ".join(sorted(map(str, raw))) or "none"
    names = ", ".join(LAYOUT_NAMES)
    raise FieldError(
        "<record>", f"cannot tell the layout from its fields ({fields}); name it with --layout ({names})"
    )


# ------------------------------------------------------------------------------------------- reading


def check_example(example: TaskExample) -> None:
    """The field types, `tasks.check_fields`, and for qa_extractive that the answer is in the context (at
    `answer_start`)."""
    _check_types(tasks.get_task(example.task), example.fields)
    tasks.check_fields(example.task, example.fields)
    if example.task == "qa_extractive":
        _check_answer_span(example.fields)


def _check_types(task: tasks.Task, fields: Mapping[str, Any]) -> None:
    """Text fields are strings; a label or an answer may also be an integer (a rating 4, the answer 1999),
    as may a field the task does not know; `answer_start` is an offset. Missing values and the lists are
    left to `check_fields`."""
    for name, value in fields.items():
        if value is None or name in tasks.LIST_FIELDS:
            continue
        if name == "answer_start":
            if not _is_offset(value):
                got = value if _is_int(value) else type(value).__name__
                raise FieldError("fields.answer_start", f"expected a non-negative integer, got {got}")
            continue
        numeric = name in ("label", "answer") or name not in task.fields
        if not (isinstance(value, str) or (numeric and _is_int(value))):
            wanted = "str or int" if numeric else "str"
            raise FieldError(f"fields.{name}", f"expected {wanted}, got {type(value).__name__}")


def _check_answer_span(fields: Mapping[str, Any]) -> None:
    context, answer, start = fields["context"], str(fields["answer"]), fields.get("answer_start")
    if start is None and answer not in context:
        raise FieldError("fields.answer", "is not in fields.context")
    if start is not None and not _answer_at(context, answer, start):
        where = "nor anywhere in it" if answer not in context else f"(it is at {context.find(answer)})"
        raise FieldError(
            "fields.answer_start", f"the answer is not at offset {start} of the context, {where}"
        )


def _main_text(fields: Mapping[str, Any]) -> str:
    for name in ("text", "context", "turns", "question", "premise"):
        value = fields.get(name)
        if value:
            return "\n".join(value) if isinstance(value, list) else str(value)
    return ""


def read_task_examples(
    paths: Iterable[str | Path],
    rejects: Rejects,
    layout: str | None = None,
    lang: str | None = None,
    text_unit: TextUnit = "line",
    context_window: int = 0,
    seed: int = 0,
) -> Iterator[tuple[RawRecord, TaskExample]]:
    """TaskExamples from all `paths`, the layout told per file from its first record unless named (a
    record no layout fits is rejected, and the next one tried).

    Ids come from the record (or its question) or are `{file name}:{line}` (`#k` for the k-th example
    of a record); `source` is the file path; `lang` is the record's own, else `lang`, else detected
    from the example's main text. An unknown `layout` raises ValueError here, before any reading.
    `context_window` > 0 cuts a longer qa_extractive context to that many characters around its answer,
    the answer's place in the window drawn from (`seed`, example id).
    """
    forced = get_layout(layout) if layout else None
    return _read(paths, rejects, forced, lang, text_unit, _windowing(context_window, seed))


def _windowing(window: int, seed: int) -> Callable[[TaskExample], TaskExample]:
    def cut(example: TaskExample) -> TaskExample:
        if not window or example.task != "qa_extractive" or len(example.fields["context"]) <= window:
            return example
        rng = random.Random(f"{seed}:{example.id}")
        return replace(example, fields=window_around_answer(example.fields, window, rng))

    return cut


def _read(
    paths: Iterable[str | Path],
    rejects: Rejects,
    forced: Layout | None,
    lang: str | None,
    text_unit: TextUnit,
    cut: Callable[[TaskExample], TaskExample],
) -> Iterator[tuple[RawRecord, TaskExample]]:
    for path in paths:
        chosen = forced
        for item in iter_raw(path, text_unit):
            if isinstance(item, DataError):
                rejects.read_error(item)
                continue
            try:
                chosen = chosen or detect_layout(item.data)
                examples = chosen.convert(item.data, f"{Path(item.path).name}:{item.line}")
            except FieldError as err:
                rejects.read_error(DataError(item.path, item.line, err.message, err.field, item.unit))
                continue
            for example in _checked(item, examples, rejects, cut):
                yield item, _finished(example, item.path, lang)


def _checked(
    raw: RawRecord, examples: list[TaskExample], rejects: Rejects, cut: Callable[[TaskExample], TaskExample]
) -> Iterator[TaskExample]:
    """The examples that pass `check_example`, `cut` to the context window; a rejected one of several is
    named by its id."""
    for example in examples:
        try:
            check_example(example)
            example = cut(example)
        except FieldError as err:
            message = err.message if len(examples) == 1 else f"{err.message} (example {example.id})"
            rejects.read_error(DataError(raw.path, raw.line, message, err.field, raw.unit))
            continue
        yield example


def _zh_or_en(text: str) -> str:
    """The detected language, kept to the project's two: what the detector calls anything else (a line
    of Japanese in a Chinese corpus, SST-2's lower-cased English with no function word it knows) is zh
    if it has Han characters, else en."""
    guess = detect_language(text).lang
    if guess in ("zh", "en"):
        return guess
    return "zh" if _ANY_HAN.search(text) else "en"


def _finished(example: TaskExample, path: str, lang: str | None) -> TaskExample:
    chosen = example.lang or lang or _zh_or_en(_main_text(example.fields))
    return replace(example, lang=chosen, source=example.source or path)
