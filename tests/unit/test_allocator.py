"""The allocator setting: large blocks get a mapping of their own, given back when freed, however the
blocks before them went; small blocks stay in the heap for reuse; the opt-out leaves malloc alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# What glibc's malloc holds (mallinfo2(3), glibc >= 2.33): `arena` bytes of heap, `hblkhd` bytes in
# separate mmaps, `fordblks` free bytes kept in the heap. Read from the allocator itself, not from
# page-fault counts, which the kernel's memory reclaim can change. A 4 MiB block is allocated and freed
# twice (glibc's default threshold slides up to a freed mapping's size, so its second one would come from
# the heap), then a 256 KiB block twice.
PROGRAM = """
import ctypes, ctypes.util, torch
from instructgpt.allocator import tune_malloc
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
          "keepcost")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
applied = tune_malloc()
mapped = []
for _ in range(2):
    start = libc.mallinfo2().hblkhd
    block = torch.empty(4 << 20, dtype=torch.uint8).fill_(1)
    mapped.append(libc.mallinfo2().hblkhd - start)
    del block
left = libc.mallinfo2().hblkhd - start
small = torch.empty(256 << 10, dtype=torch.uint8).fill_(1)
del small
freed = libc.mallinfo2()
small = torch.empty(256 << 10, dtype=torch.uint8).fill_(1)
again = libc.mallinfo2()
print(applied, mapped[0], mapped[1], left, freed.fordblks, again.arena - freed.arena)
"""
MIB = 1 << 20


def _run(setting: str) -> list[str]:
    """applied, bytes mapped for the first and the second 4 MiB block, mapped bytes left after freeing the
    second, free heap bytes once the small block is freed, heap growth when it is allocated again."""
    env = {**os.environ, "INSTRUCTGPT_RETAIN_MEMORY": setting, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_large_blocks_are_mapped_each_time_and_small_ones_reused() -> None:
    applied, first, second, left, kept, growth = _run("1")
    assert applied == "True"
    assert int(first) >= 4 * MIB and int(second) >= 4 * MIB  # each large block its own mapping ...
    assert int(left) <= 0  # ... given back when freed
    assert int(kept) >= 256 << 10  # a small block freed stays in the heap
    assert int(growth) == 0  # and the next one is served from it


def test_opting_out_leaves_malloc_its_sliding_threshold() -> None:
    applied, first, second, *_ = _run("0")
    assert applied == "False"
    assert int(first) >= 4 * MIB  # glibc's default: mapped while the threshold is below its size ...
    assert int(second) == 0  # ... which then rises to it: the next one comes from the heap
