"""Reading records: every file type, line-numbered errors, rejects files (writers live in writers.py).

Readers yield raw dicts tagged with where they came from, or `DataError` values for what could not be
read, so the caller decides per `--on-error` whether to stop or to skip and count. `read_records` adds
format detection and conversion (records.py).

File types (by extension, `.gz` allowed on the line-based ones): `.jsonl/.ndjson`, `.json` (an array of
objects, an object of equal-length arrays, one object, or a single `{"key": [objects]}` wrapper),
`.csv`, `.tsv`, `.parquet`, `.arrow` (Arrow IPC file or stream), `.txt/.text/.md` (one document per
blank-line-separated block, per line, or per file), and a directory saved by `datasets.save_to_disk`.

No input ends a run with a traceback, and each bad record is one error naming its file and line:
- a UTF-8 byte-order mark opening a file is dropped; CRLF line ends are read as LF;
- a line holding a NUL byte is bad (in a text file it means binary data, or UTF-16 read as UTF-8);
  JSON spells a NUL in a string `\u0000`, which is kept;
- a string with a lone surrogate (JSON `"\ud800"`) is bad, its field named: no UTF-8 file can hold it;
- JSON nested deeper than Python parses, or an integer longer than Python converts, is bad;
- a malformed CSV row is bad, and reading goes on with the next line;
- what cannot be read past (a cut-off or corrupt `.gz`, a JSON document broken midway) keeps the
  records before it and is one error where it happened, saying the rest of the file cannot be read.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any, Literal

from instructgpt import records
from instructgpt.records import FieldError, Format, Record
from instructgpt.writers import ArrowWriter as ArrowWriter
from instructgpt.writers import JsonlWriter
from instructgpt.writers import write_json as write_json
from instructgpt.writers import write_jsonl as write_jsonl

OnError = Literal["fail", "skip"]
TextUnit = Literal["block", "line", "file"]
MAX_LINE_BYTES = 16 * 2**20

_BOM = b"\xef\xbb\xbf"
_ESCAPE = re.compile(r"\\u")
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
_STOPS = "the rest of the file cannot be read"

_LINE_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "text",
               ".text": "text", ".md": "text", ".json": "json"}  # fmt: skip
_FILE_TYPES = {**_LINE_TYPES, ".parquet": "parquet", ".arrow": "arrow"}


class DataError(Exception):
    """Input that cannot be used, located as `file:line: field: what is wrong`."""

    def __init__(self, path: str | Path, line: int | None, message: str, field: str = "", unit: str = "line"):
        self.path, self.line, self.field, self.message, self.unit = str(path), line, field, message, unit
        super().__init__(str(self))

    @property
    def where(self) -> str:
        if self.line is None:
            return self.path
        return f"{self.path}:{self.line}" if self.unit == "line" else f"{self.path}:{self.unit} {self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.field + ': ' if self.field else ''}{self.message}"


@dataclass(frozen=True)
class RawRecord:
    """One record as read: its data and where it came from (`line` is a row number where `unit` says so)."""

    path: str
    line: int
    data: dict[str, Any]
    unit: str = "line"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.unit == "line" else f"{self.path}:{self.unit} {self.line}"


Item = RawRecord | DataError


# ---------------------------------------------------------------------------------------------- readers


def file_type(path: Path) -> str:
    """The reader for `path`: by extension (through `.gz`), or `dataset` for a saved HF dataset folder."""
    if path.is_dir():
        return "dataset"
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    ext = suffixes[0].lower() if suffixes else ""
    kind = (_LINE_TYPES if path.suffix == ".gz" else _FILE_TYPES).get(ext)
    if kind is None:
        known = ", ".join(sorted(_FILE_TYPES))
        raise DataError(
            path,
            None,
            f"unknown file type {''.join(suffixes) or '(no extension)'!r}; expected one of {known}",
        )
    return kind


def iter_raw(
    path: str | Path, text_unit: TextUnit = "block", max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Item]:
    """Raw records of one file, with `DataError`s in place of what could not be read."""
    path = Path(path)
    try:
        kind = file_type(path)
        if not path.exists():
            raise DataError(path, None, "no such file or directory")
        from instructgpt import io_arrow  # here, not at the top: it imports this module

        readers: dict[str, Callable[[], Iterator[Item]]] = {
            "jsonl": lambda: _jsonl_items(path, _lines(path, max_line_bytes)),
            "json": lambda: _read_json(path),
            "csv": lambda: _read_csv(path, ",", max_line_bytes),
            "tsv": lambda: _read_csv(path, "\t", max_line_bytes),
            "text": lambda: _read_text(path, text_unit, max_line_bytes),
            "parquet": lambda: io_arrow.read_parquet(path),
            "arrow": lambda: io_arrow.read_arrow(path),
            "dataset": lambda: io_arrow.read_dataset_dir(path),
        }
        yield from readers[kind]()
    except DataError as err:
        yield err
    except OSError as err:
        yield DataError(path, None, f"cannot read: {err.strerror or err}")


def _open_binary(path: Path) -> gzip.GzipFile | BufferedReader:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _corrupt(path: Path, line: int, err: Exception) -> DataError:
    return DataError(path, line, f"compressed data is truncated or corrupt ({err}); {_STOPS}")


def _lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, str] | DataError]:
    """Decoded lines (numbered from 1, newline kept); over-long, non-UTF-8 or NUL-holding lines become
    errors, and corrupt compression ends the file with one."""
    seen_any = False
    with _open_binary(path) as f:
        for number in itertools.count(1):
            try:
                chunk = f.readline(max_line_bytes + 1)
                over = len(chunk) > max_line_bytes and not chunk.endswith(b"\n")
                size = len(chunk) + _skip_rest_of_line(f) if over else 0
            except _GZIP_ERRORS as err:
                yield _corrupt(path, number, err)
                return
            if not chunk:
                break
            if over:
                item: tuple[int, str] | DataError = DataError(
                    path, number, f"line is {size} bytes, over the limit of {max_line_bytes}"
                )
            else:
                item = _decoded(path, number, chunk[3:] if number == 1 and chunk.startswith(_BOM) else chunk)
            seen_any = seen_any or isinstance(item, DataError) or bool(item[1].strip())
            yield item
    if not seen_any:
        yield DataError(path, None, "file is empty")


def _decoded(path: Path, number: int, chunk: bytes) -> tuple[int, str] | DataError:
    if b"\0" in chunk:
        column = chunk.index(b"\0") + 1
        return DataError(
            path, number, f"contains a NUL byte at column {column} (binary data, or UTF-16 text?)"
        )
    try:
        return number, chunk.decode("utf-8")
    except UnicodeDecodeError as err:
        return DataError(
            path, number, f"not valid UTF-8 (byte {chunk[err.start]:#04x} at column {err.start + 1})"
        )


def _skip_rest_of_line(f: gzip.GzipFile | BufferedReader) -> int:
    skipped = 0
    while chunk := f.readline(2**20):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _jsonl_items(path: Path, lines: Iterable[tuple[int, str] | DataError]) -> Iterator[Item]:
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


def _read_json(path: Path) -> Iterator[Item]:
    """A whole JSON document, loaded at once: use JSON Lines, Parquet or text for inputs beyond RAM.

    Where the bytes break off (corrupt compression, a byte that is not UTF-8), what comes before is
    still read, and the break is one error that ends the file."""
    raw, problem = _read_all(path)
    if raw.startswith(_BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        text = raw[: err.start].decode("utf-8")
        line = text.count("\n") + 1
        if problem is None or line < (problem.line or 0):
            problem = DataError(path, line, f"not valid UTF-8 (byte {raw[err.start]:#04x}); {_STOPS}")
    items = _json_text(path, text)
    yield from items if problem is None else _cut_short(items, problem)


def _read_all(path: Path) -> tuple[bytes, DataError | None]:
    """The file's bytes; of a corrupt `.gz`, those before the corruption and an error saying where."""
    parts = []
    with _open_binary(path) as f:
        try:
            while part := f.read1(2**20):
                parts.append(part)
        except _GZIP_ERRORS as err:
            raw = b"".join(parts)
            return raw, _corrupt(path, raw.count(b"\n") + 1, err)
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
        yield from [last] if last.message.endswith(_STOPS) else [last, problem]


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
            yield from _jsonl_items(path, enumerate(text.split("\n"), 1))
            return
        yield DataError(path, err.lineno, f"{_json_problem(err)}; {_STOPS}")
        return
    except (ValueError, RecursionError) as err:
        yield DataError(path, 1 + text.count("\n", 0, start), f"{_json_problem(err)}; {_STOPS}")
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
            yield DataError(path, where, f"{_json_problem(err)}; {_STOPS}")
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
                f"not valid JSON: expected ',' or ']' after an array element; {_STOPS}",
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


