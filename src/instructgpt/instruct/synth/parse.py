"""Reading what a generator wrote: numbered lists, labelled fields and yes/no answers, in English or Chinese.

Models format loosely, so every parser here takes what is plainly meant and drops the rest:

- `numbered_items`: `9. …`, `9) …`, `(9) …`, `9、…`, `Task 9: …`, `任务9：…`, with markdown bullets, bold
  or headings around the number, and a leading `Instruction:` label, all accepted. Lines after an item
  line continue it until a blank line; text outside any item (a preamble, a closing remark) is dropped.
- `labelled_fields`: lines starting with a known label (`Input:`, `输出：`, `Q2:` …) open a field that
  runs until the next label; an `Example 3` header only separates.
- `input_output_pairs`, `label_input_pairs`, `question_answer_pairs` pair those fields up; a field
  without its partner is dropped.
- `yes_or_no`: the first yes/no (是/否/不是) in an answer.

Each takes `truncated`: when the generator stopped at its token limit, the last item may be cut short
and is dropped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

_ITEM = re.compile(
    r"""^\s*(?:[-*•>#]+\s*)?(?:\*\*)?                          # bullet, quote or heading; bold
    (?:(?:task|instruction|item|任务|指令)\s*)?\(?(\d{1,4})\s*   # "Task 9", "任务9", "(9"
    (?:[.)、:：\]]|\s-\s)(?:\*\*)?\s*(.*)$                     # "9." "9)" "9、" "9:" "9 - "
    """,
    re.IGNORECASE | re.VERBOSE,
)
_ITEM_LABEL = re.compile(r"^(?:\*\*)?(?:instruction|task|指令|任务)\s*[:：](?:\*\*)?\s*", re.IGNORECASE)
_NONE_INPUT = re.compile(r"^[<(\[]?\s*(?:none|no input|n/?a|null|empty|无|没有|空)\s*[>)\]]?[.。]?$", re.I)

INPUT, OUTPUT, LABEL, QUESTION, ANSWER, EXAMPLE = "input", "output", "label", "question", "answer", "example"
_LABELS = {
    INPUT: r"input|输入",
    OUTPUT: r"output|输出",
    LABEL: r"class\s+label|label|类别|标签",
    QUESTION: r"q(?:uestion)?\s*\d*|问题\s*\d*|问\s*\d*",
    ANSWER: r"a(?:nswer)?\s*\d*|答案\s*\d*|回答\s*\d*|答\s*\d*",
}
_EDGE_BOLD = re.compile(r"^\*\*\s*|\s*\*\*$")
_EXAMPLE = re.compile(
    r"^\s*(?:[-*•#]+\s*)?(?:\*\*)?(?:example|例子?|示例)\s*\d*\s*(?:\*\*)?\s*[:：]?\s*$", re.I
)
_YES_NO = re.compile(r"(\bno\b|不是|否)|(\byes\b|是)", re.IGNORECASE)


@functools.cache
def _field_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    """A line that opens a field with one of `labels`: optional bullet and bold, the label, a colon."""
    names = "|".join(f"(?P<{name}>{_LABELS[name]})" for name in labels)
    return re.compile(
        rf"^\s*(?:[-*•#]+\s*)?(?:\*\*)?(?:{names})\s*(?:\*\*)?\s*[:：](?:\*\*)?\s*(?P<rest>.*)$", re.I
    )


def clean(text: str, collapse: bool = True) -> str:
    """Trim the text, drop markdown bold around lines and quotes around it all; with `collapse`, also
    trim each line and collapse its runs of spaces and tabs (not for inputs, where indentation may count)."""
    lines = [_EDGE_BOLD.sub("", line.strip() if collapse else line.rstrip()) for line in text.splitlines()]
    if collapse:
        lines = [" ".join(line.split()) for line in lines]
    text = "\n".join(lines).strip("\n")
    text = text.strip() if collapse else text.rstrip()
    if len(text) >= 2 and text[0] + text[-1] in ('""', "“”", "''", "「」"):
        text = text[1:-1].strip()
    return text


def numbered_items(text: str, truncated: bool = False) -> list[str]:
    """The items of a numbered list, cleaned, in order (see the module doc)."""
    items: list[list[str]] = []
    open_item = False
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match:
            items.append([_ITEM_LABEL.sub("", match.group(2).strip())])
            open_item = True
        elif not line.strip():
            open_item = False
        elif open_item:
            items[-1].append(line)
    if truncated and items:
        items.pop()
    return [item for item in (clean("\n".join(lines)) for lines in items) if item]


def labelled_fields(text: str, labels: Sequence[str]) -> list[tuple[str, str]]:
    """(label, content) of every field opened by one of `labels`, in order; `example` headers come
    through as separators."""
    pattern = _field_pattern(tuple(labels))
    fields: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if _EXAMPLE.match(line):
            fields.append((EXAMPLE, []))
            continue
        match = pattern.match(line)
        if match:
            label = next(name for name in labels if match.group(name) is not None)
            fields.append((label, [match.group("rest")]))
        elif fields and fields[-1][0] != EXAMPLE:
            fields[-1][1].append(line)
    return [(label, clean("\n".join(lines), collapse=False)) for label, lines in fields]


def _pairs(
    fields: Sequence[tuple[str, str]], first: str, second: str, truncated: bool
) -> list[tuple[str, str]]:
    """(first, second) contents of each `first` field followed by a `second` field."""
    pairs, pending = [], None
    for label, content in fields:
        if label == first:
            pending = content
        elif label == second and pending is not None:
            pairs.append((pending, content))
            pending = None
        elif label == EXAMPLE:
            pending = None
    if truncated and pairs and pending is None:  # the last pair is the one the limit may have cut
        pairs.pop()
    return pairs


def input_output_pairs(text: str, truncated: bool = False) -> list[tuple[str, str]]:
    """(input, output) of each example; an output with no input before it has input "" ("none" too)."""
    fields = labelled_fields(text, (INPUT, OUTPUT))
    completed: list[tuple[str, str]] = []
    for i, (label, content) in enumerate(fields):
        if label == OUTPUT and (i == 0 or fields[i - 1][0] != INPUT):
            completed.append((INPUT, ""))
        completed.append((label, content))
    return [(_input(a), b) for a, b in _pairs(completed, INPUT, OUTPUT, truncated)]


def label_input_pairs(text: str, truncated: bool = False) -> list[tuple[str, str]]:
    """(input, label) of each output-first example: a class label, then an input of that class."""
    return [(_input(b), a) for a, b in _pairs(labelled_fields(text, (LABEL, INPUT)), LABEL, INPUT, truncated)]


def question_answer_pairs(text: str, truncated: bool = False) -> list[tuple[str, str]]:
    """(question, answer) of each `Q1: … A1: …` / `问题1：… 答案1：…` pair."""
    return _pairs(labelled_fields(text, (QUESTION, ANSWER)), QUESTION, ANSWER, truncated)


def yes_or_no(text: str) -> bool | None:
    """True for an answer that first says yes (是), False for no (否, 不是), None when it says neither."""
    match = _YES_NO.search(text)
    return None if match is None else match.group(2) is not None


def _input(text: str) -> str:
    return "" if _NONE_INPUT.match(text.strip()) else text
