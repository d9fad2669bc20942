"""Host memory for training: large blocks mapped on their own and returned when freed; small ones kept.

A training step allocates and frees gigabytes of activations, logits and gradients in an order that
differs from step to step. Served from one heap (glibc's `malloc` with mmap off, as this module set
before), that churn fragments it: LoRA SFT of SmolLM2-135M on 2 rows × 512 tokens has at most 2.4 GB
in use at any moment, yet its heap grew by ~0.6 GB a step to 3.6-4.0 GB of resident memory (glibc's
default, whose mmap threshold rises with use, fragments the same way: 4.0 GB); at 4 rows it reached 10 GB.
So every block of `MMAP_THRESHOLD` (1 MiB) or more gets a mapping of its own (a fixed threshold: glibc's
sliding one would climb back above the activations' sizes), returned to the system when freed, and the
peak resident memory is what is in use (3.0 GB there). The cost is page faults: each step's large blocks
are touched afresh. Smaller blocks stay in the heap, never trimmed, so the many small tensors of a step
fault nothing. Other C libraries (macOS, musl) are left alone. `INSTRUCTGPT_RETAIN_MEMORY=0` turns this
off (glibc's defaults).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt(3) parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 1 << 20  # blocks this large or larger: a mapping each, unmapped on free
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps, not page by page
_applied = False


def tune_malloc() -> bool:
    """Set glibc's malloc for training (large blocks mapped, small ones kept); whether it now is."""
    global _applied
    if _applied:
        return True
    if os.environ.get("INSTRUCTGPT_RETAIN_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, TOP_PAD))
    _applied = all(libc.mallopt(param, value) == 1 for param, value in settings)
    return _applied
