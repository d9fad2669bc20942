"""Evaluation-set decontamination: flag training records that share an n-gram with any evaluation text.

Following GPT-3, a text is contaminated when it contains any `ngram`-unit span of an evaluation text
(units from `text.units`, lower-cased). The default of 13 units is GPT-3's choice for English words;
for Chinese a unit is one character, so 13 characters is a shorter span, and the size is configurable:
`cjk_ngram`, when set, is the span of evaluation texts made mostly of CJK characters (8 words and 13
characters mean about the same amount of text), while `ngram` stays the span of the others. An
evaluation text shorter than its span is registered whole: a training text must then contain all of it
contiguously. Texts shorter than `min_units` are ignored, because labels such as "A", "yes" or "正确"
appear in almost every document and would flag everything (GPT-3 likewise chose its per-dataset n
between 8 and 13 words, never shorter).

Each registered span remembers the evaluation file it came from, so a match names it (`Overlap`). Every
stage decontaminates the same way: `load_decontaminator(options)` builds the index from the
`decontaminate` section of its config (None when no evaluation file is given: nothing is checked), and
`contaminated(index, record, where, rejects)` checks all of one record's texts (`texts_of`), writes a
contaminated record to the rejects file (stage `decontaminate`, the evaluation file and the n-gram in the
reason) and tells the stage to drop it; the stage's report counts them as `decontaminated`. Every string
of an evaluation file is registered; of a training record only its texts are checked, never the fields
that name it (`NAMING_FIELDS`: its id, source file, ...), which repeat across files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from instructgpt.config import Decontamination
from instructgpt.data.text import hash64, units
from instructgpt.io import DataError, Rejects, iter_raw
from instructgpt.records import Comparison, Conversation, Document, Prompt, Record, TaskExample, to_dict

STAGE = "decontaminate"  # the rejects file's `stage` and the counter's name
_SHOWN_CHARS = 80
NAMING_FIELDS = frozenset({"id", "source", "lang", "task", "template", "role", "meta"})
# The characters `text.units` makes one unit each: kana and Han.
_CJK_UNIT = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


class Overlap(NamedTuple):
    """A match: the evaluation file (or source name) a span came from, and the span, shown truncated."""

    eval_file: str
    ngram: str

    @property
    def reason(self) -> str:
        """The rejects file's reason for a record dropped for this overlap."""
        return f"shares an evaluation n-gram with {self.eval_file}: {self.ngram!r}"


class Decontaminator:
    """64-bit hashes of evaluation n-grams (and of whole short evaluation texts), each mapped to the
    evaluation source that registered it first."""

    def __init__(self, ngram: int = 13, min_units: int = 8, cjk_ngram: int = 0) -> None:
        if ngram < 1 or min_units < 1 or cjk_ngram < 0:
            raise ValueError(
                f"ngram and min_units must be >= 1 and cjk_ngram >= 0, got {ngram}, {min_units}, {cjk_ngram}"
            )
        self.ngram = ngram
        self.cjk_ngram = cjk_ngram or ngram
        self.min_units = min_units
        self.sources: list[str] = []  # evaluation sources, in the order first registered
        self._hashes: dict[int, int] = {}  # span hash -> index in `sources`
        # Span lengths to look for in documents: the n-gram sizes plus the length of every short evaluation
        # text. Spans of different lengths never collide in one set: a joined span's unit count is fixed.
        self._lengths: set[int] = set()

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, text: str, source: str = "") -> None:
        """Register an evaluation text of `source`: its n-grams, or the whole text when it is shorter."""
        toks = units(text.lower())
        if len(toks) < self.min_units:
            return
        if source not in self.sources:
            self.sources.append(source)
        index = self.sources.index(source)
        span = min(self.cjk_ngram if _mostly_cjk(toks) else self.ngram, len(toks))
        self._lengths.add(span)
        for i in range(len(toks) - span + 1):
            self._hashes.setdefault(hash64(" ".join(toks[i : i + span])), index)

    def find(self, text: str) -> Overlap | None:
        """The first (in document order) registered span found in `text`, with its source, or None."""
        return next(self._spans(text), None)

    def sources_in(self, record: object) -> dict[str, str]:
        """Every source a record's texts share a span with, each with the first such span."""
        found: dict[str, str] = {}
        for text in texts_of(record):
            for overlap in self._spans(text):
                found.setdefault(overlap.eval_file, overlap.ngram)
        return found

    def _spans(self, text: str) -> Iterator[Overlap]:
        """The registered spans in `text`, in document order (shorter first at one place), shown truncated."""
        if not self._hashes:
            return
        toks = units(text.lower())
        lengths = sorted(self._lengths)
        for i in range(len(toks)):
            for span in lengths:
                if i + span > len(toks):
                    break
                shown = " ".join(toks[i : i + span])
                source = self._hashes.get(hash64(shown))
                if source is not None:
                    if len(shown) > _SHOWN_CHARS:
                        shown = shown[: _SHOWN_CHARS - 3] + "..."
                    yield Overlap(self.sources[source], shown)

    def match(self, text: str) -> str | None:
        """The span `find` shows, or None."""
        found = self.find(text)
        return found.ngram if found is not None else None

    def check(self, record: object) -> Overlap | None:
        """The first overlap in any of a record's texts (`texts_of`), or None."""
        for text in texts_of(record):
            if (found := self.find(text)) is not None:
                return found
        return None


