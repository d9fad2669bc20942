"""Rule-based mining of reading-comprehension tasks (the `reading` family) from a raw document.

Until a model writes them, the instruction-response pairs `instructgpt corpus` attaches to a document
are mined from the document itself with patterns, as in "Adapting LLMs via Reading Comprehension"
(Cheng et al. 2023): its title, how it goes on, a blanked key word, two clauses joined by a connective,
and the key words of a sentence. This module owns those rules and the zh/en sentence splitter they
share; rendering what they find is the job of the `templates/reading.*.yaml` packs.

Lengths are counted in units (`data.text.units`: a word in English, a character in Chinese). Every rule
draws from the caller's `rng` in a fixed order, so mining is deterministic given its state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any, NamedTuple

from instructgpt.data.segment import remove_stopwords, segment
from instructgpt.data.text import is_han, units
from instructgpt.records import Document, TaskExample

BLANK = "____"
MIN_DOC_UNITS = 30  # a shorter document has too little in it to ask about
_MIN_BODY_UNITS = 20  # the prose under a title
_MIN_CONTEXT_UNITS = 15  # what a continuation follows
_MIN_PART_UNITS = 3  # a premise or conclusion
_MAX_PART_UNITS = {"en": 60, "zh": 100}  # a continuation, premise or conclusion
_SENTENCE_UNITS = {"en": (8, 60), "zh": (12, 100)}  # a sentence worth blanking or keywording
_TITLE_MAX = {"en": 20, "zh": 30}  # words (en) or characters (zh)

# ------------------------------------------------------------------------------------ sentences

_LINE = re.compile(r"[^\n]+")
_EN_END = re.compile(r"""[.!?]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])""")
_ZH_END = re.compile(r"[。！？；!?;]+[”’」』）)]*")
_COMPLETE = re.compile(r"""[.!?。！？；;]["'”’」』）)\]]*$""")
_TITLE_END = re.compile(r"""[.!?。！？；;:：,，、…]["'”’」』）)\]]*$""")  # a title ends with none of these
# Word lists read best as text, hence str.split.
_TITLES = frozenset(
    "mr mrs ms dr prof rev st mt jr sr vs cf al gen col lt sgt capt gov sen rep".split()  # noqa: SIM905
)
# Periods that end an abbreviation only when a number follows ("Fig. 3", "No. 5", "Jan. 12").
_BEFORE_NUMBERS = frozenset(
    "no nos fig figs vol pp p jan feb mar apr jun jul aug sep oct nov dec".split()  # noqa: SIM905
)
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g, i.e, u.s: the final period is the one matched


class _Sentence(NamedTuple):
    start: int
    end: int
    text: str


def split_sentences(text: str, lang: str) -> list[str]:
    """`text`'s sentences, stripped. A line break always ends one (in raw text, lines are headings,
    list items and paragraphs far more often than hard-wrapped prose). "zh": after 。！？； (and !?;),
    with any closing quotes “”「」; other languages: after . ! ? and closing quotes when a capital or a
    digit follows, except after abbreviations (Dr., e.g., U.S., Fig. 3); "3.5" never splits."""
    return [sentence.text for sentence in _sentences(text, lang)]


def _sentences(text: str, lang: str) -> list[_Sentence]:
    cuts = _zh_cuts if lang == "zh" else _en_cuts
    found: list[_Sentence] = []
    for line in _LINE.finditer(text):
        begin = line.start()
        for cut in [*cuts(line.group()), len(line.group())]:
            piece = text[begin : line.start() + cut]
            if piece.strip():
                start = begin + len(piece) - len(piece.lstrip())
                found.append(_Sentence(start, start + len(piece.strip()), piece.strip()))
            begin = line.start() + cut
    return found


def _zh_cuts(line: str) -> Iterator[int]:
    return (match.end() for match in _ZH_END.finditer(line))


def _en_cuts(line: str) -> Iterator[int]:
    for match in _EN_END.finditer(line):
        if match.group() != "." or not _abbreviation(line, match):
            yield match.end()


def _abbreviation(line: str, match: re.Match[str]) -> bool:
    """Whether the period at `match` closes an abbreviation (Dr., e.g., J. K., Fig. 3), not a sentence."""
    word = (line[: match.start()].split() or [""])[-1].lstrip("(\"'“‘").lower()
    number_follows = line[match.end() :].lstrip()[:1].isdigit()
    return (
        word in _TITLES
        or bool(_DOTTED.fullmatch(word))
        or (len(word) == 1 and word.isalpha())
        or (number_follows and word in _BEFORE_NUMBERS)
    )


