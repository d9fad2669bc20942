"""The allocator modes (INSTRUCTGPT_MALLOC): `retain` serves even large blocks from the heap and reuses
them; `map` gives each large block a mapping of its own, given back when freed; `system` leaves glibc's
sliding threshold; an unknown mode is refused."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# What glibc's malloc holds (mallinfo2(3), glibc >= 2.33): `arena` bytes of heap, `hblkhd` bytes in
# separate mmaps. Read from the allocator itself, not from page-fault counts, which the kernel's memory
# reclaim can change. A 4 MiB block is allocated and freed twice (glibc's default threshold slides up to
# a freed mapping's size, so its second one comes from the heap).
PROGRAM = """
import ctypes, ctypes.util, torch
from instructgpt.allocator import tune_malloc
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
          "keepcost")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
mode = tune_malloc()
mapped, grown = [], []
for _ in range(2):
    start = libc.mallinfo2()
    block = torch.empty(4 << 20, dtype=torch.uint8).fill_(1)
    during = libc.mallinfo2()
    mapped.append(during.hblkhd - start.hblkhd)
    grown.append(during.arena - start.arena)
    del block
left = libc.mallinfo2().hblkhd - start.hblkhd
print(mode, *mapped, *grown, left)
"""
MIB = 1 << 20


def _run(mode: str) -> list[str]:
    """mode in force, bytes mapped for the first and second 4 MiB block, heap growth for each, mapped
    bytes left after freeing the second."""
    env = {**os.environ, "INSTRUCTGPT_MALLOC": mode, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_retain_serves_large_blocks_from_the_heap_and_reuses_them() -> None:
    mode, first, second, _grown_first, grown_second, _ = _run("retain")
    assert mode == "retain"
    assert int(first) == 0 and int(second) == 0  # no mapping of their own
    assert int(grown_second) == 0  # the second block reused what the first freed


def test_map_gives_each_large_block_a_mapping_returned_when_freed() -> None:
    mode, first, second, *_, left = _run("map")
    assert mode == "map"
    assert int(first) >= 4 * MIB and int(second) >= 4 * MIB
    assert int(left) <= 0


def test_system_leaves_glibcs_sliding_threshold() -> None:
    mode, first, second, *_ = _run("system")
    assert mode == "system"
    assert int(first) >= 4 * MIB  # mapped while the threshold is below its size ...
    assert int(second) == 0  # ... which then rises to it: the next one comes from the heap


def test_an_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from instructgpt.allocator import malloc_mode

    monkeypatch.setenv("INSTRUCTGPT_MALLOC", "jemalloc")
    with pytest.raises(
        ValueError, match="INSTRUCTGPT_MALLOC='jemalloc': expected one of retain, map, system"
    ):
        malloc_mode()
