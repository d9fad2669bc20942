"""Word segmentation and stop-word removal for classical feature pipelines (bag-of-words, TF-IDF,
keyword statistics). Never use these tokens as language-model training targets: the model's own
tokenizer owns that, and segmentation here drops whitespace and can split differently between versions.

Chinese ("zh", which includes mixed text whose majority is Chinese): runs of Han characters are cut by
jieba; everything else, in every language, follows the English rules below, so URLs, e-mails and
placeholders survive in mixed text (jieba alone would break them apart). English rules: case kept;
URLs, e-mails and placeholders such as <EMAIL> are one token; numbers like 3.14 or 1,000, hyphenated
words and abbreviations (e.g., U.S.) stay together; clitics are split off, Penn Treebank style ("don't"
→ "do", "n't"; "can't" → "ca", "n't"; "it's" → "it", "'s"); each punctuation mark is its own token
("..." is one). In other languages a Han character is one token.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from importlib.resources import files
from types import ModuleType

from instructgpt.data.pii import EMAIL_PATTERN, URL_PATTERN

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD = rf"[^\W_{_HAN}]"  # a letter or digit that is not Han
_APOSTROPHE = "['\u2019]"  # straight or curly
_TOKEN = re.compile(
    rf"""(?P<han>[{_HAN}]+)
    | {URL_PATTERN} | {EMAIL_PATTERN}
    | <[A-Z][A-Z_]*>                                    # placeholders from pii
    | \d+(?:[.,:]\d+)+                                  # 3.14, 1,000, 12:30
    | (?:[A-Za-z]\.){{2,}}                               # e.g., U.S.
    | {_WORD}+(?=(?i:n{_APOSTROPHE}t)(?!{_WORD}))       # "do" of "don't"
    | (?i:n{_APOSTROPHE}t|{_APOSTROPHE}(?:s|re|ve|ll|d|m))(?!{_WORD})  # clitics
    | {_WORD}+(?:-{_WORD}+)*                            # words, numbers, hyphenated words
    | \.{{2,}}|[^\w\s]|_                                # punctuation, one mark a token
    """,
    re.VERBOSE,
)


def segment(text: str, lang: str) -> list[str]:
    """Split `text` into tokens (no whitespace tokens) by the rules in the module doc."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        if match.group("han") is None:
            tokens.append(match.group())
        elif lang == "zh":
            tokens.extend(token for token in _jieba().lcut(match.group()) if not token.isspace())
        else:
            tokens.extend(match.group())
    return tokens


def remove_stopwords(tokens: list[str], lang: str) -> list[str]:
    """Drop stop words and punctuation-only tokens. "zh" uses the Chinese and English lists (mixed text);
    any other language the English list. English words are compared case-insensitively."""
    stop = _stopwords("zh") | _stopwords("en") if lang == "zh" else _stopwords("en")
    return [tok for tok in tokens if any(map(str.isalnum, tok)) and tok.lower() not in stop]


@cache
def _stopwords(lang: str) -> frozenset[str]:
    text = files("instructgpt.data").joinpath("stopwords", f"{lang}.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


@cache
def _jieba() -> ModuleType:
    # Imported here: jieba is optional and loading its dictionary takes about a second, once per process.
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba
