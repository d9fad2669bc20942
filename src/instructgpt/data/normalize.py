"""Text normalization: NFKC, control and invisible characters, HTML, whitespace, Traditional → Simplified.

Each function is pure and does one thing; the prepare pipeline chooses which to apply and in what order
(typically strip_control_chars → strip_html → nfkc → normalize_whitespace).
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import cache
from typing import Any

# Vertical tab, form feed, NEL and the Unicode line/paragraph separators end a line: turning them into
# "\n" (rather than deleting them) keeps the words on either side apart.
_LINE_BREAKS = re.compile("\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# C0/C1 controls (bar \t and \n) and invisible format characters (Unicode category Cf): soft hyphen,
# zero-width space/joiners, bidi marks and embeddings, word joiner, BOM, interlinear annotation, and the
# tag characters (invisible, and a known way to smuggle hidden instructions into text). The visible Cf
# characters (Arabic number signs, Egyptian hieroglyph joiners, ...) are kept.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]"
)

# Only real HTML element names count as tags, so "x<y and z>w" or "a < b" are left alone.
_ELEMENTS = (
    "a|abbr|address|area|article|aside|audio|b|base|bdi|bdo|blockquote|body|br|button|canvas|caption|"
    "center|cite|code|col|colgroup|data|datalist|dd|del|details|dfn|dialog|div|dl|dt|em|embed|fieldset|"
    "figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|kbd|label|"
    "legend|li|link|main|map|mark|meta|meter|nav|noscript|object|ol|optgroup|option|output|p|param|"
    "picture|pre|progress|q|rp|rt|ruby|s|samp|script|section|select|small|source|span|strike|strong|"
    "style|sub|summary|sup|svg|table|tbody|td|template|textarea|tfoot|th|thead|time|title|tr|track|tt|"
    "u|ul|var|video|wbr"
)
# Attributes are name=value pairs or known boolean names, so "if a<b and c>d" is not read as a <b> tag.
_BOOLEAN_ATTRS = (
    "allowfullscreen|async|autofocus|autoplay|checked|controls|defer|disabled|hidden|itemscope|loop|"
    "multiple|muted|nowrap|novalidate|open|readonly|required|selected"
)
_VALUE = r"""(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+)"""
_ATTRS = rf"""(?:\s+(?:[^\s"'<>/=]+\s*=\s*{_VALUE}|(?:{_BOOLEAN_ATTRS})\b))*\s*/?"""
_TAG = re.compile(rf"</?(?:{_ELEMENTS})\b{_ATTRS}>|<!doctype[^<>]*>", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9a-f]{1,6}|[a-z][a-z0-9]{1,31});", re.IGNORECASE)
_DROPPED_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
# Block-level tags, opening as well as closing, end a line so "last<div>end" does not glue two words.
_BLOCK_BREAKS = re.compile(
    r"<br\b[^<>]*>|</?(?:p|div|li|h[1-6]|tr|table|ul|ol|dl|dd|dt|blockquote|pre|section|article|header|"
    rf"footer|aside|nav|main|figure|figcaption|form|details|summary|title|address)\b{_ATTRS}>",
    re.IGNORECASE,
)

_HSPACE = re.compile(r"[^\S\n]+")
_TRAILING_SPACE = re.compile(r" +\n")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def nfkc(text: str) -> str:
    """Unicode NFKC: full-width letters/digits → ASCII, compatibility ligatures and spaces unified."""
    return unicodedata.normalize("NFKC", text)


def strip_control_chars(text: str) -> str:
    """Unify line endings to "\\n" and remove control characters (except \\n, \\t) and invisible ones."""
    return _INVISIBLE.sub("", _LINE_BREAKS.sub("\n", text))


def strip_html(text: str) -> str:
    """Remove HTML markup, keeping the text; block-level tags and <br> become newlines, entities unescaped.

    Text without anything that looks like a tag or an entity is returned unchanged.
    """
    if not _looks_like_html(text):
        return text
    text = _DROPPED_BLOCKS.sub("", text)
    text = _BLOCK_BREAKS.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text)


def _looks_like_html(text: str) -> bool:
    if "<" not in text and "&" not in text:
        return False
    return "<!--" in text or _TAG.search(text) is not None or _ENTITY.search(text) is not None


def normalize_whitespace(text: str) -> str:
    """Collapse runs of horizontal space to one space, drop trailing spaces, keep at most one blank line."""
    text = _HSPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese to Simplified Chinese (OpenCC "t2s"); other text passes through."""
    return _t2s_converter().convert(text)


@cache
def _t2s_converter() -> Any:
    # Imported here: opencc is optional and its dictionaries take a moment to load.
    import opencc

    return opencc.OpenCC("t2s")
