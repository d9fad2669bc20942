"""Corpus and answer metrics as pure functions over strings, each matching a published scorer; the
pieces they share with training and data synthesis (accuracy, SQuAD/CMRC exact match and F1, ROUGE's
tokens for English and Chinese) are in text_metrics.py.

- `rouge_n`, `rouge_l`, `rouge`: ROUGE-1/2/L as Google's `rouge-score` computes them (`rougeL`, not the
  summary-level `rougeLsum`), over `text_metrics.rouge_tokens` (rouge-score's tokens for English,
  characters or jieba words for Chinese).
- `bleu`: sacrebleu's corpus BLEU (its "zh" tokeniser for Chinese, "13a" otherwise).
- `distinct_n`: the share of distinct n-grams among all the n-grams of a set of generations.
- `parse_choice`: which of a task's options a generated answer names.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from instructgpt.text_metrics import HAN_WIDE, ZhTokens, rouge_tokens

# ------------------------------------------------------------------------------ ROUGE, BLEU, distinct-n


class PRF(NamedTuple):
    """One ROUGE score of one prediction against one reference, each value in [0, 1]."""

    precision: float
    recall: float
    fmeasure: float


ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
_EDGE_MARKS = re.compile(r"^[\W_]+|[\W_]+$")  # spaces, punctuation and symbols around an answer
_IS_HAN = re.compile(f"[{HAN_WIDE}]")


def rouge_n(
    prediction: str, reference: str, n: int, lang: str, zh_tokens: ZhTokens = "char", stem: bool = False
) -> PRF:
    """ROUGE-N: clipped n-gram overlap over the prediction's (precision) and reference's (recall) n-grams."""
    if n < 1:
        raise ValueError(f"ROUGE-N needs n >= 1, not {n}")
    tokens = functools.partial(rouge_tokens, lang=lang, zh_tokens=zh_tokens, stem=stem)
    return _ngram_prf(tokens(prediction), tokens(reference), n)


def rouge_l(
    prediction: str, reference: str, lang: str, zh_tokens: ZhTokens = "char", stem: bool = False
) -> PRF:
    """ROUGE-L: longest common subsequence over the prediction's and reference's lengths (rougeL, one
    sentence: no summary-level split on newlines as rougeLsum does)."""
    tokens = functools.partial(rouge_tokens, lang=lang, zh_tokens=zh_tokens, stem=stem)
    return _lcs_prf(tokens(prediction), tokens(reference))


def rouge(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    lang: str,
    zh_tokens: ZhTokens = "char",
    stem: bool = False,
) -> dict[str, float]:
    """Mean F of rouge1, rouge2 and rougeL over the examples, in [0, 1]. An example with several
    references takes, per key, its best F (rouge-score's `score_multi`). `stem` (English only) needs
    nltk, which rouge-score brings; this package does not depend on it."""
    _check_pairs(predictions, references)
    tokens = functools.partial(rouge_tokens, lang=lang, zh_tokens=zh_tokens, stem=stem)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for prediction, refs in zip(predictions, references, strict=True):
        predicted = tokens(prediction)
        scores = [_rouge_fs(predicted, tokens(ref)) for ref in _as_list(refs)]
        for key in ROUGE_KEYS:
            totals[key] += max(score[key] for score in scores)
    return {key: total / len(predictions) for key, total in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str | Sequence[str]], lang: str) -> float:
    """sacrebleu's corpus BLEU, 0 to 100, with its defaults (exp smoothing, case kept); tokenised "zh"
    for Chinese, "13a" otherwise. Examples may have different numbers of references."""
    from sacrebleu.metrics import BLEU  # a runtime dependency, imported only when BLEU is asked for

    _check_pairs(predictions, references)
    refs = [_as_list(r) for r in references]
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]  # None: no k-th ref
    metric = BLEU(tokenize="zh" if lang == "zh" else "13a")
    return float(metric.corpus_score(list(predictions), streams).score)


def distinct_n(predictions: Sequence[str], n: int, lang: str) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams over all n-grams of all predictions (none crosses
    a prediction's end), 0 when there are none. Chinese tokens are ROUGE's characters; any other
    language's are lowercased whitespace-separated words."""
    if n < 1:
        raise ValueError(f"distinct-n needs n >= 1, not {n}")
    counts: Counter[tuple[str, ...]] = Counter()
    for prediction in predictions:
        tokens = rouge_tokens(prediction, "zh", "char", False) if lang == "zh" else prediction.lower().split()
        counts += _ngrams(tokens, n)
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def _check_pairs(predictions: Sequence[str], references: Sequence[Any]) -> None:
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references are a sequence of strings each, not one string")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("a corpus score of no examples is undefined")


def _as_list(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("every example needs at least one reference")
    return refs


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _prf(overlap: int, predicted: int, reference: int) -> PRF:
    precision, recall = overlap / predicted, overlap / reference
    fmeasure = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return PRF(precision, recall, fmeasure)


def _ngram_prf(predicted: list[str], reference: list[str], n: int) -> PRF:
    pred, ref = _ngrams(predicted, n), _ngrams(reference, n)
    # max(.., 1): rouge-score's convention, so no n-grams on a side scores 0, not a division by zero
    return _prf(sum((pred & ref).values()), max(pred.total(), 1), max(ref.total(), 1))


def _lcs_prf(predicted: list[str], reference: list[str]) -> PRF:
    if not predicted or not reference:
        return PRF(0.0, 0.0, 0.0)
    return _prf(_lcs_subsequence(predicted, reference), len(predicted), len(reference))


def _rouge_fs(predicted: list[str], reference: list[str]) -> dict[str, float]:
    return {
        "rouge1": _ngram_prf(predicted, reference, 1).fmeasure,
        "rouge2": _ngram_prf(predicted, reference, 2).fmeasure,
        "rougeL": _lcs_prf(predicted, reference).fmeasure,
    }


def _lcs_subsequence(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (gaps allowed), one row of the table at a time."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


# ------------------------------------------------------------------------------------------- choices


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Index of the option that generated `text` names, or None when it names none or is ambiguous.

    Both sides are normalised (NFKC, lowercase, whitespace collapsed, punctuation and symbols stripped
    from the ends). An answer equal to one option is that option. Otherwise the option found earliest
    in the answer wins, matched as a whole word or phrase: Latin letters and digits may not continue it
    on either side ("4" is not found in "14"), Han characters may (Chinese marks no word boundaries).
    Of two options found at the same place the longer wins ("4 stars" over "4"); equal ones are a tie.
    Negation is not understood: "not positive" names "positive".
    """
    forms = [_choice_form(option) for option in options]
    if not all(forms):
        raise ValueError(f"an option is empty after normalisation: {list(options)!r}")
    answer = _choice_form(text)
    exact = [i for i, form in enumerate(forms) if form == answer]
    if exact:
        return exact[0] if len(exact) == 1 else None
    found = sorted(
        (start, -len(form), i) for i, form in enumerate(forms) if (start := _find_phrase(answer, form)) >= 0
    )
    if not found or (len(found) > 1 and found[0][:2] == found[1][:2]):
        return None
    return found[0][2]


def _choice_form(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return _EDGE_MARKS.sub("", text)


def _find_phrase(text: str, phrase: str) -> int:
    """Start of the first occurrence of `phrase` in `text` that no word character continues, else -1."""
    start = text.find(phrase)
    while start >= 0:
        end = start + len(phrase)
        glued_before = start > 0 and _is_word(text[start - 1]) and _is_word(text[start])
        glued_after = end < len(text) and _is_word(text[end - 1]) and _is_word(text[end])
        if not (glued_before or glued_after):
            return start
        start = text.find(phrase, start + 1)
    return -1


def _is_word(ch: str) -> bool:
    """A letter or digit that joins its neighbours into one word: anything alphanumeric but Han."""
    return ch.isalnum() and not _IS_HAN.match(ch)
