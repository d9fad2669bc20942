"""Every field of a valid record, in every format and instruct layout, replaced in turn by values of other
types (seeded): the record is either accepted and well typed, or refused with a FieldError naming that
field (or, for a field checked against another, its partner) — never any other exception. Read through
io, each bad record is one counted reject located as `file:line: field`."""

import contextlib
import copy
import json
import random
import re

import pytest

from instructgpt import records
from instructgpt.instruct import tasks
from instructgpt.instruct.loaders import LAYOUT_NAMES, check_example, get_layout, read_task_examples
from instructgpt.io import DataError, Rejects, read_records
from instructgpt.records import (
    ROLES,
    Comparison,
    Conversation,
    Document,
    FieldError,
    Message,
    Prompt,
    TaskExample,
)

SEED = 13
FIXED = [0, 7, -1, 10**20, 1.5, float("nan"), float("inf"), True, False, None, "", " ", "x", "user",
         "assistant", [], [1], ["a", "b"], [None], [[None]], {}, {"a": 1},
         {"role": "user", "content": "x"}, [{"a": [None]}]]  # fmt: skip


def random_value(rng: random.Random, depth: int = 0):
    """A random JSON-like value, nested up to three deep."""
    kind = rng.choice(
        ["int", "float", "bool", "none", "str", "list", "dict"] if depth < 3 else ["int", "str"]
    )
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {rng.choice(["a", "role", "content", "from", "value"]): random_value(rng, depth + 1)}
    scalars = {"int": rng.randint(-5, 5), "float": rng.uniform(-2, 2), "bool": rng.random() < 0.5,
               "none": None, "str": rng.choice(["", "q", "\n\nHuman: x", "0"])}  # fmt: skip
    return scalars[kind]


def wrong_values(path):
    rng = random.Random(f"{SEED}:{path}")
    return FIXED + [random_value(rng) for _ in range(6)]


def field_paths(value, prefix=()):
    """Every place in a nested record: keys of objects and indices of lists, containers included."""
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield (*prefix, key)
        yield from field_paths(child, (*prefix, key))


def replaced(raw, path, value):
    out = copy.deepcopy(raw)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def mutations(raw):
    for path in field_paths(raw):
        for value in wrong_values(path):
            yield path, value, replaced(raw, path, value)


def names(path_or_field) -> list[str]:
    if isinstance(path_or_field, str):
        return re.findall(r"[^.\[\]]+", path_or_field)
    return [str(key) for key in path_or_field]


def names_field(err: FieldError, path, partners) -> bool:
    """The error's field is the replaced one, one inside it or one holding it, or a named partner."""
    got, want = names(err.field), names(path)
    n = min(len(got), len(want))
    if got[:n] == want[:n]:
        return True
    allowed = [p for key in want for p in partners.get(key, ())]
    return any(got[: len(names(p))] == names(p) for p in allowed)


# ------------------------------------------------------------------------------- records and formats

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"}]  # fmt: skip
HH_C = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Fruit?\n\nAssistant: Apple."
HH_R = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Fruit?\n\nAssistant: No."
PAIR = {"chosen": ("rejected",), "rejected": ("chosen",)}

