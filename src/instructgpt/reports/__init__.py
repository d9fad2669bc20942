"""Stage reports: what a stage's run returns, writes beside its outputs and prints on the terminal.

Each stage's report is a frozen dataclass subclassing `StageReport`: its fields, in the order of the
report file's keys, and `FILE`, that file's fixed name. The base gives every report `to_dict()` /
`from_dict()` (the file's JSON object, key for key), `write(out_dir)` (atomic, `writers.write_json`),
`read(out_dir)` (None when the file is absent or unreadable) and `folder`, the folder it was written to
or read from (never saved). A report's own `summary()` is the text the CLI prints after the run. A new
report declares its fields (and `summary()`); nothing else.

Field metadata: `OPTIONAL` leaves the key out of the file while the value is None (a plot not drawn);
`saved_as(KEY)` saves a field under another key (a key that is also a method's name, as `summary`).
Nested parts (score rows, counters) stay plain lists and dicts; a list of dataclasses is saved as a list
of objects. The modules beside this one hold the report types, grouped as the config package groups the
configs: `data` (prepare, instruct, corpus, synth), `training` (pretrain, sft, finetune-task, reward,
ppo, dpo), `inference` (generate, eval), `demo`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from instructgpt.writers import write_json

R = TypeVar("R", bound="StageReport")
_OMIT_NONE = "omit_none"
_KEY = "key"
_UNSAVED = "unsaved"


# A field's metadata: `field(default=None, metadata=OPTIONAL)` is left out of the file while it is None.
OPTIONAL: Mapping[str, Any] = {_OMIT_NONE: True}


def saved_as(key: str) -> Mapping[str, Any]:
    """A field's metadata: `field(metadata=saved_as(KEY))` is saved under KEY in the file."""
    return {_KEY: key}


@dataclass(frozen=True)
class StageReport:
    """The base of every stage's report (module doc)."""

    FILE: ClassVar[str]
    folder: Path | None = field(default=None, kw_only=True, compare=False, metadata={_UNSAVED: True})

    def to_dict(self) -> dict[str, Any]:
        """The report file's JSON object: a key per field, in field order."""
        out = {}
        for f in _saved_fields(type(self)):
            value = getattr(self, f.name)
            if value is not None or not f.metadata.get(_OMIT_NONE):
                out[f.metadata.get(_KEY, f.name)] = _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """The report of a report file's JSON object; ValueError when a field without a default is missing."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.FILE}: expected a JSON object")
        keys = {f.name: f.metadata.get(_KEY, f.name) for f in _saved_fields(cls)}
        given = {name: data[key] for name, key in keys.items() if key in data}
        missing = [f.name for f in _saved_fields(cls) if f.name not in given and _required(f)]
        if missing:
            raise ValueError(f"{cls.FILE}: missing {', '.join(missing)}")
        return cls(**given)

    def write(self: R, out_dir: str | Path) -> R:
        """Write OUT_DIR/FILE atomically; returns the report with `folder` set to OUT_DIR."""
        write_json(Path(out_dir) / self.FILE, self.to_dict())
        return dataclasses.replace(self, folder=Path(out_dir))

    @classmethod
    def read(cls: type[R], out_dir: str | Path) -> R | None:
        """The report in OUT_DIR/FILE, or None when there is none or it cannot be read as this type."""
        try:
            data = json.loads((Path(out_dir) / cls.FILE).read_text(encoding="utf-8"))
            return dataclasses.replace(cls.from_dict(data), folder=Path(out_dir))
        except (OSError, ValueError, TypeError):  # JSONDecodeError is a ValueError
            return None

    def summary(self) -> str:
        """The console text the CLI prints after the run."""
        raise NotImplementedError(f"{type(self).__name__} has no summary")


def _saved_fields(cls: type[StageReport]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get(_UNSAVED)]


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _plain(value: Any) -> Any:
    """A list of dataclasses as a list of dicts (for JSON); anything else as it is."""
    if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
        return [dataclasses.asdict(item) for item in value]
    return value


def rendered(*parts: Any) -> str:
    """Rich renderables (tables) as the plain text a terminal of this width shows, one after another."""
    from rich.console import Console

    out = StringIO()
    console = Console(file=out)
    for part in parts:
        console.print(part)
    return out.getvalue().rstrip("\n")