class _LineFeed:
    """Feeds decoded lines to `csv.reader`, remembering the line the current row began on."""

    def __init__(self, lines: Iterator[tuple[int, str] | DataError]) -> None:
        self.lines = lines
        self.errors: list[DataError] = []
        self.row_start: int | None = None
        self.last = 0

    def __iter__(self) -> Iterator[str]:
        for item in self.lines:
            if isinstance(item, DataError):
                self.errors.append(item)
                continue
            self.last = item[0]
            self.row_start = self.row_start or item[0]
            yield item[1]


def _read_csv(path: Path, delimiter: str, max_line_bytes: int) -> Iterator[Item]:
    feed = _LineFeed(_lines(path, max_line_bytes))
    # TSV is usually written without quoting (quotes are literal text, as in GLUE files).
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    csv.field_size_limit(max_line_bytes)
    reader = csv.reader(iter(feed), delimiter=delimiter, quoting=quoting, strict=True)
    yield from _csv_rows(path, reader, feed)
    yield from feed.errors


def _csv_rows(path: Path, reader: Any, feed: _LineFeed) -> Iterator[Item]:
    """Rows as records keyed by the header; a row the CSV parser rejects is one error, and reading goes
    on with the next line (a bad header ends the file: no row can be read without it)."""
    header: list[str] | None = None
    while True:
        feed.row_start = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield from _drain(feed)
            stop = f"; {_STOPS}" if header is None else ""
            yield DataError(path, feed.row_start or feed.last or None, f"not valid CSV: {err}{stop}")
            if header is None:
                return
            continue
        yield from _drain(feed)
        number = feed.row_start or feed.last
        if not row:
            continue
        if header is None:
            header = [h.strip() for h in row]
            if len(set(header)) != len(header) or not all(header):
                yield DataError(
                    path, number, f"header has empty or repeated column names: {header}; {_STOPS}"
                )
                return
            continue
        if len(row) != len(header):
            yield DataError(
                path, number, f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}"
            )
            continue
        yield RawRecord(str(path), number, dict(zip(header, row, strict=True)))


