"""Progress that shows with or without a terminal: `track` (an iterable's items), `counter` (a count
updated by hand) and `Ticker` (the plain lines, which training's `train/progress.Progress` uses too).

On a terminal, tqdm bars as before. Without one (nohup, SLURM, CI: stderr is not a TTY) tqdm is silent,
so a `Ticker` writes one plain line to stderr every `INSTRUCTGPT_PROGRESS_SECONDS` seconds (default 30;
0 writes a line per update) and a final line when done, from the main process only (`RANK` unset or 0):

    sft step 120/400 (30%) loss 1.234 tok/s 5.3k elapsed 2m10s eta 4m40s
    prepare docs 12,000/40,000 (30%) 1,234 docs/s elapsed 10s eta 23s
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")

ENV = "INSTRUCTGPT_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0


def interval_seconds() -> float:
    """Seconds between two plain progress lines, from `INSTRUCTGPT_PROGRESS_SECONDS`."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ValueError(f"{ENV} must be a number of seconds >= 0, got {text!r}")
    return seconds


def is_main_process() -> bool:
    """Whether this is the main process of a launched job (`RANK` 0), or not launched at all."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def quiet_library_bars() -> None:
    """Without a terminal, turn off the bars of 🤗 datasets, hub and transformers ("Generating train
    split", "Writing model shards"): their carriage-return redraws only garble a log file. Set before
    those libraries are imported (they read it then); a value the user set is kept."""
    if not stderr_is_terminal():
        for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class Ticker:
    """Plain progress lines: at most one per `every` seconds (`interval_seconds()` when None), and one
    when closed. `update(n, **fields)` counts `n` items and sets the fields shown after the count.
    The ETA assumes the items still to come go at the average pace so far."""

    def __init__(
        self,
        desc: str,
        unit: str,
        total: int | None = None,
        initial: int = 0,
        show_rate: bool = True,
        enabled: bool = True,
        file: TextIO | None = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desc, self.unit, self.total, self.show_rate = desc, unit, total, show_rate
        self.n = self.initial = initial
        self.enabled, self.file, self.clock = enabled, file, clock
        self.every = interval_seconds() if every is None else every
        self.start = self.last = clock()
        self.fields: dict[str, str] = {}
        self.closed = False

    def update(self, n: int = 1, **fields: str) -> None:
        self.n += n
        self.fields.update(fields)
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._write(self.line(now))

    def close(self) -> None:
        """The final line: `done` when the total (if known) was reached, else `stopped`."""
        if not self.closed:
            self.closed = True
            self._write(self.line(self.clock(), final=True))

    def line(self, now: float, final: bool = False) -> str:
        elapsed = now - self.start
        count = f"{self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"
        parts = [self.desc, self.unit, count]
        if self.total:
            parts.append(f"({100 * self.n / self.total:.0f}%)")
        parts += [f"{key} {value}" for key, value in self.fields.items()]
        done_here = self.n - self.initial
        if self.show_rate and elapsed > 0:
            parts.append(f"{done_here / elapsed:,.1f} {self.unit}/s")
        parts.append(f"elapsed {duration(elapsed)}")
        if final:
            parts.append("done" if not self.total or self.n >= self.total else "stopped")
        elif self.total and done_here > 0:
            parts.append(f"eta {duration((self.total - self.n) * elapsed / done_here)}")
        return " ".join(parts)

    def _write(self, line: str) -> None:
        if self.enabled:
            print(line, file=self.file or sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """`7s`, `2m10s`, `1h05m`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def track(iterable: Iterable[T], desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """`iterable`'s items, with a tqdm bar on a terminal, else plain lines on the main process."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if stderr_is_terminal():
        from tqdm import tqdm

        return iter(tqdm(iterable, desc=desc, unit=f" {unit}", total=total))
    return _ticking(iterable, Ticker(desc, unit, total, enabled=is_main_process()))


def _ticking(iterable: Iterable[T], ticker: Ticker) -> Iterator[T]:
    """The items, counted; the final line once all are through (none when an error stops the stage)."""
    for item in iterable:
        yield item
        ticker.update()
    ticker.close()


class Count(Protocol):
    """What `counter` returns: a tqdm bar or a Ticker."""

    n: int

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


def counter(
    desc: str, unit: str, total: int | None = None, initial: int = 0, show_rate: bool = True
) -> Count:
    """A count updated by hand (`update(n)`, `n`, `close()`) from `initial`: a tqdm bar on a terminal,
    else a Ticker (silent off the main process; `show_rate=False` for counts people make, not a loop)."""
    if stderr_is_terminal():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=f" {unit}")
    return Ticker(desc, unit, total, initial=initial, show_rate=show_rate, enabled=is_main_process())