def _complete(sentence: str) -> bool:
    """Ends with sentence punctuation: prose, not a heading or a list item."""
    return _COMPLETE.search(sentence) is not None


# ------------------------------------------------------------------------------------------ mining


class _Page(NamedTuple):
    """A document being mined: stripped text, rule language, sentences and their sizes in units."""

    text: str
    lang: str
    sentences: list[_Sentence]
    sizes: list[int]


Fields = dict[str, Any]


def mine(doc: Document, rng: random.Random, max_per_task: int = 1) -> list[TaskExample]:
    """The reading tasks found in `doc.text`, at most `max_per_task` of each (a title at most once).

    Examples are ordered by task (as in MINED_TASKS) and get ids `{doc.id}#{task}#{k}`, `source`
    doc.id and `lang` the language whose rules were applied: `doc.lang` when "zh" or "en", else "zh"
    for a Han-majority text and "en" otherwise. A document under MIN_DOC_UNITS units or two sentences
    gives none."""
    if max_per_task < 1:
        raise ValueError(f"max_per_task must be at least 1, got {max_per_task}")
    lang = _rule_language(doc)
    text = doc.text.strip()
    sentences = _sentences(text, lang)
    if len(sentences) < 2 or len(units(text)) < MIN_DOC_UNITS:
        return []
    page = _Page(text, lang, sentences, [len(units(s.text)) for s in sentences])
    return [
        TaskExample(f"{doc.id}#{task}#{k}", task, fields, lang, doc.id)
        for task, rule in _RULES.items()
        for k, fields in enumerate(rule(page, rng, max_per_task))
    ]


def _rule_language(doc: Document) -> str:
    if doc.lang in ("zh", "en"):
        return doc.lang
    found = units(doc.text)
    return "zh" if 2 * sum(map(is_han, found)) > len(found) else "en"


def _title(page: _Page, rng: random.Random, limit: int) -> list[Fields]:
    """The first line as the title of the rest, when it is short, unpunctuated, and prose follows it."""
    head, _, body = page.text.partition("\n")
    head, body = head.strip(), body.strip()
    size = len(head) if page.lang == "zh" else len(units(head))
    title_like = len(units(head)) >= 2 and size <= _TITLE_MAX[page.lang] and not _TITLE_END.search(head)
    prose = any(_complete(s.text) for s in page.sentences if s.start > len(head))
    if not (title_like and prose and len(units(body)) >= _MIN_BODY_UNITS):
        return []
    return [{"text": body, "title": head}]


def _continuation(page: _Page, rng: random.Random, limit: int) -> list[Fields]:
    """Split before a sentence near the middle: the text up to it, and 1-3 sentences from it on."""
    found = []
    for i in _middle_starts(page, rng, limit):
        end = _run_end(page, i, rng.randint(1, 3))
        start = page.sentences[i].start
        found.append({"text": page.text[:start].strip(), "continuation": page.text[start:end]})
    return found


def _middle_starts(page: _Page, rng: random.Random, limit: int) -> list[int]:
    """Up to `limit` sentences a continuation can start with: those starting within a fifth of the
    text's length of its middle, or else the one nearest to it."""
    before = [0, *accumulate(page.sizes)]
    starts = [
        i
        for i, sentence in enumerate(page.sentences)
        if before[i] >= _MIN_CONTEXT_UNITS
        and _complete(sentence.text)
        and page.sizes[i] <= _MAX_PART_UNITS[page.lang]
    ]
    middle, spread = len(page.text) / 2, len(page.text) / 5
    near = [i for i in starts if abs(page.sentences[i].start - middle) <= spread]
    if not near:
        near = sorted(starts, key=lambda i: abs(page.sentences[i].start - middle))[:1]
    return rng.sample(near, min(limit, len(near)))


def _run_end(page: _Page, first: int, count: int) -> int:
    """Where a run of up to `count` complete sentences of one paragraph from `first` ends, bounded."""
    last, total = first, page.sizes[first]
    while last - first + 1 < count and last + 1 < len(page.sentences):
        total += page.sizes[last + 1]
        if total > _MAX_PART_UNITS[page.lang] or not _joined(page, last, last + 1):
            break
        last += 1
    return page.sentences[last].end


