"""Inputs named by a spec instead of a plain path, for io.py: `hf:` datasets read through 🤗 `datasets`,
and options after `?` on a local path (a split of a saved DatasetDict folder, column renames).

Spec syntax, one input per argument (quote it in a shell: `?` and `&` are special there):

    hf:NAME[?split=S&subset=C&revision=R&data_files=F1,F2&data_dir=D&streaming=true&columns=a:b,c:d]
    PATH?split=S&columns=a:b          (PATH: a local file, or a folder written by `save_to_disk`)

`NAME` is a Hub id (`tatsu-lab/alpaca`), a local folder of data files, a packaged builder with
`data_files` (`hf:json?data_files=a.jsonl`), or a local `save_to_disk` folder (read by io_arrow.py, in
batches, without `datasets`). `subset` is the dataset's configuration (`load_dataset(name=...)`).
Without `split`, a dataset with one split gives it, and one with several is an error listing them.
`streaming` defaults to the stage's choice (`prepare` and `pretrain` stream, other stages load the
dataset into the cache first, so a cached dataset also reads offline). `columns=old:new,...` renames
fields before the record format is detected.

Rows are numbered from 1 per split, so an error reads `hf:NAME[SPLIT]:row N: field: problem`. What
`datasets` cannot load (offline and not cached, an unknown id, split or subset) is one `DataError`
naming the spec, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from instructgpt.io import DataError, Item, RawRecord

PREFIX = "hf:"
HUB_KEYS = ("split", "subset", "revision", "data_files", "data_dir", "streaming", "columns")
LOCAL_KEYS = ("split", "columns")
BATCH_ROWS = 1024
ReadPath = Callable[[Path], Iterator[Item]]  # io.iter_raw with the caller's settings


@dataclass(frozen=True)
class Spec:
    """One input as named: `location` (a Hub id or path) and the options given after `?`."""

    text: str
    location: str
    hub: bool
    split: str = ""
    subset: str = ""
    revision: str = ""
    data_files: tuple[str, ...] = ()
    data_dir: str = ""
    streaming: bool | None = None
    columns: dict[str, str] = field(default_factory=dict)

    def label(self, split: str = "") -> str:
        """How rows and errors name this input: `hf:NAME[SPLIT]` (the options left out)."""
        base = f"{PREFIX}{self.location}" if self.hub else self.location
        return f"{base}[{split}]" if split else base


def is_spec(text: str) -> bool:
    """An `hf:` input, or a path with `?options` (that is not itself an existing file)."""
    return text.startswith(PREFIX) or ("?" in text and not Path(text).exists())


def local_part(text: str) -> str:
    """The path an input reads on this machine: `text`, or a spec's location (a Hub id for `hf:NAME`)."""
    return text.removeprefix(PREFIX).partition("?")[0] if is_spec(text) else text


def parse(text: str) -> Spec:
    """The spec `text` names; an unknown or repeated option, or a bad value, is a `DataError`."""
    hub = text.startswith(PREFIX)
    location, _, query = text.removeprefix(PREFIX).partition("?") if hub else text.partition("?")
    if not location:
        raise DataError(text, None, "names no dataset (expected hf:NAME or hf:PATH)")
    allowed = HUB_KEYS if hub else LOCAL_KEYS
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as err:
        raise DataError(text, None, f"cannot read the options after '?': {err}") from err
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise DataError(text, None, f"unknown option {key!r}; expected one of {', '.join(allowed)}")
        if key in options:
            raise DataError(text, None, f"option {key!r} is given twice")
        options[key] = value
    return Spec(text, location, hub, **_typed(text, options))


