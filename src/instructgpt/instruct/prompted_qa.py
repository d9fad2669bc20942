"""Prompted (flattened) extractive QA parsed back into context, question and answer.

Collections such as P3 and FLAN publish QA as one rendered prompt and its target (`prompt/completion` or
`inputs/targets`), the passage and the question baked into a template. `parse` recognises the passage +
question forms below and returns the three fields; the target loses a trailing end-of-text marker
(`<|endoftext|>`, `</s>`, ...), which is the exporting tokenizer's, not part of the answer.

Forms (the prompt, `Q` the question):
- given_passage: `Given the following passage\\n\\n"PASSAGE",\\n\\nanswer the following question. ...
  \\n\\nQuestion: Q` (AdversarialQA as P3 renders it);
- read_passage: `Read the following passage/text/article ...\\n\\nPASSAGE\\n\\nQuestion: Q`;
- labelled: `Context:` (or Passage, Article, Background, Text) `PASSAGE` then `Question:` (or `Q:`) `Q`;
- labelled_question_first: the same two labels, the question first.
Each may end with an `Answer:` cue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from instructgpt.record_formats import without_end_markers
from instructgpt.records import FieldError

# (prompt field, target field) pairs a prompted record may use.
FIELD_PAIRS = (("prompt", "completion"), ("inputs", "targets"))

_PASSAGE = r"(?:Context|Passage|Article|Background|Text)"
_QUESTION = r"(?:Question|Q)"
_ANSWER_CUE = r"(?:\n+\s*(?:Answer|A)\s*:?)?\s*$"
FORMS: dict[str, re.Pattern[str]] = {
    "given_passage": re.compile(
        r'^\s*Given the following passage\s*\n\s*"(?P<context>.*)",?\s*\n\s*answer the following '
        r"question\.[^\n]*\n+\s*Question:\s*(?P<question>.*?)" + _ANSWER_CUE,
        re.S,
    ),
    "read_passage": re.compile(
        r"^\s*Read the (?:following |given )?(?:passage|text|article|paragraph)[^\n]*\n+"
        r"(?P<context>.*?)\n+\s*" + _QUESTION + r":\s*(?P<question>.*?)" + _ANSWER_CUE,
        re.S,
    ),
    "labelled": re.compile(
        r"^\s*"
        + _PASSAGE
        + r"\s*:\s*(?P<context>.*?)\n+\s*"
        + _QUESTION
        + r"\s*:\s*(?P<question>.*?)"
        + _ANSWER_CUE,
        re.S,
    ),
    "labelled_question_first": re.compile(
        r"^\s*"
        + _QUESTION
        + r"\s*:\s*(?P<question>.*?)\n+\s*"
        + _PASSAGE
        + r"\s*:\s*(?P<context>.*?)"
        + _ANSWER_CUE,
        re.S,
    ),
}


def fields_of(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (prompt, target) field names `raw` has, if any."""
    for prompt, target in FIELD_PAIRS:
        if prompt in raw and target in raw:
            return prompt, target
    return None


def parse(raw: Mapping[str, Any]) -> dict[str, str]:
    """`{context, question, answer}` from a prompted record; FieldError names the field that does not fit."""
    names = fields_of(raw)
    if names is None:
        raise FieldError("prompt", "missing (expected prompt/completion or inputs/targets)")
    prompt, target = (raw.get(n) for n in names)
    for name, value in zip(names, (prompt, target), strict=True):
        if not isinstance(value, str):
            raise FieldError(
                name, "missing" if value is None else f"expected str, got {type(value).__name__}"
            )
    for found in (form.match(prompt) for form in FORMS.values()):
        if found and found["context"].strip() and found["question"].strip():
            answer = without_end_markers(target).strip()
            if not answer:
                raise FieldError(names[1], "is empty (after removing the end-of-text marker)")
            return {"context": found["context"], "question": found["question"].strip(), "answer": answer}
    raise FieldError(
        names[0], f"is not a passage + question prompt of a known form ({', '.join(FORMS)}); see prompted_qa"
    )