def _joined(page: _Page, i: int, j: int) -> bool:
    """Sentence j follows sentence i in the same paragraph, and both are complete sentences."""
    first, second = page.sentences[i], page.sentences[j]
    same_paragraph = "\n" not in page.text[first.end : second.start]
    return same_paragraph and _complete(first.text) and _complete(second.text)


def _fill_blank(page: _Page, rng: random.Random, limit: int) -> list[Fields]:
    """A salient word of a sentence blanked as ____, shown with the sentences beside it."""
    found: list[Fields] = []
    for i in _shuffled_sentences(page, rng):
        words = _salient(page.sentences[i].text, page.lang)
        if not words:
            continue
        word = rng.choice(words)
        if (blanked := _blank(page.sentences[i].text, word)) is None:
            continue
        found.append({"text": _in_context(page, i, blanked), "answer": word})
        if len(found) == limit:
            break
    return found


def _shuffled_sentences(page: _Page, rng: random.Random) -> list[int]:
    low, high = _SENTENCE_UNITS[page.lang]
    order = [
        i
        for i, sentence in enumerate(page.sentences)
        if low <= page.sizes[i] <= high and _complete(sentence.text) and BLANK not in sentence.text
    ]
    rng.shuffle(order)
    return order


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z-]*[A-Za-z]")
_QUOTED = re.compile(r"[“《「]([^“”《》「」]{2,12})[”》」]")
# jieba keeps "这座" (this + classifier) and "很漂亮" (very + adjective) whole; neither is a key word.
_HAN_FILLER = re.compile(r"[这那哪每各某].$|很")
_LONG_WORD = 7  # letters: an English word this long is seldom a function word
# Frequent words that say little about a sentence's content yet are missing from the general stop lists.
_WEAK_WORDS = frozenset(
    word
    for line in (
        "therefore moreover furthermore nevertheless meanwhile instead indeed still already really",
        "another began become became",
        "仍然 依然 开始 进行 目前 如今 现在 因而 从而 而是 还有 来说 一样 大约 几乎",
    )
    for word in line.split()
)


def _salient(sentence: str, lang: str) -> list[str]:
    """Words worth blanking. en: non-initial capitalised words, numbers and long content words;
    zh: content words of two or more characters (jieba), numbers and quoted terms."""
    tokens = segment(sentence, lang)
    content = set(_content(tokens, lang))
    if lang == "zh":
        picks = [t for t in tokens if t in content and (_NUMBER.fullmatch(t) or _han_word(t))]
        return list(dict.fromkeys([*picks, *_QUOTED.findall(sentence)]))
    first = next((i for i, token in enumerate(tokens) if token[0].isalnum()), 0)
    picks = [t for t in tokens[first + 1 :] if t in content and (_NUMBER.fullmatch(t) or _key_en_word(t))]
    return list(dict.fromkeys(picks))


def _content(tokens: list[str], lang: str) -> list[str]:
    return [token for token in remove_stopwords(tokens, lang) if token.lower() not in _WEAK_WORDS]


def _han_word(token: str) -> bool:
    return len(token) >= 2 and all(map(is_han, token)) and not _HAN_FILLER.match(token)


def _key_en_word(token: str) -> bool:
    return bool(_LATIN_WORD.fullmatch(token)) and (token[0].isupper() or len(token) >= _LONG_WORD)


def _blank(sentence: str, word: str) -> str | None:
    """`sentence` with the first whole occurrence of `word` as ____ ("3" not inside "3.5" or "30")."""
    left = r"(?<![A-Za-z0-9])(?<!\d[.,:])" if word[0].isascii() and word[0].isalnum() else ""
    right = r"(?![A-Za-z0-9])(?![.,:]\d)" if word[-1].isascii() and word[-1].isalnum() else ""
    blanked, count = re.subn(left + re.escape(word) + right, BLANK, sentence, count=1)
    return blanked if count else None


def _in_context(page: _Page, i: int, blanked: str) -> str:
    """`blanked` in place of sentence i, with the sentence before and after it in its paragraph."""
    sentences, high = page.sentences, _SENTENCE_UNITS[page.lang][1]
    lo = i - 1 if i > 0 and _joined(page, i - 1, i) and page.sizes[i - 1] <= high else i
    hi = i + 1 if i + 1 < len(sentences) and _joined(page, i, i + 1) and page.sizes[i + 1] <= high else i
    before = page.text[sentences[lo].start : sentences[i].start]
    return before + blanked + page.text[sentences[i].end : sentences[hi].end]


