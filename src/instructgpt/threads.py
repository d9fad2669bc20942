"""How many CPU threads a stage's torch work gets, and a warning when other jobs already fill the CPUs.

`usable_cores`: the cores this process may really use — the smaller of its CPU affinity
(`os.sched_getaffinity`) and its cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
`cpu.cfs_period_us`, the tightest along the cgroup's ancestors), rounded up. torch's own default counts
the CPUs it sees, so in a container limited to 2 CPUs on a 64-core host it would start 64 threads that
the quota then stalls. `stage_threads`: an explicit setting wins (the stage's `threads` option, then
`OMP_NUM_THREADS`), otherwise `usable_cores`, split among the job's processes on this machine.

`contention`: at stage start, the 1-minute load average (less this process's own runnable thread) beside
the usable cores. When other jobs keep the cores busy, an OpenMP team of several threads waits at every
parallel region for its slowest member, which the scheduler has parked behind those jobs
(benchmarks/thread_contention.py: LoRA SFT of SmolLM2 on a busy 2-core machine, 2 threads took 3.7-16x
the step time of 1 thread with OpenMP's default wait policy, 0.9-2.9x with the passive one). The stage
is not adapted silently (the thread count changes float summation order, so results would depend on the load);
it warns once, naming what it saw and the fix.

`quiet_openmp_wait`: OpenMP's passive wait policy (`OMP_WAIT_POLICY=PASSIVE`: idle team threads sleep
instead of spinning, leaving the CPU to the thread that has work) set in the environment before torch
loads, when the machine is already busy and the user chose no policy; the command does this first. With 2
threads on the busy machine it cut the step time to 0.08-0.48x of the default policy's; on the same machine
idle it made a 30-step tiny-gpt SFT at 2 threads 1.15-1.20x slower (27.1 and 28.8 s against 23.6 and
24.0 s), so it is not set there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
PRESSURE = Path("/proc/pressure/cpu")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_quota(folder: Path) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD"); None: no limit or no file."""
    text = _read(folder / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not period:
        return None
    return int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    """CPUs allowed by cgroup v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1: no limit)."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def _ancestors(root: Path, relative: str) -> list[Path]:
    """`root/relative` and each folder above it up to `root` itself."""
    parts = [p for p in relative.split("/") if p]
    return [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs this process's cgroup may use (the tightest quota of it and its ancestors); None: no quota.

    `proc_cgroup` lines are `ID:CONTROLLERS:PATH`: `0::PATH` for the v2 hierarchy under `root`, and a
    line whose controllers include `cpu` for v1's, mounted at `root/cpu` (or `root/cpu,cpuacct`)."""
    limits: list[float] = []
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, relative = line.split(":", 2)
        if controllers == "":
            folders = _ancestors(root, relative)
            limits += [q for q in map(_v2_quota, folders) if q is not None]
        elif "cpu" in controllers.split(","):
            for mount in (root / "cpu", root / controllers):
                limits += [q for q in map(_v1_quota, _ancestors(mount, relative)) if q is not None]
    return min(limits) if limits else None


def usable_cores(
    affinity: set[int] | None = None, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> int:
    """min(CPUs in this process's affinity mask, its cgroup CPU quota rounded up); at least 1."""
    cpus = len(affinity if affinity is not None else os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(cpus, 1)


def stage_threads(requested: int, environ: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """Torch threads for a stage: `requested` when > 0, else a valid OMP_NUM_THREADS, else the usable
    cores shared among the job's processes on this machine (LOCAL_WORLD_SIZE, set by the launcher)."""
    if requested > 0:
        return requested
    env = os.environ if environ is None else environ
    value = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    local = env.get("LOCAL_WORLD_SIZE", "1")
    per_process = max(int(local), 1) if local.isdigit() else 1
    return max((cores if cores is not None else usable_cores()) // per_process, 1)


def cpu_pressure(path: Path = PRESSURE) -> float | None:
    """The share (%) of the last 10 s in which some runnable task waited for a CPU (Linux PSI), or None."""
    for line in (_read(path) or "").splitlines():
        if line.startswith("some "):
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            return float(fields["avg10"])
    return None


def contention(load: float, cores: int, threads: int, pressure: float | None = None) -> str | None:
    """A one-line warning when other jobs leave fewer free cores than `threads`; None when they fit.

    `load`: the 1-minute load average, which counts this process's own runnable main thread (so one is
    taken off); `pressure`: `cpu_pressure()`, quoted when known."""
    others = max(load - 1.0, 0.0)
    free = cores - others
    if threads <= 1 or free >= threads - 0.5:
        return None
    psi = f", CPU pressure {pressure:.0f}%" if pressure is not None else ""
    return (
        f"warning: load average {load:.1f} on {cores} usable cores{psi}: other jobs leave "
        f"~{max(free, 0):.1f} free for {threads} torch threads, which then wait on each other; "
        "with the CPUs shared, set the stage's threads to 1 (train.threads=1; threads=1 for eval) "
        "or fewer than the free cores"
    )


def quiet_openmp_wait(
    environ: MutableMapping[str, str] | None = None, load: float | None = None, cores: int | None = None
) -> None:
    """OMP_WAIT_POLICY=PASSIVE when other jobs already keep the cores busy and the user chose no policy.
    OpenMP reads it once, when torch loads, so call this before; `load` defaults to the 1-minute load
    average, `cores` to `usable_cores()`. The policy changes no result, only who waits how."""
    env = os.environ if environ is None else environ
    load = os.getloadavg()[0] if load is None else load
    cores = usable_cores() if cores is None else cores
    if "OMP_WAIT_POLICY" not in env and contention(load, cores, cores) is not None:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
