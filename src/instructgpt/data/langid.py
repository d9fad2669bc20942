"""Rule-based language identification for zh / en / ja / ko / ru, fast and with no model to download.

The rule, applied to the text's units (as in `text.units`: a CJK character, or a run of letters of one
script; digits and punctuation are ignored):
- each unit belongs to a script: Han, kana, Hangul, Cyrillic, Latin, or other;
- Han units count as "zh", unless kana make up at least 10% of the Han + kana units, in which case the
  text is Japanese and Han and kana units both count as "ja" (Chinese text may quote a stray kana, such
  as "の", but Japanese prose is rarely under a third kana);
- Hangul → "ko", Cyrillic → "ru", other scripts → "und";
- Latin units count as "en" when there are at most 5 of them (too few to judge) or when they are not the
  largest script (Latin words inside Chinese text are almost always English terms and names). Otherwise
  each candidate language scores the number of its distinctive function words in the text: English wins
  with any hits and at least as many as every other candidate (so terse English such as product
  listings, with few function words, still counts); French, German, Spanish, Italian, Portuguese or Dutch
  win with more hits than English; with no hits at all the Latin units are "und".
`lang` is the code with the most units ("und" when there are none); `share` gives each code's fraction.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

SHORT_LATIN_WORDS = 5
MIN_KANA_SHARE = 0.10

# Words frequent in English and rare as words in French, German, Spanish or Portuguese (hence no "a",
# "an", "as", "do", "in", "on", "was", "will", "has", "he", "no", "so", "die").
_ENGLISH_FUNCTION_WORDS = frozenset(
    """the of and to is are that for it with be by this from or have not but they you we which
    their there been were would could should what when who about into than them these those its can i
    my your our his her she him does did had at if""".split()  # noqa: SIM905 - a word list reads best as text
)
# Distinctive function words of other Latin-script languages, none of them also in the English list.
_OTHER_FUNCTION_WORDS = {
    lang: frozenset(words.split())
    for lang, words in {
        "fr": "le la les des du et est une pour dans qui pas sur avec ce sont nous vous leur",
        "de": "der die das und ist nicht mit ein eine den dem zu auf für sich auch wird",
        "es": "el los las del y es una por para con que se su al pero muy como",
        "it": "il di che è per della con sono gli non una nel alla anche",
        "pt": "os da do em não uma com para que são das dos mas também",
        "nl": "het een van niet met op dat zijn ook voor aan wordt",
    }.items()
}
_SCRIPT_CHARS = {
    "han": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f",
    "kana": "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f",
    "hangul": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
    "cyrillic": "\u0400-\u052f",
    "latin": "A-Za-z\u00c0-\u024f\u1e00-\u1eff",
}
# Han and kana count per character, other scripts per run of letters, as `text.units` does. One regex
# pass per script in C is several times faster than classifying each unit in Python.
_SCRIPT_UNITS = {
    script: re.compile(f"[{chars}]" if script in ("han", "kana") else f"[{chars}]+")
    for script, chars in _SCRIPT_CHARS.items()
}
_OTHER_LETTERS = re.compile(f"[^\\W\\d_{''.join(_SCRIPT_CHARS.values())}]+")


@dataclass(frozen=True)
class LangGuess:
    """The detected language code and the fraction of units per language (largest first)."""

    lang: str
    share: dict[str, float]


def detect_language(text: str) -> LangGuess:
    """Guess the language of `text` ("zh", "en", "ja", "ko", "ru" or "und") by the rule in the module doc."""
    found = {script: pattern.findall(text) for script, pattern in _SCRIPT_UNITS.items()}
    by_script = Counter({script: len(hits) for script, hits in found.items()})
    by_script["other"] = len(_OTHER_LETTERS.findall(text))
    counts = _languages(by_script, [word.lower() for word in found["latin"]])
    total = sum(counts.values())
    if total == 0:
        return LangGuess("und", {})
    share = {lang: n / total for lang, n in counts.most_common()}
    return LangGuess(next(iter(share)), share)


def _languages(by_script: Counter[str], latin_words: list[str]) -> Counter[str]:
    han, kana = by_script["han"], by_script["kana"]
    counts: Counter[str] = Counter()
    if kana and kana >= MIN_KANA_SHARE * (han + kana):
        counts["ja"] = han + kana
    else:
        counts["zh"], counts["und"] = han, kana
    counts["ko"] += by_script["hangul"]
    counts["ru"] += by_script["cyrillic"]
    counts["und"] += by_script["other"]
    latin_is_largest = by_script["latin"] >= max(counts.values(), default=0)
    counts[_latin_language(latin_words, latin_is_largest)] += by_script["latin"]
    return +counts  # drop zero counts


def _latin_language(words: list[str], latin_is_largest: bool) -> str:
    if len(words) <= SHORT_LATIN_WORDS or not latin_is_largest:
        return "en"
    freq = Counter(words)
    english = sum(freq[word] for word in _ENGLISH_FUNCTION_WORDS)
    others = {lang: sum(freq[word] for word in vocab) for lang, vocab in _OTHER_FUNCTION_WORDS.items()}
    best = max(others, key=lambda lang: others[lang])
    if english and english >= others[best]:
        return "en"
    return best if others[best] else "und"