# Connectives after a comma or semicolon inside a sentence, and at the start of one (joining it to the
# sentence before). "since"/"but" need a comma ("since 2010", "nothing but"), however/therefore a
# semicolon (", however," is usually an aside); "because of", "but also" are not clause connectives.
_INFIX = {
    "en": re.compile(
        r",?\s+(?:because(?!\s+of\b)|so that|although)\s+"
        r"|,\s+(?:since|but(?!\s+also\b))\s+"
        r"|[;,]\s+thus,?\s+"
        r"|;\s+(?:however|therefore|as a result),?\s+"
    ),
    "zh": re.compile(r"[，,](?:因此|所以|但是|但|然而|于是|因为|由于)[，,]?"),
}
_INITIAL = {
    "en": re.compile(r"(?:However|Therefore|Thus|As a result|But),?\s+"),
    "zh": re.compile(r"(?:因此|所以|但是|但|然而|于是)[，,]?"),
}
_PAIRED_FIRST = re.compile(r"^(?:因为|由于|虽然|尽管)[，,]?")  # 因为…，所以… keeps only 所以
_CANONICAL = {"但": "但是"}


def _connective(page: _Page, rng: random.Random, limit: int) -> list[Fields]:
    """Premise, connective, conclusion of sentences (or sentence pairs) joined by a connective."""
    found = [fields for i in range(len(page.sentences)) if (fields := _connected(page, i))]
    return rng.sample(found, min(limit, len(found)))


def _connected(page: _Page, i: int) -> Fields | None:
    sentence = page.sentences[i].text
    for match in _INFIX[page.lang].finditer(sentence):
        if fields := _parts(sentence[: match.start()], match.group(), sentence[match.end() :], page.lang):
            return fields
    match = _INITIAL[page.lang].match(sentence)
    if match and i > 0 and _joined(page, i - 1, i):
        return _parts(page.sentences[i - 1].text, match.group(), sentence[match.end() :], page.lang)
    return None


def _parts(before: str, marker: str, after: str, lang: str) -> Fields | None:
    premise = _PAIRED_FIRST.sub("", before.strip()).rstrip(" ,;.，；。")
    conclusion = after.strip()
    sizes = (len(units(premise)), len(units(conclusion)))
    if not all(_MIN_PART_UNITS <= size <= _MAX_PART_UNITS[lang] for size in sizes):
        return None
    connective = ("" if lang == "zh" else " ").join(units(marker)).lower()
    connective = _CANONICAL.get(connective, connective)
    return {"premise": premise, "connective": connective, "conclusion": conclusion}


def _keywords(page: _Page, rng: random.Random, limit: int) -> list[Fields]:
    """3-5 content words of a sentence (its longest, in sentence order), and the sentence."""
    found: list[Fields] = []
    for i in _shuffled_sentences(page, rng):
        words = _content_words(page.sentences[i].text, page.lang)
        if len(words) >= 3:
            count = rng.randint(3, min(5, len(words)))
            longest = sorted(range(len(words)), key=lambda j: -len(words[j]))[:count]
            found.append({"keywords": [words[j] for j in sorted(longest)], "text": page.sentences[i].text})
        if len(found) == limit:
            break
    return found


def _content_words(sentence: str, lang: str) -> list[str]:
    """Distinct non-stop words: Latin words of 3+ letters, and (zh) Han words of 2+ characters."""
    words = [
        token
        for token in _content(segment(sentence, lang), lang)
        if (len(token) >= 3 and _LATIN_WORD.fullmatch(token)) or (lang == "zh" and _han_word(token))
    ]
    distinct: dict[str, str] = {}
    for word in words:
        distinct.setdefault(word.lower(), word)
    return list(distinct.values())


_RULES: dict[str, Callable[[_Page, random.Random, int], list[Fields]]] = {
    "reading_title": _title,
    "reading_continuation": _continuation,
    "reading_fill_blank": _fill_blank,
    "reading_connective": _connective,
    "reading_keywords": _keywords,
}
MINED_TASKS: tuple[str, ...] = tuple(_RULES)
