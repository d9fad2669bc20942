"""Resumable checkpoints: atomic writes, keep-last-k, and exact restore of a run's every piece of state.

A checkpoint is a folder `checkpoints/step-00000040/` holding

    model.pt        the model's full state dict        (gathered on the main process when sharded)
    optimizer.pt    the optimizer's full state dict    (AdamW moments and step counts, by parameter name)
    scheduler.pt    scheduler.state_dict()             (the lr schedule's position)
    rng-rank{r}.pt  python / numpy / torch RNG states  (one per process: dropout differs per rank)
    precision.pt    with mixed precision: its mode, the fp16 GradScaler's state and the skipped steps
    state.json      LoopState: step, tokens, epoch + position in the data order, eval bests
    meta.json       parameter names and shapes, what the stage says must not change on resume, and the
                    run's TrainOptions (`train`)
    tokenizer/      the tokenizer, when given (so a resumed run tokenizes exactly as before)

It is written into `step-N.tmp`, each file fsynced, then renamed to `step-N` and the parent folder
fsynced: a save killed at any point leaves at most a stale `.tmp` folder (removed by the next save and
ignored by `latest_checkpoint`), never a damaged `step-N`. A checkpoint pruned is renamed to a `.tmp`
name before it is deleted, so a kill mid-prune leaves nothing that looks like a checkpoint either; the
next save also removes a `step-N` without state.json (left by a version that deleted in place). The data
order is a seeded permutation per epoch (loop.next_indices), so (epoch, position) in state.json is all it
takes to replay the data.

On resume the run's TrainOptions are compared with the checkpoint's (see config.TrainOptions): a changed
seed or eval_fraction is refused; so is a changed global batch (batch_size × grad_accum × processes: the
rows of one step, which fix the data order) unless `train.resume_inexact` (then it is warned about), while
batch_size or grad_accum changed with the global batch kept (another number of processes) is applied;
any other change is applied and printed. A process's missing RNG file is
refused unless `train.resume_inexact` as well.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instructgpt.config import TrainOptions
from instructgpt.distributed import Dist, barrier
from instructgpt.train.loop import LoopState
from instructgpt.train.optim import Schedule
from instructgpt.train.precision import Precision
from instructgpt.train.rng import restore_rng
from instructgpt.train.sharding import load_model_state, load_optimizer_state, model_state, optimizer_state

_NAME = re.compile(r"^step-(\d+)$")
FORMAT = 2  # 2: optimizer state keyed by parameter name
# TrainOptions a resume must keep: the split and the data order; those whose product with the number of
# processes (the global batch) an exact resume needs (kept unless `resume_inexact`); those never compared.
# Any other change is applied.
FIXED_FIELDS = ("seed", "eval_fraction")
EXACT_FIELDS = ("batch_size", "grad_accum")
UNCOMPARED_FIELDS = ("resume", "resume_inexact")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or was made for a different model or setup."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


@dataclass(frozen=True)
class Checkpointed:
    """What a checkpoint saves of a run besides its loop state and RNG states: the model, its optimizer
    and schedule, the tokenizer (saved beside them, when given) and what a resume must share (`expect`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    tokenizer: Any = None
    expect: dict[str, Any] = field(default_factory=dict)
    precision: Precision | None = None


def save_checkpoint(
    root: str | Path,
    run: Checkpointed,
    state: LoopState,
    rng_states: dict[str, Any],
    dist: Dist | None = None,
    keep_last: int = 3,
) -> Path:
    """Write `root/step-N` atomically (every process calls this; each writes its RNG file) and
    delete all but the newest `keep_last` checkpoints. Returns the checkpoint folder."""
    dist = dist or Dist()
    root = Path(root)
    final = root / checkpoint_name(state.step)
    tmp = final.with_name(final.name + ".tmp")
    if dist.main:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
        tmp.mkdir()
    barrier(dist)
    _write(lambda f: torch.save(rng_states, f), tmp / f"rng-rank{dist.rank}.pt")
    model = run.model
    weights, moments = model_state(model), optimizer_state(model, run.optimizer)  # collectives when sharded
    barrier(dist)
    if dist.main:
        tensors = {"model": weights, "optimizer": moments, "scheduler": run.scheduler.state_dict()}
        if run.precision is not None and run.precision.mode != "no":
            tensors["precision"] = run.precision.state_dict()
        meta = {
            "model_class": type(model).__name__,
            "world_size": dist.world,
            "expect": _jsonable(run.expect),
            "train": _train_options(run.scheduler),
        }
        _write_main_files(tmp, meta, tensors, state, run.tokenizer)
        _replace_dir(tmp, final)
        _prune(root, keep_last)
    barrier(dist)
    return final


def _remove_stale(root: Path) -> None:
    """What a killed save or prune left: `.tmp` folders, and `step-N` folders without state.json."""
    for path in root.iterdir():
        incomplete = _NAME.match(path.name) and not (path / "state.json").is_file()
        if path.name.endswith(".tmp") or incomplete:
            shutil.rmtree(path, ignore_errors=True)


def _train_options(scheduler: Any) -> dict[str, Any] | None:
    return dataclasses.asdict(scheduler.options) if isinstance(scheduler, Schedule) else None


def _write_main_files(
    tmp: Path, meta: dict[str, Any], tensors: dict[str, Any], state: LoopState, tokenizer: Any
) -> None:
    """model.pt, optimizer.pt, scheduler.pt from `tensors`, then tokenizer, meta.json and state.json."""
    for name, value in tensors.items():
        _write(lambda f, value=value: torch.save(value, f), tmp / f"{name}.pt")
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        for path in (tmp / "tokenizer").iterdir():
            _fsync(path)
    shapes = {name: list(t.shape) for name, t in tensors["model"].items()}
    meta = {"format": FORMAT, **meta, "shapes": shapes}
    _write_text(tmp / "meta.json", json.dumps(meta, indent=1))
    _write_text(tmp / "state.json", json.dumps(state.to_dict(), indent=1))  # written last
    _fsync(tmp)


def _write(save: Any, path: Path) -> None:
    """Call `save(file)` on `path`, then fsync it: the bytes are on disk before the rename."""
    with open(path, "wb") as f:
        save(f)
        f.flush()
        os.fsync(f.fileno())


def _write_text(path: Path, text: str) -> None:
    _write(lambda f: f.write(text.encode("utf-8")), path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; an existing `final` (the same step saved again) is moved aside first."""
    old = final.with_name(final.name + ".old.tmp")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _prune(root: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` checkpoints, each renamed to `.tmp` first (see above)."""
    for path in list_checkpoints(root)[: -max(keep_last, 1)]:
        doomed = path.with_name(path.name + ".pruned.tmp")
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root` (or `root/checkpoints`), oldest first."""
    root = _checkpoints_dir(Path(root))
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and (path / "state.json").is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in a run folder (or its `checkpoints/`), or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def _checkpoints_dir(path: Path) -> Path:
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def resolve_resume(resume: str, out_dir: str | Path) -> Path | None:
    """`train.resume`: "" → None (fresh run), "auto" → the latest checkpoint or None, else a folder."""
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(out_dir)
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise CheckpointError(f"train.resume={resume}: not a checkpoint folder (no state.json in it)")
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    dist: Dist | None = None,
    expect: dict[str, Any] | None = None,
    precision: Precision | None = None,
) -> LoopState:
    """Restore model, optimizer, scheduler, `precision` (the fp16 loss scale, when saved) and this
    process's RNG states from `path`; returns the LoopState. A checkpoint made for other shapes or
    another `expect` raises CheckpointError.

    With a `Schedule` (optim.make_scheduler) the run's TrainOptions are its `options`: they are compared
    with the checkpoint's (refused or applied, see the module docstring) and they, not the checkpoint's,
    set the lr, betas and weight decay from here on."""
    dist = dist or Dist()
    path = Path(path)
    meta = _read_json(path / "meta.json")
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {meta.get('format')}, this version reads format {FORMAT}; "
            "resume it with the instructgpt version that wrote it, or start a new output folder"
        )
    _check_shapes(path, meta.get("shapes", {}), model)
    options = scheduler.options if isinstance(scheduler, Schedule) else None
    _check_train(path, meta.get("train"), int(meta.get("world_size", 1)), options, dist)
    _check_expect(path, meta.get("expect", {}), expect or {})
    rng = _rng_file(path, int(meta.get("world_size", 1)), options, dist)
    load_model_state(model, _load(path / "model.pt", dist.device))
    if optimizer is not None:
        load_optimizer_state(model, optimizer, _load(path / "optimizer.pt", dist.device))
    if scheduler is not None:
        scheduler.load_state_dict(_load(path / "scheduler.pt", dist.device))
    if precision is not None and (path / "precision.pt").is_file():
        precision.load_state_dict(_load(path / "precision.pt", torch.device("cpu")))
    if rng is not None:
        restore_rng(_load(rng, torch.device("cpu")))
    else:  # a rank the saved run did not have (or resume_inexact): it cannot replay its old dropout
        torch.manual_seed(int(meta.get("world_size", 1)) * 7919 + dist.rank)
    state = LoopState.from_dict(_read_json(path / "state.json"))
    state.last_checkpoint = str(path)
    return state


def _check_train(
    path: Path, saved: dict[str, Any] | None, saved_world: int, options: TrainOptions | None, dist: Dist
) -> None:
    """Refuse a change to FIXED_FIELDS, or to the global batch without `resume_inexact`; print the others."""
    if saved is None or options is None:
        return
    here = {k: _jsonable(v) for k, v in dataclasses.asdict(options).items() if k not in UNCOMPARED_FIELDS}
    changed = {
        k: f"train.{k} = {json.dumps(v)} (the checkpoint's run had {json.dumps(saved[k])})"
        for k, v in here.items()
        if k in saved and saved[k] != v
    }
    inexact = _global_batch(saved, saved_world) != _global_batch(here, dist.world)
    breaks = inexact and not options.resume_inexact
    refused = [k for k in changed if k in FIXED_FIELDS or (k in EXACT_FIELDS and breaks)]
    if refused:
        raise CheckpointError(
            f"{path}: cannot resume with {'; '.join(changed[k] for k in refused)}. A resume keeps "
            f"{' and '.join(FIXED_FIELDS)} (the split and the data order), and the global batch "
            "(batch_size × grad_accum × processes) unless train.resume_inexact=true (an exact resume needs "
            "it): resume with the checkpoint's values, or start a new output folder."
        )
    for key, text in changed.items() if dist.main else ():
        what = "warning: the resume is not exact" if key in EXACT_FIELDS and inexact else "applied"
        print(f"resume from {path.name}: {text}: {what}", file=sys.stderr)


def _global_batch(train: dict[str, Any], world: int) -> int | None:
    """Rows per optimizer step over all processes (None for a loop without batch_size / grad_accum)."""
    if not all(k in train for k in EXACT_FIELDS):
        return None
    return int(train["batch_size"]) * int(train["grad_accum"]) * world


def _rng_file(path: Path, saved_world: int, options: TrainOptions | None, dist: Dist) -> Path | None:
    """This process's RNG file, or None for a rank the saved run did not have. A file missing for a rank
    it had is refused unless `resume_inexact` (then the rank starts a fresh RNG stream, with a warning)."""
    rng = path / f"rng-rank{dist.rank}.pt"
    if rng.is_file() or dist.rank >= saved_world:
        return rng if rng.is_file() else None
    if options is None or not options.resume_inexact:
        raise CheckpointError(
            f"{rng} is missing: without it this process cannot replay its random numbers (dropout, "
            "sampling) and the resume would not be exact. Resume from another checkpoint, pass "
            "train.resume_inexact=true to go on with fresh random numbers, or start a new output folder."
        )
    message = f"{rng.name} is missing, this process draws fresh random numbers: the resume is not exact"
    print(f"resume from {path.name}: warning: {message}", file=sys.stderr)
    return None


def _load(path: Path, device: torch.device) -> Any:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a damaged file fails in many ways: EOFError, IndexError, UnpicklingError...
        raise CheckpointError(unreadable_message(path, err)) from err


def unreadable_message(path: Path, err: Exception) -> str:
    """Why torch.load(weights_only=True) failed on `path`: refused objects, or a damaged file."""
    if isinstance(err, pickle.UnpicklingError) and "Weights only load failed" in str(err):
        return (
            f"{path}: refused: it holds something other than tensors and plain values (a pickle that could "
            "run code when loaded); load only files from sources you trust"
        )
    return f"{path}: cannot read this file (damaged, or not what it should be): {type(err).__name__}: {err}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint file: {err}") from err


def _check_shapes(path: Path, saved: dict[str, list[int]], model: nn.Module) -> None:
    here = {name: list(t.shape) for name, t in model.state_dict().items()}
    problems = [f"{n} is missing here" for n in saved if n not in here]
    problems += [f"{n} is not in the checkpoint" for n in here if n not in saved]
    problems += [
        f"{n} is {tuple(saved[n])} there, {tuple(shape)} here"
        for n, shape in here.items()
        if n in saved and saved[n] != shape
    ]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CheckpointError(
            f"{path} was written for a different model: {'; '.join(problems[:5])}{more}. "
            "Resume with the model options the checkpoint was made with, or start a new output folder."
        )


def _check_expect(path: Path, saved: dict[str, Any], expect: dict[str, Any]) -> None:
    for key, value in expect.items():
        if key in saved and saved[key] != _jsonable(value):
            raise CheckpointError(
                f"{path} was made with {key} = {json.dumps(saved[key])}, this run has "
                f"{json.dumps(_jsonable(value))}. Resume with the same setting, or start a new output folder."
            )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def refuse_to_overwrite(out_dir: Path, resume_from: Path | None) -> None:
    """A fresh run must not mix with the checkpoints of an earlier one in the same folder."""
    found = list_checkpoints(out_dir / "checkpoints")
    if resume_from is None and found:
        raise ValueError(
            f"{out_dir} holds checkpoints of an earlier run (latest {found[-1].name}): pass "
            "train.resume=auto to continue it, or choose a new output folder"
        )