def _typed(text: str, options: Mapping[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = {
        k: v for k, v in options.items() if k in ("split", "subset", "revision", "data_dir")
    }
    if "data_files" in options:
        typed["data_files"] = tuple(f for f in options["data_files"].split(",") if f)
    if "streaming" in options:
        value = options["streaming"].lower()
        if value not in ("true", "false"):
            raise DataError(text, None, f"streaming: expected true or false, got {options['streaming']!r}")
        typed["streaming"] = value == "true"
    if "columns" in options:
        typed["columns"] = _columns(text, options["columns"])
    return typed


def _columns(text: str, value: str) -> dict[str, str]:
    pairs = [item.split(":") for item in value.split(",") if item]
    if not pairs or any(len(p) != 2 or not all(p) for p in pairs):
        raise DataError(text, None, f"columns: expected old:new[,old:new...], got {value!r}")
    return {old: new for old, new in pairs}


# ---------------------------------------------------------------------------------------------- reading


def read(spec: Spec, stream: bool, raw_items: ReadPath) -> Iterator[Item]:
    """The raw records of `spec`, renamed by its `columns`; `raw_items(path)` reads a plain local path
    (io.iter_raw with the caller's settings). `stream`: the stage's default for `streaming`."""
    for item in _items(spec, stream, raw_items):
        if isinstance(item, RawRecord) and spec.columns:
            data = {spec.columns.get(k, k): v for k, v in item.data.items()}
            item = RawRecord(item.path, item.line, data, item.unit)
        yield item


def _items(spec: Spec, stream: bool, raw_items: ReadPath) -> Iterator[Item]:
    from instructgpt import io_arrow  # it imports io.py, which imports this module lazily

    local = Path(spec.location)
    if io_arrow.is_saved_dataset(local):
        split = io_arrow.chosen_split(local, spec.split)
        rows = io_arrow.read_dataset_dir(local, split)
        yield from _numbered(rows, spec.label(split)) if spec.hub else rows
    elif not spec.hub:
        if spec.split:
            raise DataError(spec.text, None, "split= applies only to a folder written by save_to_disk")
        yield from raw_items(local)
    else:
        yield from _loaded(spec, stream)


def _numbered(items: Iterator[Item], label: str) -> Iterator[Item]:
    """A saved dataset's rows renamed `label`, numbered across its shards."""
    number = 0
    for item in items:
        if isinstance(item, RawRecord):
            number += 1
            item = RawRecord(label, number, item.data, "row")
        yield item


def _loaded(spec: Spec, stream: bool) -> Iterator[Item]:
    """Rows of `datasets.load_dataset(NAME, ...)`, read in batches."""
    try:
        import datasets
    except ImportError as err:
        raise DataError(spec.text, None, "reading hf: inputs needs the `datasets` package") from err
    from datasets.exceptions import DatasetsError

    streaming = stream if spec.streaming is None else spec.streaming
    try:
        found = datasets.load_dataset(
            spec.location,
            name=spec.subset or None,
            split=spec.split or None,
            revision=spec.revision or None,
            data_files=list(spec.data_files) or None,
            data_dir=spec.data_dir or None,
            streaming=streaming,
        )
    except (OSError, ValueError, DatasetsError) as err:
        raise DataError(spec.label(spec.split), None, _cannot_load(err)) from err
    split, dataset = _one_split(spec, found)
    label = spec.label(split)
    number = 0
    try:
        for batch in dataset.iter(batch_size=BATCH_ROWS):
            for values in zip(*batch.values(), strict=True):
                number += 1
                yield RawRecord(label, number, dict(zip(batch, values, strict=True)), "row")
    except (OSError, ValueError, DatasetsError) as err:
        yield DataError(label, None, f"after row {number} the rest cannot be read: {_first_line(err)}")


def _one_split(spec: Spec, found: Any) -> tuple[str, Any]:
    """(split name, dataset): the one asked for, else the only split there is."""
    if not isinstance(found, Mapping):
        return spec.split, found
    names = list(found)
    if len(names) != 1:
        raise DataError(
            spec.label(), None, f"has splits {', '.join(names)}; choose one with ?split=NAME in the input"
        )
    return names[0], found[names[0]]


def _cannot_load(err: BaseException) -> str:
    hint = ""
    if isinstance(err, ConnectionError):
        hint = " (offline, or the Hub cannot be reached, and it is not in the local cache)"
    return f"cannot load with datasets: {_first_line(err)}{hint}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
