"""The allocator setting: freed memory is reused without page faults; the opt-out leaves malloc alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A training step with 64 MiB activations, six times; prints whether the setting took and each step's faults.
PROGRAM = """
import resource, torch
from instructgpt.train.allocator import retain_freed_memory
applied = retain_freed_memory()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.GELU(), torch.nn.Linear(2048, 512))
def faults_of_one_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(torch.randn(8192, 512)).square().mean().backward()
    model.zero_grad(set_to_none=True)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(applied, *[faults_of_one_step() for _ in range(6)])
"""


def _steps(retain: str) -> tuple[str, list[int]]:
    env = {**os.environ, "INSTRUCTGPT_RETAIN_MEMORY": retain, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    applied, *faults = out.stdout.split()
    return applied, [int(f) for f in faults]


def test_later_steps_reuse_freed_memory_without_page_faults() -> None:
    applied, faults = _steps("1")
    assert applied == "True"
    assert faults[0] > 16_384  # the first step maps its 64 MiB of activations
    assert sum(faults[-2:]) < 1_000  # the last two fault (almost) nothing


def test_opting_out_leaves_malloc_mapping_every_step_afresh() -> None:
    applied, faults = _steps("0")
    assert applied == "False"
    assert min(faults[-2:]) > 16_384
