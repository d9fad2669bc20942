"""`instructgpt show`: records of any file rendered as a person would read them, in the terminal.

Conversations and prompts as chat turns, comparisons with their responses best first, documents with
their provenance, task examples as a field table; a record of no known format is shown as JSON. Text
is printed literally (no markup interpretation), so what you see is what a model would train on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from instructgpt import records
from instructgpt.io import DataError, RawRecord, iter_raw
from instructgpt.records import Comparison, Conversation, Document, FieldError, Message, Prompt, TaskExample

ROLE_STYLES = {"system": "magenta", "user": "cyan", "assistant": "green"}


def show(
    path: str | Path, n: int = 5, offset: int = 0, fmt: str | None = None, console: Console | None = None
) -> int:
    """Print records `offset`..`offset + n` of `path`; returns how many were shown."""
    console = console or Console()
    shown = 0
    for raw in islice(_raw_records(Path(path)), offset, offset + n):
        console.print(render(raw, fmt))
        shown += 1
    if not shown:
        console.print(f"no records in {path} from record {offset + 1}")
    return shown


def _raw_records(path: Path) -> Iterator[RawRecord]:
    for item in iter_raw(path, text_unit="block"):
        if isinstance(item, DataError):
            raise item
        yield item


def render(raw: RawRecord, fmt: str | None = None) -> RenderableType:
    """One raw record as a panel: converted to its record type when its format is known, else JSON."""
    try:
        chosen = records.get_format(fmt) if fmt else records.detect_format(raw.data)
        record = chosen.convert(raw.data, raw.where)
    except FieldError:
        data = Text(json.dumps(raw.data, ensure_ascii=False, indent=2))
        return Panel(data, title=Text(raw.where), title_align="left")
    body = Group(Text(_provenance(record), style="dim"), _body(record))
    return Panel(body, title=Text(raw.where), title_align="left", subtitle=type(record).__name__)


def _provenance(record: records.Record) -> str:
    parts = [f"id {record.id}"]
    for name in ("task", "template", "lang", "source"):
        if value := getattr(record, name, ""):
            parts.append(f"{name} {value}")
    return " · ".join(parts)


def _body(record: records.Record) -> RenderableType:
    if isinstance(record, (Conversation, Prompt)):
        return Group(*(_turn(m) for m in record.messages))
    if isinstance(record, Comparison):
        tiers = record.rank_tiers()
        tied = {t for t in tiers if tiers.count(t) > 1}
        ranked = [
            _response(t + 1, record.responses[i], t in tied)
            for t, i in zip(tiers, record.ranking, strict=True)
        ]
        return Group(*(_turn(m) for m in record.prompt), *ranked)
    if isinstance(record, Document):
        meta = json.dumps(record.meta, ensure_ascii=False) if record.meta else ""
        return Group(Text(record.text), Text(meta, style="dim")) if meta else Text(record.text)
    return _fields_table(record)


def _turn(message: Message) -> RenderableType:
    style = ROLE_STYLES[message.role]
    return Panel(Text(message.content), title=message.role, title_align="left", border_style=style)


def _response(rank: int, text: str, tied: bool) -> RenderableType:
    title = f"response ranked {rank}" + (" (tied)" if tied else "")
    return Panel(Text(text), title=title, title_align="left", border_style="yellow")


def _fields_table(example: TaskExample) -> RenderableType:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for name, value in example.fields.items():
        table.add_row(name, Text(_as_text(value)))
    return table


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(f"{i}. {item}" for i, item in enumerate(value, 1))
    return str(value)