def _drain(feed: _LineFeed) -> Iterator[DataError]:
    yield from feed.errors
    feed.errors.clear()


def _read_text(path: Path, text_unit: TextUnit, max_line_bytes: int) -> Iterator[Item]:
    block: list[str] = []
    start = 0
    for item in _lines(path, max_line_bytes):
        if isinstance(item, DataError):
            yield item
            continue
        number, line = item
        line = line[:-2] + "\n" if line.endswith("\r\n") else line  # CRLF files read as LF
        if text_unit == "line":
            if line.strip():
                yield RawRecord(str(path), number, {"text": line.rstrip("\r\n")})
        elif text_unit == "block" and not line.strip():
            if block:
                yield RawRecord(str(path), start, {"text": "".join(block).strip("\r\n")})
            block = []
        else:
            start = start if block else number
            block.append(line)
    if block and "".join(block).strip():
        yield RawRecord(str(path), start, {"text": "".join(block).strip("\r\n")})


# ------------------------------------------------------------------------------------ error handling


class Rejects:
    """Where bad records go: with `fail` the first one raises; with `skip` each is counted and written."""

    def __init__(self, on_error: OnError, path: Path | None = None) -> None:
        self.on_error = on_error
        self.counts: Counter[str] = Counter()
        self._writer = JsonlWriter(path) if path is not None else None

    def read_error(self, error: DataError) -> None:
        """A record that could not be read or converted."""
        if self.on_error == "fail":
            raise error
        self.counts["read_error"] += 1
        self._write({"where": error.where, "stage": "read", "reason": str(error)})

    def filtered(self, stage: str, where: str, reason: str, record: Mapping[str, Any]) -> None:
        """A record a filter removed on purpose: always counted and written, never an error."""
        self.counts[stage] += 1
        self._write({"where": where, "stage": stage, "reason": reason, "record": dict(record)})

    def _write(self, entry: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.write(entry)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def read_records(
    paths: Iterable[str | Path],
    produces: tuple[type, ...],
    rejects: Rejects,
    fmt: str | None = None,
    rename: Mapping[str, str] | None = None,
    text_unit: TextUnit = "block",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[tuple[RawRecord, Record]]:
    """Records of the wanted types from all `paths`, format detected per file unless `fmt` names it.

    `rename` maps input field names onto record fields (e.g. `{"review": "text"}`) before conversion.
    """
    forced = records.get_format(fmt) if fmt else None
    if forced is not None and forced.produces not in produces:
        wanted = " or ".join(t.__name__ for t in produces)
        raise ValueError(
            f"format {fmt!r} makes {forced.produces.__name__} records; this stage reads {wanted}"
        )
    for path in paths:
        chosen = forced
        for item in iter_raw(path, text_unit, max_line_bytes):
            if isinstance(item, DataError):
                rejects.read_error(item)
                continue
            raw = _renamed(item, rename)
            try:
                chosen = chosen or records.detect_format(raw.data, produces)
                yield raw, _convert(chosen, raw)
            except FieldError as err:
                rejects.read_error(DataError(raw.path, raw.line, err.message, err.field, raw.unit))


def _renamed(item: RawRecord, rename: Mapping[str, str] | None) -> RawRecord:
    if not rename:
        return item
    data = {rename.get(k, k): v for k, v in item.data.items()}
    return RawRecord(item.path, item.line, data, item.unit)


def _convert(fmt: Format, raw: RawRecord) -> Record:
    fallback_id = f"{Path(raw.path).name}:{raw.line}"
    return fmt.convert(raw.data, fallback_id)
