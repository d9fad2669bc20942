"""Which process runs a recipe, as `instructgpt run` records it in each stage's `stage.json`, and the
board's checks on that record: is the process still there (and the same one, not a new process that
was given the same pid), and interrupting it as Ctrl-C would.

`this_process()` is the record: the pid, its start time in clock ticks after boot (field 22 of
/proc/PID/stat), the boot id and the host name. A pid is the same process only when the start time and
the boot id match too, so a pid reused after the run ended (or after a reboot) is never signalled. Where
/proc is absent (not Linux) or the record is from another host, `alive` cannot tell and answers None.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _start_ticks(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks after boot), or None: no such process (or one that
    has ended, not yet reaped), or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    return None if fields[0] in ("Z", "X") else int(fields[19])  # a zombie has ended; start: field 22


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def this_process() -> dict[str, Any]:
    """The record of the calling process, for stage.json."""
    return record_of(os.getpid())


def record_of(pid: int) -> dict[str, Any]:
    """The record of process `pid` as it is now (`start` None: no such process, or no /proc)."""
    return {"pid": pid, "start": _start_ticks(pid), "boot": _boot_id(), "host": socket.gethostname()}


def read_record(stage_folder: Path) -> Any:
    """The process record in a stage folder's stage.json (None when there is none)."""
    try:
        state = json.loads((stage_folder / "stage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state.get("process") if isinstance(state, dict) else None


def alive(record: Any) -> bool | None:
    """True: the recorded process is running; False: it is gone (or its pid now names another process);
    None: this machine cannot tell (another host, no /proc, or not a process record)."""
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int) or record["pid"] <= 0:
        return None
    if record.get("host") != socket.gethostname() or record.get("start") is None or _boot_id() is None:
        return None
    if record.get("boot") != _boot_id():
        return False  # recorded before the last reboot
    return _start_ticks(record["pid"]) == record["start"]


def interrupt(record: Any) -> None:
    """Ctrl-C for the recorded process: SIGINT to its process group when it leads one (a run the board
    started, a job typed in a terminal: a `launch` stage's workers stop with it), else to it alone.
    Raises ValueError, signalling nothing, when it is gone, its pid was reused, or this machine cannot
    tell. With a pidfd (Linux >= 5.3) a lone process's signal names exactly the checked process; for a
    group, the window between the check and the signal is a few instructions."""
    if alive(record) is not True:
        raise ValueError("its process is gone (or cannot be checked from this machine)")
    pid = record["pid"]
    try:
        fd: int | None = os.pidfd_open(pid)
    except ProcessLookupError as err:
        raise ValueError("its process is gone") from err
    except (AttributeError, OSError):  # no pidfds: the window between check and signal is a few lines
        fd = None
    try:
        if _start_ticks(pid) != record["start"]:  # it ended and the pid was reused before the open
            raise ValueError("its process is gone (the pid now names another process)")
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGINT)
        elif fd is not None:
            signal.pidfd_send_signal(fd, signal.SIGINT)
        else:
            os.kill(pid, signal.SIGINT)
    except ProcessLookupError as err:
        raise ValueError("its process is gone") from err
    finally:
        if fd is not None:
            os.close(fd)
