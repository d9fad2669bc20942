"""Reading and writing records: every file type, line-numbered errors, rejects files, atomic writes.

Readers yield raw dicts tagged with where they came from, or `DataError` values for what could not be
read, so the caller decides per `--on-error` whether to stop or to skip and count. `read_records` adds
format detection and conversion (records.py). Writers write to a temporary file beside the target and
rename it into place on success, so a crash never leaves a half-written file under the real name.

File types (by extension, `.gz` allowed on the line-based ones): `.jsonl/.ndjson`, `.json` (an array of
objects, an object of equal-length arrays, one object, or a single `{"key": [objects]}` wrapper),
`.csv`, `.tsv`, `.parquet`, `.arrow` (Arrow IPC file or stream), `.txt/.text/.md` (one document per
blank-line-separated block, per line, or per file), and a directory saved by `datasets.save_to_disk`.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from instructgpt import records
from instructgpt.records import FieldError, Format, Record

OnError = Literal["fail", "skip"]
TextUnit = Literal["block", "line", "file"]
MAX_LINE_BYTES = 16 * 2**20

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
        readers: dict[str, Callable[[], Iterator[Item]]] = {
            "jsonl": lambda: _read_jsonl(path, max_line_bytes),
            "json": lambda: _read_json(path),
            "csv": lambda: _read_csv(path, ",", max_line_bytes),
            "tsv": lambda: _read_csv(path, "\t", max_line_bytes),
            "text": lambda: _read_text(path, text_unit, max_line_bytes),
            "parquet": lambda: _read_parquet(path),
            "arrow": lambda: _read_arrow(path),
            "dataset": lambda: _read_dataset_dir(path),
        }
        yield from readers[kind]()
    except DataError as err:
        yield err
    except OSError as err:
        yield DataError(path, None, f"cannot read: {err.strerror or err}")


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, str] | DataError]:
    """Decoded lines (numbered from 1, newline kept); over-long or non-UTF-8 lines become errors."""
    seen_any = False
    with _open_binary(path) as f:
        for number in _count_from(1):
            chunk = f.readline(max_line_bytes + 1)
            if not chunk:
                break
            if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
                size = len(chunk) + _skip_rest_of_line(f)
                yield DataError(path, number, f"line is {size} bytes, over the limit of {max_line_bytes}")
                seen_any = True
                continue
            if number == 1 and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            try:
                line = chunk.decode("utf-8")
            except UnicodeDecodeError as err:
                yield DataError(
                    path, number, f"not valid UTF-8 (byte {chunk[err.start]:#04x} at column {err.start + 1})"
                )
                seen_any = True
                continue
            seen_any = seen_any or bool(line.strip())
            yield number, line
    if not seen_any:
        yield DataError(path, None, "file is empty")


def _count_from(start: int) -> Iterator[int]:
    n = start
    while True:
        yield n
        n += 1


def _skip_rest_of_line(f: IO[bytes]) -> int:
    skipped = 0
    while chunk := f.readline(2**20):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _read_jsonl(path: Path, max_line_bytes: int) -> Iterator[Item]:
    for item in _lines(path, max_line_bytes):
        if isinstance(item, DataError):
            yield item
            continue
        number, line = item
        if not line.strip():
            continue
        try:
            data = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as err:
            yield DataError(path, number, f"not valid JSON: {err.msg} (column {err.colno})")
            continue
        yield _as_record(path, number, data)


def _as_record(path: Path, number: int, data: Any, unit: str = "line") -> Item:
    if not isinstance(data, dict):
        return DataError(path, number, f"expected a JSON object, got {type(data).__name__}", unit=unit)
    return RawRecord(str(path), number, data, unit)


def _read_json(path: Path) -> Iterator[Item]:
    """A whole JSON document, loaded at once: use JSON Lines, Parquet or text for inputs beyond RAM."""
    with _open_binary(path) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        yield DataError(path, line, f"not valid UTF-8 (byte {raw[err.start]:#04x})")
        return
    if not text.strip():
        yield DataError(path, None, "file is empty")
        return
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _json_array(path, text, len(text) - len(stripped))
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # a .json file that is really JSON Lines
            yield from _read_jsonl(path, MAX_LINE_BYTES)
            return
        yield DataError(path, err.lineno, f"not valid JSON: {err.msg} (column {err.colno})")
        return
    yield from _json_object(path, data)


def _json_array(path: Path, text: str, start: int) -> Iterator[Item]:
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
        except json.JSONDecodeError as err:
            yield DataError(path, err.lineno, f"not valid JSON: {err.msg} (column {err.colno})")
            return
        yield _as_record(path, line, value)
        line += text.count("\n", nxt, end)
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            yield DataError(path, line, "not valid JSON: expected ',' or ']' after an array element")
            return


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_object(path: Path, data: Any) -> Iterator[Item]:
    """A top-level object: columns of equal length, a one-key wrapper of records, or one record."""
    if not isinstance(data, dict):
        yield DataError(path, 1, f"expected a JSON array or object, got {type(data).__name__}")
        return
    values = list(data.values())
    if len(values) == 1 and isinstance(values[0], list) and all(isinstance(v, dict) for v in values[0]):
        for i, value in enumerate(values[0], 1):
            yield RawRecord(str(path), i, value, unit="record")
        return
    if values and all(isinstance(v, list) for v in values):
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            yield DataError(path, 1, f"columns have different lengths: {sorted(lengths)}")
            return
        keys = list(data)
        for i, row in enumerate(zip(*values, strict=True), 1):
            yield RawRecord(str(path), i, dict(zip(keys, row, strict=True)), unit="record")
        return
    yield RawRecord(str(path), 1, data)


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
    header: list[str] | None = None
    while True:
        feed.row_start = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield DataError(path, feed.last or None, f"not valid CSV: {err}")
            return
        yield from feed.errors
        feed.errors.clear()
        number = feed.row_start or feed.last
        if not row:
            continue
        if header is None:
            header = [h.strip() for h in row]
            if len(set(header)) != len(header) or not all(header):
                yield DataError(path, number, f"header has empty or repeated column names: {header}")
                return
            continue
        if len(row) != len(header):
            yield DataError(
                path, number, f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}"
            )
            continue
        yield RawRecord(str(path), number, dict(zip(header, row, strict=True)))


def _read_text(path: Path, text_unit: TextUnit, max_line_bytes: int) -> Iterator[Item]:
    block: list[str] = []
    start = 0
    for item in _lines(path, max_line_bytes):
        if isinstance(item, DataError):
            yield item
            continue
        number, line = item
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


def _read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        yield from _rows(path, parquet.iter_batches(batch_size=1024))
    except (pa.ArrowException, OSError) as err:
        yield DataError(path, None, f"not a readable Parquet file: {err}")


def _read_arrow(path: Path) -> Iterator[Item]:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            try:
                reader: Any = pa.ipc.open_file(source)
                batches: Iterable[Any] = (reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                source.seek(0)
                batches = pa.ipc.open_stream(source)
            yield from _rows(path, batches)
    except (pa.ArrowException, OSError) as err:
        yield DataError(path, None, f"not a readable Arrow file: {err}")


def _rows(path: Path, batches: Iterable[Any], first: int = 1) -> Iterator[Item]:
    number = first
    for batch in batches:
        for row in batch.to_pylist():
            yield RawRecord(str(path), number, row, unit="row")
            number += 1


def _read_dataset_dir(path: Path) -> Iterator[Item]:
    """A folder written by `datasets.Dataset.save_to_disk`: Arrow stream shards listed in state.json."""
    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        raise DataError(
            path, None, f"is a DatasetDict with splits {', '.join(splits)}; pass one split's folder"
        )
    state = path / "state.json"
    if not state.exists():
        raise DataError(path, None, "is a directory but not a saved Hugging Face dataset (no state.json)")
    try:
        shards = [path / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(state, None, f"not a valid dataset state file: {err}") from err
    for shard in shards:
        yield from _read_arrow(shard)


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


# ---------------------------------------------------------------------------------------------- writers


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JsonlWriter:
    """Streams JSON objects to `path` atomically: nothing appears under `path` until `close()`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_beside(self.path)
        self._file = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def write(self, obj: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._file.close()
        _commit(self._tmp, self.path)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.abort() if exc_type is not None else self.close()


class ArrowWriter:
    """Streams flat records of string fields to an Arrow IPC file atomically; dict fields stored as JSON."""

    def __init__(self, path: str | Path, columns: Iterable[str], batch_rows: int = 1024) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_beside(self.path)
        self._columns = list(columns)
        self._schema = pa.schema([(c, pa.string()) for c in self._columns])
        self._writer = pa.ipc.new_file(str(self._tmp), self._schema)
        self._rows: list[dict[str, Any]] = []
        self._batch_rows = batch_rows
        self.count = 0

    def write(self, obj: Mapping[str, Any]) -> None:
        row = {c: obj.get(c) for c in self._columns}
        self._rows.append(
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for k, v in row.items()}
        )
        self.count += 1
        if len(self._rows) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_batch(pa.RecordBatch.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        _commit(self._tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write all `rows` to `path` atomically; returns how many were written."""
    with JsonlWriter(path) as writer:
        for row in rows:
            writer.write(row)
    return writer.count


def write_json(path: str | Path, data: Any) -> None:
    """Write one JSON document (pretty-printed) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _commit(tmp, path)
