"""Reading records: every file type, line-numbered errors, rejects files (writers live in writers.py).
The readers of each file type are io_text.py (lines, CSV, plain text), io_json.py and io_arrow.py.

Readers yield raw dicts tagged with where they came from, or `DataError` values for what could not be
read, so the caller decides per `--on-error` whether to stop or to skip and count. `read_records` adds
format detection and conversion (records.py), `read_typed` the same for one record type.

File types (by extension, `.gz` allowed on the line-based ones): `.jsonl/.ndjson`, `.json` (an array of
objects, an object of equal-length arrays, one object, or a single `{"key": [objects]}` wrapper),
`.csv`, `.tsv`, `.parquet`, `.arrow` (Arrow IPC file or stream), `.txt/.text/.md` (one document per
blank-line-separated block, per line, or per file), and a directory saved by `datasets.save_to_disk`.
Beside paths, an input may be a spec read through 🤗 datasets, `hf:tatsu-lab/alpaca?split=train`, or
a path with options, `saved_dict?split=train` (io_hub.py).

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

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from instructgpt import records
from instructgpt.record_formats import strip_end_markers
from instructgpt.records import FieldError, Format, Record
from instructgpt.writers import ArrowWriter as ArrowWriter
from instructgpt.writers import JsonlWriter
from instructgpt.writers import write_json as write_json
from instructgpt.writers import write_jsonl as write_jsonl

OnError = Literal["fail", "skip"]
TextUnit = Literal["block", "line", "file"]
MAX_LINE_BYTES = 16 * 2**20
R = TypeVar("R", bound=Record)

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
    path: str | Path,
    text_unit: TextUnit = "block",
    max_line_bytes: int = MAX_LINE_BYTES,
    stream: bool = False,
) -> Iterator[Item]:
    """Raw records of one input, with `DataError`s in place of what could not be read. An input is a
    path or a spec (`hf:NAME?split=...`, `PATH?split=...`: io_hub.py); `stream` makes `hf:` datasets
    stream by default instead of loading into the cache first."""
    from instructgpt import io_hub  # here, not at the top: it imports this module's types

    if io_hub.is_spec(str(path)):
        try:
            spec = io_hub.parse(str(path))
            yield from io_hub.read(spec, stream, lambda p: iter_raw(p, text_unit, max_line_bytes))
        except DataError as err:
            yield err
        return
    path = Path(path)
    try:
        kind = file_type(path)
        if not path.exists():
            raise DataError(path, None, "no such file or directory")
        # here, not at the top: the readers import this module's types
        from instructgpt import io_arrow
        from instructgpt.io_json import jsonl_items, read_json
        from instructgpt.io_text import numbered_lines, read_csv, read_text

        readers: dict[str, Callable[[], Iterator[Item]]] = {
            "jsonl": lambda: jsonl_items(path, numbered_lines(path, max_line_bytes)),
            "json": lambda: read_json(path),
            "csv": lambda: read_csv(path, ",", max_line_bytes),
            "tsv": lambda: read_csv(path, "\t", max_line_bytes),
            "text": lambda: read_text(path, text_unit, max_line_bytes),
            "parquet": lambda: io_arrow.read_parquet(path),
            "arrow": lambda: io_arrow.read_arrow(path),
            "dataset": lambda: io_arrow.read_dataset_dir(path),
        }
        yield from readers[kind]()
    except DataError as err:
        yield err
    except OSError as err:
        yield DataError(path, None, f"cannot read: {err.strerror or err}")


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
    stream: bool = False,
) -> Iterator[tuple[RawRecord, Record]]:
    """Records of the wanted types from all `paths` (files or specs, see `iter_raw`), format detected
    per input unless `fmt` names it.

    `rename` maps input field names onto record fields (e.g. `{"review": "text"}`) before conversion.
    End-of-text markers closing an answer (`<|endoftext|>`, `</s>`, ...) are cut off and counted in
    `rejects.counts["stripped_end_marker"]` (record_formats.strip_end_markers).
    """
    forced = records.get_format(fmt) if fmt else None
    if forced is not None and forced.produces not in produces:
        wanted = " or ".join(t.__name__ for t in produces)
        raise ValueError(
            f"format {fmt!r} makes {forced.produces.__name__} records; this stage reads {wanted}"
        )
    for path in paths:
        chosen = forced
        for item in iter_raw(path, text_unit, max_line_bytes, stream):
            if isinstance(item, DataError):
                rejects.read_error(item)
                continue
            raw = _renamed(item, rename)
            try:
                chosen = chosen or records.detect_format(raw.data, produces)
                record = _convert(chosen, raw)
            except FieldError as err:
                rejects.read_error(DataError(raw.path, raw.line, err.message, err.field, raw.unit))
                continue
            if stripped := strip_end_markers(record):
                rejects.counts["stripped_end_marker"] += stripped
            yield raw, record


def read_typed(
    paths: Iterable[str | Path],
    kind: type[R],
    rejects: Rejects,
    fmt: str | None = None,
    text_unit: TextUnit = "block",
    stream: bool = False,
) -> Iterator[tuple[RawRecord, R]]:
    """`read_records` of one record type, typed as that type."""
    for raw, record in read_records(paths, (kind,), rejects, fmt, None, text_unit, MAX_LINE_BYTES, stream):
        assert isinstance(record, kind)
        yield raw, record


def _renamed(item: RawRecord, rename: Mapping[str, str] | None) -> RawRecord:
    if not rename:
        return item
    data = {rename.get(k, k): v for k, v in item.data.items()}
    return RawRecord(item.path, item.line, data, item.unit)


def _convert(fmt: Format, raw: RawRecord) -> Record:
    fallback_id = f"{Path(raw.path).name}:{raw.line}"
    return fmt.convert(raw.data, fallback_id)