FORMAT_CASES = {
    "document": ({"id": "d", "text": "t", "lang": "en", "source": "s", "meta": {"k": [1]}}, {}),
    "task_example": (
        {"id": 3, "task": "qa_open", "fields": {"question": "q", "answer": "a"}, "lang": "en", "source": "s"},
        {},
    ),
    "conversation": ({"id": "c", "messages": MSGS, "task": "t", "template": "x", "lang": "en"}, {}),
    "openai": ({"messages": MSGS, "source": "s"}, {}),
    "prompt": ({"id": "p", "messages": MSGS[:2], "source": "s"}, {}),
    "comparison": (
        {"id": "k", "prompt": MSGS[:2], "responses": ["a", "b", "c"], "ranking": [2, 0, 1], "source": "s"},
        {"responses": ("ranking",)},
    ),
    "alpaca": (
        {"instruction": "i", "input": "n", "output": "o", "system": "s", "history": [["q", "a"]], "id": "a"},
        {},
    ),
    "sharegpt": (
        {
            "system": "s",
            "source": "x",
            "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        },
        {},
    ),
    "sharegpt_pairs": (
        {
            "conversations": [{"from": "human", "value": "q"}],
            "chosen": {"from": "gpt", "value": "c"},
            "rejected": {"from": "gpt", "value": "r"},
            "source": "x",
        },
        PAIR,
    ),
    "prompt_completion": ({"prompt": "p", "completion": "c", "source": "s", "id": "x"}, {}),
    "chosen_rejected": ({"prompt": "p", "chosen": "c", "rejected": "r", "source": "s"}, PAIR),
    "hh": ({"chosen": HH_C, "rejected": HH_R, "id": 4}, PAIR),
}
TURNS = [*MSGS[1:], {"role": "user", "content": "u2"}]
MESSAGE_PAIR = {
    "prompt": "p",
    "chosen": [*TURNS, {"role": "assistant", "content": "c"}],
    "rejected": [*TURNS, {"role": "assistant", "content": "r"}],
}
CASES = [(name, raw, partners) for name, (raw, partners) in FORMAT_CASES.items()]
CASES += [
    ("chosen_rejected", MESSAGE_PAIR, PAIR | {"prompt": ("chosen",)}),
    ("chosen_rejected", {"prompt": MSGS[:2], "chosen": [MSGS[2]], "rejected": [MSGS[2]]}, PAIR),
    ("comparison", {"prompt": MSGS[1:2], "responses": ["a", "b"], "ranking": [0, 1]}, {}),
]


def assert_messages(messages):
    assert messages and all(isinstance(m, Message) for m in messages)
    assert all(m.role in ROLES and isinstance(m.content, str) for m in messages)


def assert_well_typed(record):
    assert isinstance(record.id, str) and record.id
    for name in ("lang", "source", "task", "template", "text"):
        assert isinstance(getattr(record, name, ""), str)
    if isinstance(record, Document):
        assert isinstance(record.meta, dict)
    if isinstance(record, TaskExample):
        assert record.task.strip() and isinstance(record.fields, dict)
    if isinstance(record, (Conversation, Prompt)):
        assert_messages(record.messages)
    if isinstance(record, Comparison):
        assert_messages(record.prompt)
        assert len(record.responses) >= 2 and all(isinstance(r, str) for r in record.responses)
        assert all(type(r) is int for r in record.ranking)
        assert sorted(record.ranking) == list(range(len(record.responses)))


@pytest.mark.parametrize(("name", "raw", "partners"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_format_fields_of_wrong_types(name, raw, partners):
    fmt = records.get_format(name)
    assert_well_typed(fmt.convert(raw, "f.jsonl:1"))  # the base record is valid
    for path, value, bad in mutations(raw):
        try:
            record = fmt.convert(bad, "f.jsonl:1")
        except FieldError as err:
            assert names_field(err, path, partners), (path, value, str(err))
            continue
        assert isinstance(record, fmt.produces), (path, value)
        assert_well_typed(record)


@pytest.mark.parametrize("name", sorted({c[0] for c in CASES}))
def test_detected_formats_never_crash(name):
    """Detection may pick another format for a broken record; it still ends in a record or a FieldError."""
    for _, raw, _ in (c for c in CASES if c[0] == name):
        for _, _, bad in mutations(raw):
            with contextlib.suppress(FieldError):
                assert_well_typed(records.detect_format(bad).convert(bad, "f.jsonl:1"))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(FORMAT_CASES))
def test_bad_records_through_io_are_counted_rejects(tmp_path, name):
    raw, _ = FORMAT_CASES[name]
    path = write_jsonl(tmp_path / "in.jsonl", [bad for _, _, bad in mutations(raw)])
    lines = len(path.read_text().splitlines())
    fmt = records.get_format(name)
    rejects = Rejects("skip", tmp_path / "rejects.jsonl")
    kept = list(read_records([path], (fmt.produces,), rejects, name))
    rejects.close()
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(kept) + rejects.counts["read_error"] == lines and len(reasons) == rejects.counts["read_error"]
    assert all(re.match(rf"{re.escape(str(path))}:\d+: [\w.\[\]<>]+: ", r) for r in reasons), reasons[:3]
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:\d+: "):
        list(read_records([path], (fmt.produces,), Rejects("fail"), name))


# -------------------------------------------------------------------------------- instruct loaders

CONTEXT = "Paris is the capital of France."
TASK_FIELDS = {
    "summarization": {"text": "long text", "summary": "short", "title": "t"},
    "qa_extractive": {"context": CONTEXT, "question": "Capital?", "answer": "Paris", "answer_start": 0},
    "qa_open": {"question": "q", "answer": "a", "context": "c"},
    "qa_multiple_choice": {"context": "c", "question": "q", "choices": ["x", "y"], "answer": "y"},
    "dialogue_next": {"turns": ["a", "b"], "topic": "t"},
    "dialogue_persona": {"turns": ["a", "b"], "persona": "I am."},
    "sentiment_binary": {"text": "good", "label": "positive"},
    "sentiment_fine": {"text": "ok", "label": 4},
    "reading_title": {"text": "t", "title": "x"},
    "reading_continuation": {"text": "t", "continuation": "c"},
    "reading_fill_blank": {"text": "a ____ c", "answer": "b"},
    "reading_connective": {"premise": "p", "connective": "because", "conclusion": "c"},
    "reading_keywords": {"text": "t", "keywords": ["a", "b"]},
}
SQUAD_ALIASES = {"context": ("fields.context", "fields.answer", "fields.answer_start"),
                 "question": ("fields.question",), "answers": ("fields.answer", "fields.answer_start"),
                 "text": ("fields.answer", "fields.answer_start"),
                 "answer_start": ("fields.answer_start",), "qas": ("fields",),
                 "paragraphs": ("fields",)}  # fmt: skip
CHECKED_TOGETHER = {"context": ("fields.answer", "fields.answer_start"), "answer": ("fields.answer_start",),
                    "choices": ("fields.answer",)}  # fmt: skip
LAYOUT_CASES = [
    ("task_example", {"id": "t", "task": task, "fields": fields, "lang": "en"}, CHECKED_TOGETHER)
    for task, fields in TASK_FIELDS.items()
]
LAYOUT_CASES += [
    ("squad", {"data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "q1", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]}]}]}]},
     SQUAD_ALIASES),
    ("dream", {"question": "Q?", "dialogue": ["M: a", "W: b"], "choices": ["x", "y"], "summary": "y"},
     {"dialogue": ("fields.context",), "choices": ("fields.choices", "fields.answer"),
      "summary": ("fields.answer",), "question": ("fields.question",)}),
    ("dream", {"question": "Q?", "dialogue": "M: a\nW: b", "choices": ["x", "y"], "summary": "x"},
     {"dialogue": ("fields.context",), "choices": ("fields.choices", "fields.answer"),
      "summary": ("fields.answer",)}),
    ("dialogue_summary", {"id": "d", "dialogue": "A: hi", "summary": "greet"}, {}),
    ("article_highlights", {"article": "news", "highlights": "n"}, {}),
    ("document_summary", {"document": "doc", "summary": "d"}, {}),
    ("abstract_title", {"abstract": "abs", "title": "t", "keyword": ["k"]}, {}),
    ("chatterbot", {"category": "c", "conversation": ["a", "b"]}, {"conversation": ("fields.turns",)}),
    ("text_label", {"text": "good", "label": 1}, {}),
    ("text_label_fine", {"review": "fine", "label": "4"}, {}),
    ("eou_dialogue", {"text": "a __eou__ b __eou__\t1"}, {"text": ("fields.turns",)}),
    ("lccc", {"text": "小 红\t好 的"}, {"text": ("fields.turns",)}),
    ("prompted_qa", {"prompt": "Context: Paris is the capital.\nQuestion: Capital?", "completion": "Paris"},
     {"prompt": ("fields.context", "fields.question"), "completion": ("fields.answer",)}),
]  # fmt: skip


def assert_well_formed(example):
    assert isinstance(example, TaskExample) and isinstance(example.id, str) and example.id
    task = tasks.get_task(example.task)
    for name, value in example.fields.items():
        if name in tasks.LIST_FIELDS:
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif name == "answer_start":
            answer = str(example.fields["answer"])
            assert type(value) is int and example.fields["context"].startswith(answer, value)
        elif name in ("label", "answer") or name not in task.fields:
            assert isinstance(value, str) or type(value) is int
        else:
            assert isinstance(value, str)


def loaded(layout, raw):
    """What `read_task_examples` does with one record: convert, then check each example."""
    examples = layout.convert(raw, "f.jsonl:1")
    for example in examples:
        check_example(example)
    return examples


def test_every_layout_and_task_is_fuzzed():
    assert {c[0] for c in LAYOUT_CASES} == set(LAYOUT_NAMES)
    assert {c[1]["task"] for c in LAYOUT_CASES if c[0] == "task_example"} == set(tasks.TASKS)


@pytest.mark.parametrize(
    ("name", "raw", "aliases"), LAYOUT_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYOUT_CASES)]
)
def test_layout_fields_of_wrong_types(name, raw, aliases):
    layout = get_layout(name)
    assert all(assert_well_formed(ex) is None for ex in loaded(layout, raw))  # the base record is valid
    for path, value, bad in mutations(raw):
        try:
            examples = loaded(layout, bad)
        except FieldError as err:
            assert names_field(err, path, aliases), (path, value, str(err))
            continue
        for example in examples:
            assert_well_formed(example)


@pytest.mark.parametrize("name", ["task_example", "squad", "dream", "text_label", "eou_dialogue"])
def test_bad_examples_through_the_instruct_reader_are_counted_rejects(tmp_path, name):
    cases = [raw for n, raw, _ in LAYOUT_CASES if n == name]
    rows = [bad for raw in cases for _, _, bad in mutations(raw)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    rejects = Rejects("skip", tmp_path / "rejects.jsonl")
    lines = {raw.line for raw, _ in read_task_examples([path], rejects, layout=name, lang="en")}
    rejects.close()
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(lines) + rejects.counts["read_error"] == len(rows)  # each record: one example or one reject
    assert all(re.match(rf"{re.escape(str(path))}:\d+: [\w.\[\]<>]+: ", r) for r in reasons), reasons[:3]
