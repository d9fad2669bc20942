"""Atomic writers: records stream to a temporary file beside the target, renamed into place on success,
so a crash never leaves a half-written file under the real name.

The temporary name is `.{name}.{pid}.tmp`; opening one first removes those that processes no longer alive
left beside the same target (a killed run's litter), never one a live process may still be writing.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def _temp_beside(path: Path) -> Path:
    """This process's temporary name beside `path`; first removes those that killed processes left."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = stale.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (a process of another user counts: it may still be writing)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process, or not a process id at all
        pass
    return True


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
