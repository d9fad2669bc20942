"""threads.py: usable cores from planted affinity and cgroup files, the thread choice, the contention
warning's decision, the PSI parser and the OpenMP wait-policy default."""

from __future__ import annotations

from pathlib import Path

import pytest

from instructgpt.threads import (
    cgroup_cpu_limit,
    contention,
    cpu_pressure,
    quiet_openmp_wait,
    stage_threads,
    usable_cores,
)


def _plant(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_cgroup_v2_quota_is_the_tightest_along_the_ancestors(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _plant(root / "cpu.max", "max 100000\n")
    _plant(root / "job" / "cpu.max", "300000 100000\n")  # 3 CPUs
    _plant(root / "job" / "step" / "cpu.max", "150000 100000\n")  # 1.5 CPUs
    proc = _plant(tmp_path / "cgroup", "0::/job/step\n")
    assert cgroup_cpu_limit(root, proc) == pytest.approx(1.5)
    assert usable_cores({0, 1, 2, 3}, root, proc) == 2  # 1.5 rounded up
    assert usable_cores({0}, root, proc) == 1  # affinity tighter than the quota


def test_cgroup_v2_without_a_quota(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _plant(root / "cpu.max", "max 100000\n")
    proc = _plant(tmp_path / "cgroup", "0::/\n")
    assert cgroup_cpu_limit(root, proc) is None
    assert usable_cores({0, 1, 2}, root, proc) == 3


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _plant(root / "cpu,cpuacct" / "docker" / "cpu.cfs_quota_us", "250000\n")
    _plant(root / "cpu,cpuacct" / "docker" / "cpu.cfs_period_us", "100000\n")
    _plant(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _plant(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = _plant(tmp_path / "cgroup", "4:memory:/docker\n2:cpu,cpuacct:/docker\n")
    assert cgroup_cpu_limit(root, proc) == pytest.approx(2.5)
    assert usable_cores(set(range(8)), root, proc) == 3


def test_cgroup_v1_unlimited_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _plant(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _plant(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc = _plant(tmp_path / "cgroup", "1:cpu:/\n")
    assert cgroup_cpu_limit(root, proc) is None
    assert cgroup_cpu_limit(tmp_path / "absent", tmp_path / "absent-proc") is None
    assert usable_cores({0, 1}, tmp_path / "absent", tmp_path / "absent-proc") == 2


def test_stage_threads_explicit_then_env_then_cores() -> None:
    assert stage_threads(3, {"OMP_NUM_THREADS": "5"}, cores=2) == 3
    assert stage_threads(0, {"OMP_NUM_THREADS": "5"}, cores=2) == 5
    assert stage_threads(0, {"OMP_NUM_THREADS": "4,2"}, cores=2) == 4  # nested-level list: the outer
    assert stage_threads(0, {"OMP_NUM_THREADS": "junk"}, cores=2) == 2
    assert stage_threads(0, {}, cores=7) == 7
    assert stage_threads(0, {"LOCAL_WORLD_SIZE": "2"}, cores=7) == 3  # two processes share the cores
    assert stage_threads(0, {"LOCAL_WORLD_SIZE": "4"}, cores=2) == 1


@pytest.mark.parametrize(
    ("load", "cores", "threads", "warned"),
    [
        (1.0, 2, 2, False),  # only this process
        (1.4, 2, 2, False),  # a light other job: rounding slack
        (2.0, 2, 2, True),  # one other job on 2 cores: 1 free for 2 threads
        (7.2, 2, 2, True),
        (7.2, 2, 1, False),  # one thread cannot wait on a sibling
        (3.0, 8, 4, False),
        (6.0, 8, 4, True),
    ],
)
def test_contention_decision(load: float, cores: int, threads: int, warned: bool) -> None:
    message = contention(load, cores, threads)
    assert (message is not None) == warned
    if message:
        assert f"load average {load:.1f} on {cores} usable cores" in message
        assert "train.threads=1" in message


def test_contention_quotes_pressure() -> None:
    message = contention(4.0, 2, 2, pressure=97.25)
    assert message is not None and "CPU pressure 97%" in message


def test_cpu_pressure_parses_psi(tmp_path: Path) -> None:
    psi = _plant(
        tmp_path / "cpu",
        "some avg10=42.50 avg60=30.00 avg300=1.00 total=123\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )
    assert cpu_pressure(psi) == pytest.approx(42.5)
    assert cpu_pressure(tmp_path / "absent") is None


def test_quiet_openmp_wait_only_on_a_busy_machine_and_keeps_a_users_choice() -> None:
    busy: dict[str, str] = {}
    quiet_openmp_wait(busy, load=3.0, cores=2)  # two other jobs on two cores
    assert busy == {"OMP_WAIT_POLICY": "PASSIVE"}
    idle: dict[str, str] = {}
    quiet_openmp_wait(idle, load=1.0, cores=2)  # only this process
    assert idle == {}
    chosen = {"OMP_WAIT_POLICY": "ACTIVE"}
    quiet_openmp_wait(chosen, load=3.0, cores=2)
    assert chosen == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_stage_process_sets_threads_and_warns_on_a_busy_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from instructgpt import distributed

    before = torch.get_num_threads()
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)
    monkeypatch.setattr(distributed, "cpu_pressure", lambda: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(distributed.os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    with distributed.stage_process(0):
        assert torch.get_num_threads() == 2  # the usable cores
    assert "load average 6.0 on 2 usable cores" in capsys.readouterr().err
    monkeypatch.setattr(distributed.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    with distributed.stage_process(1):
        assert torch.get_num_threads() == 1
    assert capsys.readouterr().err == ""
    assert torch.get_num_threads() == before


def test_on_a_busy_machine_the_command_sets_the_wait_policy_before_torch_loads() -> None:
    import os
    import subprocess
    import sys

    program = (
        "import os, sys\n"
        "os.getloadavg = lambda: (99.0, 99.0, 99.0)\n"  # a busy machine, whatever this one is doing
        "from instructgpt import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "PASSIVE"]
