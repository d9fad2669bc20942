"""PII scrubbing: e-mail addresses, phone numbers, ID numbers, URLs and IPv4 addresses → placeholders.

Patterns are written for Chinese and English text: they use ASCII-only boundaries (Chinese characters
count as word characters in `re`, so "联系13812345678" must still match), and numbers that only look
like PII (years, dates, prices, versions, counts, 11-digit numbers that are not mobile numbers) are
left alone. Chinese resident ID numbers are checked (ISO 7064 MOD 11-2 check digit, plausible birth
date); US social security numbers (3-2-4) count as "id_card" too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date

PII_KINDS = ("email", "phone", "id_card", "url", "ip")
PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "id_card": "<ID>", "url": "<URL>", "ip": "<IP>"}

# Shared with `segment`, which keeps URLs and e-mails whole. A URL is http(s):// or www. followed by
# URL characters, and cannot end in punctuation (so the full stop after it stays outside).
URL_PATTERN = (
    r"(?:(?i:https?://)|(?<![A-Za-z0-9@._%+-])(?i:www\.))"
    r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*[A-Za-z0-9/#=&%~_\-]"
)
EMAIL_PATTERN = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,}(?![A-Za-z0-9-])"
)
# A number starts and ends where no letter, digit, "_" or decimal point continues it.
_START = r"(?<![0-9A-Za-z_.])"
_END = r"(?![0-9A-Za-z_]|\.\d)"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # MMDD
_NA_GROUPS = r"\d{3}-\d{3}-|\d{3}\.\d{3}\."  # 555-123- or 555.123.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"

Validator = Callable[[str], bool]


def scrub_pii(text: str, kinds: Sequence[str]) -> tuple[str, Counter[str]]:
    """Replace each PII kind in `kinds` with its placeholder; return the text and counts per kind.

    Kinds are applied in a fixed order (URLs, e-mails, IPs, IDs, phones) so that an e-mail or IP
    inside a URL is counted as the URL when both are asked for.
    """
    unknown = [kind for kind in kinds if kind not in PII_KINDS]
    if unknown:
        raise ValueError(f"unknown PII kind {unknown[0]!r}; expected some of {', '.join(PII_KINDS)}")
    counts: Counter[str] = Counter()
    for kind, detectors in _DETECTORS.items():
        if kind not in kinds:
            continue
        for pattern, valid in detectors:
            text, n = _replace(pattern, valid, PLACEHOLDERS[kind], text)
            counts[kind] += n
    return text, +counts  # drop kinds with no match


def _replace(
    pattern: re.Pattern[str], valid: Validator | None, placeholder: str, text: str
) -> tuple[str, int]:
    n = 0

    def substitute(match: re.Match[str]) -> str:
        nonlocal n
        if valid is not None and not valid(match.group()):
            return match.group()
        n += 1
        return placeholder

    return pattern.sub(substitute, text), n


def _valid_id18(number: str) -> bool:
    """GB 11643: 17 digits weighted, sum mod 11 picks the check character; digits 7-14 are YYYYMMDD."""
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11] == number[17].upper() and _plausible_birth(number[6:14])


def _valid_id15(number: str) -> bool:
    """Legacy 15-digit form: digits 7-12 are YYMMDD in the 1900s; there is no check digit."""
    return _plausible_birth("19" + number[6:12])


def _plausible_birth(yyyymmdd: str) -> bool:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return date(1800, 1, 1) <= born <= date.today()  # the ID pattern allows 18xx-20xx years


def _has_phone_digit_count(number: str) -> bool:
    """E.164 numbers have 8-15 digits with the country code."""
    return 8 <= sum(char.isdigit() for char in number) <= 15


# Applied in this order; see `scrub_pii`.
_DETECTORS: dict[str, tuple[tuple[re.Pattern[str], Validator | None], ...]] = {
    "url": ((re.compile(URL_PATTERN), None),),
    "email": ((re.compile(EMAIL_PATTERN), None),),
    "ip": ((re.compile(rf"{_START}(?:{_OCTET}\.){{3}}{_OCTET}{_END}"), None),),
    "id_card": (
        (re.compile(rf"{_START}[1-9]\d{{5}}(?:18|19|20)\d\d{_DATE}\d{{3}}[0-9Xx]{_END}"), _valid_id18),
        (re.compile(rf"{_START}[1-9]\d{{7}}{_DATE}\d{{3}}{_END}"), _valid_id15),
        # US social security number, 3-2-4, without the never-issued 000 / 666 / 9xx, 00 and 0000 parts.
        (re.compile(rf"{_START}(?!000|666|9)\d{{3}}-(?!00)\d\d-(?!0000)\d{{4}}(?![0-9A-Za-z_]|-\d)"), None),
    ),
    "phone": (
        # International, led by "+": country code then groups, 8-15 digits in all.
        (
            re.compile(rf"(?<![0-9A-Za-z_])\+\d{{1,3}}(?:[ .-]?\(\d{{1,4}}\)|[ .-]?\d{{1,4}}){{2,6}}{_END}"),
            _has_phone_digit_count,
        ),
        # Chinese mobile: 1[3-9] + 9 digits, optionally +86 / 86 and 3-4-4 spacing.
        (re.compile(rf"{_START}(?:(?:\+|00)?86[ -]?)?1[3-9]\d[ -]?\d{{4}}[ -]?\d{{4}}{_END}"), None),
        # Chinese landline: area code 0xx(x) in parentheses or followed by a separator, 7-8 digits.
        (re.compile(rf"{_START}(?:\(0\d{{2,3}}\) ?|0\d{{2,3}}[ -])\d{{3,4}}[ -]?\d{{4}}{_END}"), None),
        # North American 3-3-4 with a consistent separator, optionally led by 1.
        (re.compile(rf"{_START}(?:1[ .-])?(?:\(\d{{3}}\) ?\d{{3}}[ .-]|{_NA_GROUPS})\d{{4}}{_END}"), None),
    ),
}
