"""JSON readers for io.py: JSON Lines, and whole `.json` documents (an array of objects, an object of
equal-length arrays, a one-key wrapper of records, or one object), each record with the line it starts on.
A string holding a lone surrogate is a `DataError` naming its field: no UTF-8 file can hold it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from instructgpt.io import DataError, Item, RawRecord
from instructgpt.io_text import BOM, GZIP_ERRORS, STOPS, corrupt_error, open_binary

_ESCAPE = re.compile(r"\\u")


def jsonl_items(path: Path, lines: Iterable[tuple[int, str] | DataError]) -> Iterator[Item]:
    """One record per non-blank JSON Lines line (numbered lines in, errors passed through)."""
    for item in lines:
        if isinstance(item, DataError):
            yield item
        elif item[1].strip():
            number, line = item
            try:
                data = json.loads(line.rstrip("\r\n"))
            except (ValueError, RecursionError) as err:
                yield DataError(path, number, _json_problem(err))
                continue
            yield _as_record(path, number, data, _has_escapes(line))


def _has_escapes(text: str) -> bool:
    """Whether JSON `text` has `\\u` escapes (looked for only past a backslash: searching for one
    character is many times faster than for two)."""
    return "\\" in text and _ESCAPE.search(text) is not None


def _json_problem(err: ValueError | RecursionError) -> str:
    """What `json.loads` could not read: bad syntax, nesting deeper than Python's stack, or an integer
    longer than Python converts (its message's first part says how long)."""
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON: {err.msg} (column {err.colno})"
    if isinstance(err, RecursionError):
        return "not readable JSON: nested too deeply"
    return f"not readable JSON: {str(err).split(';')[0]}"


def _as_record(path: Path, number: int, data: Any, escapes: bool, unit: str = "line") -> Item:
    """`data` as a record if it is an object holding only real text (`escapes`: the source has `\\u`
    escapes, the one way JSON can spell a lone surrogate, which no UTF-8 file can hold)."""
    if not isinstance(data, dict):
        return DataError(path, number, f"expected a JSON object, got {type(data).__name__}", unit=unit)
    found = _lone_surrogate(data) if escapes and _holds_surrogate(data) else None
    if found is not None:
        field, char = found
        why = "which is not a character (cannot be written as UTF-8)"
        return DataError(path, number, f"has a lone surrogate \\u{ord(char):04x}, {why}", field, unit)
    return RawRecord(str(path), number, data, unit)


def _lone_surrogate(data: dict[str, Any]) -> tuple[str, str] | None:
    """The field (`a.b[2]`) and character of the first lone surrogate in a key or string, if any."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str) and (char := _surrogate_in(value)):
            return where, char
        if isinstance(value, dict):
            names = {key: f"{where}.{key}" if where else key for key in value}
            for key, name in names.items():
                if char := _surrogate_in(key):
                    return name.encode("utf-8", "backslashreplace").decode(), char
            stack.extend((names[key], item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return None


def _holds_surrogate(data: dict[str, Any]) -> bool:
    """Whether any key or string in `data` holds a surrogate: the quick check, naming no field."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _surrogate_in(value):
                return True
        elif isinstance(value, dict):
            stack += value
            stack += value.values()
        elif isinstance(value, list):
            stack += value
    return False


def _surrogate_in(text: str) -> str:
    """The first surrogate in `text`, or ''; ASCII is told at once, other text by encoding it (faster
    than a regular expression)."""
    if text.isascii():
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return text[err.start]
    return ""


def read_json(path: Path) -> Iterator[Item]:
    """A whole JSON document, loaded at once: use JSON Lines, Parquet or text for inputs beyond RAM.

    Where the bytes break off (corrupt compression, a byte that is not UTF-8), what comes before is
    still read, and the break is one error that ends the file."""
    raw, problem = _read_all(path)
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        text = raw[: err.start].decode("utf-8")
        line = text.count("\n") + 1
        if problem is None or line < (problem.line or 0):
            problem = DataError(path, line, f"not valid UTF-8 (byte {raw[err.start]:#04x}); {STOPS}")
    items = _json_text(path, text)
    yield from items if problem is None else _cut_short(items, problem)


def _read_all(path: Path) -> tuple[bytes, DataError | None]:
    """The file's bytes; of a corrupt `.gz`, those before the corruption and an error saying where."""
    parts = []
    with open_binary(path) as f:
        try:
            while part := f.read1(2**20):
                parts.append(part)
        except GZIP_ERRORS as err:
            raw = b"".join(parts)
            return raw, corrupt_error(path, raw.count(b"\n") + 1, err)
    return b"".join(parts), None


def _cut_short(items: Iterator[Item], problem: DataError) -> Iterator[Item]:
    """The items of a document cut short by `problem`, then `problem` itself, which replaces the error
    the cut caused (the last one, on the cut's line or after) unless reading had stopped before it."""
    last: Item | None = None
    for item in items:
        if last is not None:
            yield last
        last = item
    if not isinstance(last, DataError) or last.unit != "line":
        yield from [last, problem] if last is not None else [problem]
    elif last.line is None or last.line >= (problem.line or 0):
        yield problem
    else:
        yield from [last] if last.message.endswith(STOPS) else [last, problem]


def _json_text(path: Path, text: str) -> Iterator[Item]:
    if not text.strip():
        yield DataError(path, None, "file is empty")
        return
    stripped = text.lstrip()
    start = len(text) - len(stripped)
    escapes = _has_escapes(text)
    if stripped.startswith("["):
        yield from _json_array(path, text, start, escapes)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # a .json file that is really JSON Lines
            yield from jsonl_items(path, enumerate(text.split("\n"), 1))
            return
        yield DataError(path, err.lineno, f"{_json_problem(err)}; {STOPS}")
        return
    except (ValueError, RecursionError) as err:
        yield DataError(path, 1 + text.count("\n", 0, start), f"{_json_problem(err)}; {STOPS}")
        return
    yield from _json_object(path, data, escapes)


def _json_array(path: Path, text: str, start: int, escapes: bool) -> Iterator[Item]:
    """Decode a top-level array element by element, so each record knows the line it starts on."""
    decoder = json.JSONDecoder()
    pos, line = start + 1, 1 + text.count("\n", 0, start)
    while True:
        nxt = _skip_ws(text, pos)
        if nxt < len(text) and text[nxt] == "]":
            if text[nxt + 1 :].strip():
                yield DataError(
                    path, line + text.count("\n", pos, nxt), "not valid JSON: extra data after the array"
                )
            return
        line += text.count("\n", pos, nxt)
        try:
            value, end = decoder.raw_decode(text, nxt)
        except (ValueError, RecursionError) as err:
            where = err.lineno if isinstance(err, json.JSONDecodeError) else line
            yield DataError(path, where, f"{_json_problem(err)}; {STOPS}")
            return
        yield _as_record(path, line, value, escapes)
        line += text.count("\n", nxt, end)
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            yield DataError(
                path,
                line + text.count("\n", end, pos),
                f"not valid JSON: expected ',' or ']' after an array element; {STOPS}",
            )
            return


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_object(path: Path, data: Any, escapes: bool) -> Iterator[Item]:
    """A top-level object: columns of equal length, a one-key wrapper of records, or one record."""
    if not isinstance(data, dict):
        yield DataError(path, 1, f"expected a JSON array or object, got {type(data).__name__}")
        return
    values = list(data.values())
    if len(values) == 1 and isinstance(values[0], list) and all(isinstance(v, dict) for v in values[0]):
        for i, value in enumerate(values[0], 1):
            yield _as_record(path, i, value, escapes, unit="record")
        return
    if values and all(isinstance(v, list) for v in values):
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            yield DataError(path, 1, f"columns have different lengths: {sorted(lengths)}")
            return
        keys = list(data)
        for i, row in enumerate(zip(*values, strict=True), 1):
            yield _as_record(path, i, dict(zip(keys, row, strict=True)), escapes, unit="record")
        return
    yield _as_record(path, 1, data, escapes)
