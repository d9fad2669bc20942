"""Readers of Arrow data for io.py: Parquet files, Arrow IPC files and streams, and the folders that
`datasets.save_to_disk` writes. pyarrow is imported only when such an input is read; bad input is a
`DataError` naming the file, as everywhere in io.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from instructgpt.io import DataError, Item, RawRecord


def read_parquet(path: Path) -> Iterator[Item]:
    """The rows of a Parquet file, numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        yield from _rows(path, parquet.iter_batches(batch_size=1024))
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
    number = 1
    for batch in batches:
        for row in batch.to_pylist():
            yield RawRecord(str(path), number, row, unit="row")
            number += 1


def read_dataset_dir(path: Path) -> Iterator[Item]:
    """A folder written by `datasets.Dataset.save_to_disk`: Arrow stream shards listed in state.json."""
    if (path / "dataset_dict.json").exists():
        splits = _listed(path / "dataset_dict.json", "splits", "split names", lambda s: isinstance(s, str))
        raise DataError(
            path, None, f"is a DatasetDict with splits {', '.join(splits)}; pass one split's folder"
        )
    state = path / "state.json"
    if not state.exists():
        raise DataError(path, None, "is a directory but not a saved Hugging Face dataset (no state.json)")
    files = _listed(state, "_data_files", "{filename} entries", _names_a_file)
    for file in files:
        yield from read_arrow(path / file["filename"])


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
