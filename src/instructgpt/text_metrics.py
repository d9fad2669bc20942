"""Text metrics' building blocks shared by evaluation, task fine-tuning and data synthesis: accuracy, the
extractive-QA exact match and F1, and the tokens ROUGE scores a text by.

- `accuracy`: the share of predictions equal to their reference.
- `squad_em_f1`: extractive-QA exact match and F1 against one or more reference answers, the best over
  the references. English follows the official SQuAD v1.1 script (lowercase; drop ASCII punctuation;
  drop the articles a/an/the; split on whitespace; F1 over the bag of shared tokens). Chinese follows the
  official CMRC 2018 script: lowercase, punctuation and whitespace dropped, every Han character its own
  token while runs of Latin letters and digits stay one token, and F1 from the *longest common
  substring* of the two token sequences (so "北大学京" against "北京大学" scores 0.5, not 1 as a bag
  would). When either side normalises to nothing, F1 is 1 if both do and 0 otherwise (SQuAD v2's
  rule). CMRC's script drops a fixed list of symbols; here every Unicode punctuation character and
  the ASCII symbols are dropped, which agrees on all of that list.
- `rouge_tokens`: English, and every language but Chinese, is tokenised exactly as Google's
  `rouge-score` does (lowercase; every run of characters outside [a-z0-9] separates words, so accented
  and non-Latin letters are dropped; `stem=True` is its Porter stemmer, nltk's, on words longer than 3
  characters). That tokeniser drops every Han character, so Chinese ("zh") is tokenised here instead,
  after NFKC (full-width forms folded) and lowercasing: by default each Han character is one token
  and each run of other letters and digits one token, punctuation and spaces dropped (character ROUGE,
  the usual way Chinese summarisation such as LCSTS is scored; no segmenter, whose dictionary and
  version would change the score); `zh_tokens="jieba"` cuts the Han runs into jieba's words instead.

The ROUGE, BLEU and distinct-n scores built on them are in evaluate/metrics.py.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from instructgpt.data.segment import segment

ZhTokens = Literal["char", "jieba"]
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = frozenset(string.punctuation)
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_ZH_TOKEN = re.compile(f"[{_HAN}]|[^{_HAN}]+")
HAN_WIDE = _HAN + "\U00020000-\U0003134f"  # Han ranges with the supplementary-plane extensions (B to H)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")  # rouge-score's tokenize.NON_ALPHANUM_RE
_VALID_EN = re.compile(r"^[a-z0-9]+$")  # rouge-score's tokenize.VALID_TOKEN_RE
_ZH_RUN = re.compile(f"(?P<han>[{HAN_WIDE}]+)|[^\\W_{HAN_WIDE}]+")


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Fraction of positions where `predictions[i] == references[i]`; both must be non-empty, same length."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("accuracy of no examples is undefined")
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def squad_em_f1(prediction: str, references: Sequence[str], lang: str) -> tuple[float, float]:
    """(exact match, F1), each in [0, 1] and the maximum over `references`; `lang` "zh" scores CMRC-style,
    anything else SQuAD-style."""
    if not references:
        raise ValueError("at least one reference answer is needed")
    tokens = zh_tokens if lang == "zh" else en_tokens
    overlap = _lcs_length if lang == "zh" else _bag_overlap
    predicted = tokens(prediction)
    em = max(float(predicted == tokens(ref)) for ref in references)
    f1 = max(_f1(predicted, tokens(ref), overlap) for ref in references)
    return em, f1


def normalize_en(text: str) -> str:
    """SQuAD's normalize_answer: lowercase, ASCII punctuation and articles removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def en_tokens(text: str) -> list[str]:
    return normalize_en(text).split()


def zh_tokens(text: str) -> list[str]:
    """CMRC 2018 mixed segmentation: Han characters one by one, other runs split on whitespace.

    "在2019年 Apple发布。" → ["在", "2019", "年", "apple", "发", "布"].
    """
    kept = "".join(ch for ch in text.lower() if not _is_punctuation(ch))
    out: list[str] = []
    for piece in _ZH_TOKEN.findall(kept):
        out.extend(piece.split())
    return out


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def _f1(predicted: list[str], reference: list[str], overlap: Any) -> float:
    if not predicted or not reference:
        return float(predicted == reference)
    same = overlap(predicted, reference)
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(reference)
    return 2 * precision * recall / (precision + recall)


def _bag_overlap(a: list[str], b: list[str]) -> int:
    return sum((Counter(a) & Counter(b)).values())


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common contiguous run of tokens (CMRC's `find_lcs`)."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


# ------------------------------------------------------------------------------------------ ROUGE tokens


def rouge_tokens(text: str, lang: str, zh_tokens: ZhTokens, stem: bool) -> list[str]:
    """The tokens ROUGE scores `text` by: Chinese characters or jieba words, English as rouge-score."""
    return _zh_words(text, zh_tokens) if lang == "zh" else _en_rouge_words(text, stem)


def _en_rouge_words(text: str, stem: bool) -> list[str]:
    """rouge-score's `tokenize.tokenize`: lowercase, every non-[a-z0-9] run a separator, optionally
    Porter-stemming the words longer than 3 characters."""
    words = _NON_ALNUM.sub(" ", text.lower()).split()
    if stem:
        stemmer = _porter_stemmer()
        words = [stemmer.stem(w) if len(w) > 3 else w for w in words]
    return [w for w in words if _VALID_EN.match(w)]


def _zh_words(text: str, zh_tokens: ZhTokens) -> list[str]:
    """Chinese ROUGE tokens (module doc): "GPT-4在２０19年。" → ["gpt", "4", "在", "2019", "年"] with
    "char"; with "jieba" each run of Han characters is cut into jieba's words instead."""
    if zh_tokens not in ("char", "jieba"):
        raise ValueError(f"zh_tokens must be 'char' or 'jieba', not {zh_tokens!r}")
    words: list[str] = []
    for match in _ZH_RUN.finditer(unicodedata.normalize("NFKC", text).lower()):
        run = match.group()
        if match.group("han") is None:
            words.append(run)
        elif zh_tokens == "char":
            words.extend(run)
        else:
            words.extend(segment(run, "zh"))
    return words


@functools.cache
def _porter_stemmer() -> Any:
    from nltk.stem import porter  # as rouge-score does; nltk comes with rouge-score, not with this package

    return porter.PorterStemmer()
