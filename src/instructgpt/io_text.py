"""Line-based readers for io.py: numbered, decoded lines of a plain or `.gz` file (over-long, non-UTF-8
and NUL-holding lines become `DataError`s, corrupt compression ends the file with one), and the CSV/TSV
and plain-text readers built on them.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import zlib
from collections.abc import Iterator
from io import BufferedReader
from pathlib import Path
from typing import Any

from instructgpt.io import DataError, Item, RawRecord, TextUnit

BOM = b"\xef\xbb\xbf"
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
STOPS = "the rest of the file cannot be read"  # ends the message of an error that ends a file


def open_binary(path: Path) -> gzip.GzipFile | BufferedReader:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def corrupt_error(path: Path, line: int, err: Exception) -> DataError:
    return DataError(path, line, f"compressed data is truncated or corrupt ({err}); {STOPS}")


def numbered_lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, str] | DataError]:
    """Decoded lines (numbered from 1, newline kept); over-long, non-UTF-8 or NUL-holding lines become
    errors, and corrupt compression ends the file with one."""
    seen_any = False
    with open_binary(path) as f:
        for number in itertools.count(1):
            try:
                chunk = f.readline(max_line_bytes + 1)
                over = len(chunk) > max_line_bytes and not chunk.endswith(b"\n")
                size = len(chunk) + _skip_rest_of_line(f) if over else 0
            except GZIP_ERRORS as err:
                yield corrupt_error(path, number, err)
                return
            if not chunk:
                break
            if over:
                item: tuple[int, str] | DataError = DataError(
                    path, number, f"line is {size} bytes, over the limit of {max_line_bytes}"
                )
            else:
                item = _decoded(path, number, chunk[3:] if number == 1 and chunk.startswith(BOM) else chunk)
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


def read_csv(path: Path, delimiter: str, max_line_bytes: int) -> Iterator[Item]:
    feed = _LineFeed(numbered_lines(path, max_line_bytes))
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
            stop = f"; {STOPS}" if header is None else ""
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
                yield DataError(path, number, f"header has empty or repeated column names: {header}; {STOPS}")
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


def read_text(path: Path, text_unit: TextUnit, max_line_bytes: int) -> Iterator[Item]:
    block: list[str] = []
    start = 0
    for item in numbered_lines(path, max_line_bytes):
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