def _mostly_cjk(toks: list[str]) -> bool:
    """Half or more of the units are CJK characters (Chinese or Japanese text)."""
    return 2 * sum(_CJK_UNIT.fullmatch(t) is not None for t in toks) >= len(toks)


def load_decontaminator(options: Decontamination) -> Decontaminator | None:
    """An n-gram index over every string of the evaluation files, each span naming its file; None when
    there is none. Unreadable files are always an error."""
    if not options.eval_files:
        return None
    index = Decontaminator(options.ngram, options.min_units, options.cjk_ngram)
    for path in options.eval_files:
        for item in iter_raw(path, text_unit="line"):
            if isinstance(item, DataError):
                raise item
            for text in strings_in(item.data):
                index.add(text, str(path))
    return index


def contaminated(
    index: Decontaminator | None, record: Record | Mapping[str, Any], where: str, rejects: Rejects
) -> bool:
    """True when `record` shares an n-gram with an evaluation text of `index`: it is then written to the
    rejects file under stage `decontaminate` (eval file and n-gram in the reason) and counted there, and
    the caller drops it. Always False without an index."""
    if index is None:
        return False
    found = index.check(record)
    if found is None:
        return False
    data = record if isinstance(record, Mapping) else to_dict(record)
    rejects.filtered(STAGE, where, found.reason, data)
    return True


@dataclass(frozen=True)
class Removal:
    """Decontamination of the records a stage makes itself (synth): `drops(record)` is `contaminated`
    with the record's id as its place."""

    index: Decontaminator | None
    rejects: Rejects

    def drops(self, record: Conversation) -> bool:
        return contaminated(self.index, record, record.id, self.rejects)


def texts_of(record: object) -> Iterator[str]:
    """The texts of a record that a model trains on or is prompted with: a Document's text, a
    TaskExample's field values, the messages of a Conversation or Prompt, a Comparison's prompt and every
    response; for a raw record (a dict) or a string, every string in it but its names (`texts_in`)."""
    if isinstance(record, Document):
        yield record.text
    elif isinstance(record, TaskExample):
        yield from strings_in(record.fields)
    elif isinstance(record, (Conversation, Prompt)):
        yield from (m.content for m in record.messages)
    elif isinstance(record, Comparison):
        yield from (m.content for m in record.prompt)
        yield from record.responses
    else:
        yield from texts_in(record)


def texts_in(obj: object) -> Iterator[str]:
    """`strings_in`, less the values of the fields that name or describe a record rather than hold its
    text (`id`, `source`, `lang`, `task`, `template`, `role`, `meta`): a file path in `source` is as long
    as a sentence, and the evaluation records made from the same file hold it too."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key not in NAMING_FIELDS:
                yield from texts_in(value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from texts_in(item)
    else:
        yield from strings_in(obj)


def strings_in(obj: object) -> Iterator[str]:
    """Every string value in a raw record, depth first through dicts (values only) and lists/tuples."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from strings_in(value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from strings_in(item)
