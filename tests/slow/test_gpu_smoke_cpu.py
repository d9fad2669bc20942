"""benchmarks/gpu_smoke.sh on its CPU dry path (`--cpu --steps 1`, tiny-gpt): the commands the GPU check
runs (SFT → reward → PPO-ptx → DPO in bf16 mixed precision, one process and then two under accelerate)
finish and write their summary, so the script cannot rot while no GPU is at hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_gpu_smoke_dry_path_runs_every_stage(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    command = ["bash", str(REPO / "benchmarks" / "gpu_smoke.sh"), "--cpu", "--steps", "1", "--procs", "2"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "smoke")], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for summary in (tmp_path / "smoke" / "summary.json", tmp_path / "smoke" / "x2" / "summary.json"):
        text = summary.read_text()
        assert all(stage in text for stage in ("sft", "reward", "ppo", "dpo")), text[:2000]
        json.loads(text)
