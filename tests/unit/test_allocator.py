"""The allocator setting: freed memory stays in the heap for reuse; the opt-out leaves malloc alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A step's 64 MiB of activations allocated, freed, and allocated again; what glibc's malloc holds each
# time (mallinfo2(3), glibc >= 2.33): `arena` bytes of heap, `hblkhd` bytes in separate mmaps, `fordblks`
# free bytes kept in the heap. Read from the allocator itself, not from page-fault counts, which the
# kernel's memory reclaim can change.
PROGRAM = """
import ctypes, ctypes.util, torch
from instructgpt.allocator import retain_freed_memory
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
          "keepcost")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
applied = retain_freed_memory()
start = libc.mallinfo2()
step = torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
during = libc.mallinfo2()
del step
freed = libc.mallinfo2()
step = torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
again = libc.mallinfo2()
print(applied, during.hblkhd - start.hblkhd, freed.fordblks, again.arena - freed.arena)
"""
MIB = 1 << 20


def _run(retain: str) -> tuple[str, int, int, int]:
    """(applied, bytes newly mmapped for the 64 MiB step, free bytes the heap keeps once it is freed,
    heap growth when the next step allocates it again)."""
    env = {**os.environ, "INSTRUCTGPT_RETAIN_MEMORY": retain, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    applied, mapped, kept, growth = out.stdout.split()
    return applied, int(mapped), int(kept), int(growth)


def test_freed_memory_stays_in_the_heap_and_the_next_step_reuses_it() -> None:
    applied, mapped, kept, growth = _run("1")
    assert applied == "True"
    assert mapped == 0  # the step's memory came from the heap, not from a mmap of its own
    assert kept >= 64 * MIB  # freeing it kept it there
    assert growth == 0  # and the next step was served from it


def test_opting_out_leaves_malloc_mapping_large_blocks_afresh() -> None:
    applied, mapped, kept, _ = _run("0")
    assert applied == "False"
    assert mapped >= 64 * MIB  # glibc's default: a block this large is its own mmap ...
    assert kept < 64 * MIB  # ... unmapped on free, so nothing of it is kept for the next step
