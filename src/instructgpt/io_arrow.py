"""Readers of Arrow data for io.py: Parquet files, Arrow IPC files and streams, and the folders that
`datasets.save_to_disk` writes (a Dataset, or one split of a DatasetDict). pyarrow is imported only when
such an input is read; bad input is a `DataError` naming the file, as everywhere in io.py. Every reader
streams: Parquet row groups and Arrow record batches are read and converted `BATCH_ROWS` rows at a time
(Arrow files memory-mapped), so a file is never held in memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from instructgpt.io import DataError, Item, RawRecord

BATCH_ROWS = 1024


def read_parquet(path: Path) -> Iterator[Item]:
    """The rows of a Parquet file, numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        yield from _rows(path, parquet.iter_batches(batch_size=BATCH_ROWS))
    except (pa.ArrowException, OSError) as err:
        yield DataError(path, None, f"not a readable Parquet file: {err}")


def read_arrow(path: Path) -> Iterator[Item]:
    """The rows of an Arrow IPC file or stream, numbered from 1."""
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


def _rows(path: Path, batches: Iterable[Any]) -> Iterator[Item]:
    """Rows of `batches`, converted to Python `BATCH_ROWS` at a time however large a batch is."""
    number = 1
    for batch in batches:
        for start in range(0, batch.num_rows, BATCH_ROWS):
            for row in batch.slice(start, BATCH_ROWS).to_pylist():
                yield RawRecord(str(path), number, row, unit="row")
                number += 1


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `save_to_disk` (a Dataset or a DatasetDict)."""
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def chosen_split(path: Path, split: str) -> str:
    """The split of a saved DatasetDict folder to read: `split`, else its only one ("" for a Dataset)."""
    if not (path / "dataset_dict.json").exists():
        if split:
            raise DataError(
                path, None, f"is a single saved Dataset, not a DatasetDict: it has no split {split!r}"
            )
        return ""
    splits = _listed(path / "dataset_dict.json", "splits", "split names", lambda s: isinstance(s, str))
    if split and split not in splits:
        raise DataError(path, None, f"has no split {split!r}; its splits: {', '.join(splits)}")
    if not split and len(splits) != 1:
        raise DataError(
            path, None, f"is a DatasetDict with splits {', '.join(splits)}; choose one with ?split=NAME"
        )
    return split or splits[0]


def read_dataset_dir(path: Path, split: str = "") -> Iterator[Item]:
    """A folder written by `datasets` `save_to_disk`: the Arrow stream shards listed in state.json, of
    the Dataset there or of a DatasetDict's split (`chosen_split`)."""
    split = chosen_split(path, split)
    folder = path / split if split else path
    state = folder / "state.json"
    if not state.exists():
        raise DataError(folder, None, "is a directory but not a saved Hugging Face dataset (no state.json)")
    files = _listed(state, "_data_files", "{filename} entries", _names_a_file)
    for file in files:
        yield from read_arrow(folder / file["filename"])


def _names_a_file(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("filename"), str)


def _listed(file: Path, key: str, what: str, valid: Callable[[Any], bool]) -> list[Any]:
    """The list under `key` in a dataset's JSON description file, every entry `valid`."""
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(file, err.lineno, f"not valid JSON: {err.msg} (column {err.colno})") from err
    except (ValueError, RecursionError) as err:
        raise DataError(file, None, f"not a valid {file.name}: {err}") from err
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list) or not all(valid(v) for v in value):
        raise DataError(file, None, f"not a valid {file.name}: no {key!r} list of {what}")
    return value
