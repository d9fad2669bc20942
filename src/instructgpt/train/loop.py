"""What every training loop shares, as plain functions and small dataclasses (no Trainer class).

A stage module (pretrain.py, sft.py, ...) writes its own loop top to bottom and calls these:

    dist = init_distributed()                       # torchrun / accelerate launch env, or one process
    optimizer, scheduler = make_optimizer(model, opts), make_scheduler(optimizer, opts)
    while state.step < opts.steps:
        rows, state.epoch, state.position = next_indices(n, global_rows, seed, state.epoch, state.position)
        for micro in this rank's micro-batches:     # shard_rows(...)
            (loss_sum / n_targets_of_the_whole_step).backward()
        sync_gradients(model, dist); grad_norm = clip(model, opts.max_grad_norm)
        check_finite(loss, state); optimizer.step(); scheduler.step(); optimizer.zero_grad()

Multi-process (DESIGN §5): plain `torch.distributed`, no DDP wrapper and no Accelerator. The launcher
(`torchrun`, or `accelerate launch` with a multi-process config: both set RANK / WORLD_SIZE /
MASTER_ADDR) starts N copies of the same command; `init_distributed` joins them (gloo on CPU, nccl on
GPU). Every process computes the same global data order and takes its own rows of each step
(`shard_rows`), so no sampler or data loader state exists beyond (epoch, position). Each micro-batch
loss is a token *sum* divided by the number of targets in the whole global step (every process knows
it: it sees the whole step's row list), so `sync_gradients` *sums* gradients over processes once per
optimizer step (after the last micro-batch; no `no_sync` bookkeeping) and the result equals one
process running the same global batch, whatever the split. With one process every collective here is
skipped. With `train.fsdp` the weights are sharded (sharding.py) and FSDP sums the gradients in backward.

A stage with a held-out split also evaluates it before its first step (`evaluate_start`): the starting
point is the step-0 record of metrics.jsonl and `eval_start` in the stage report. Evaluation runs in eval
mode and draws no random numbers, so it leaves the training run (and its exact resume) as it was; a
resumed run does not evaluate step 0 again, it keeps the record it finds.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from instructgpt.config import TrainOptions
from instructgpt.train.allocator import retain_freed_memory


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN or infinite; training stopped before the optimizer step."""


# ------------------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; `world == 1` is the plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # we initialised the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> Dist:
    """Join the job the launcher started (env RANK/WORLD_SIZE), or describe the single process.

    `device`: "cpu", "cuda"; None picks cuda when available. Each process uses cuda:LOCAL_RANK.
    """
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world == 1:
        return Dist(device=dev)
    owns = not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    rank = torch.distributed.get_rank()
    return Dist(rank, torch.distributed.get_world_size(), local_rank, dev, owns)


def close_distributed(dist: Dist) -> None:
    if dist.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch.distributed.barrier()


def all_reduce_sum(value: torch.Tensor, dist: Dist) -> torch.Tensor:
    """The sum of `value` over processes (a new tensor; `value` itself is left alone)."""
    value = value.detach().clone()
    if dist.world > 1:
        torch.distributed.all_reduce(value)
    return value


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 manages the model's parameters (train.fsdp; see sharding.py)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def broadcast_parameters(model: nn.Module, dist: Dist) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if dist.world > 1:
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)


def sync_gradients(model: nn.Module, dist: Dist, bucket_bytes: int = 2**25) -> None:
    """Sum gradients over processes, in flat buckets of one dtype (a parameter without grad counts 0)."""
    if dist.world == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:  # every process must send the same list of tensors
            p.grad = torch.zeros_like(p)
    for bucket in _buckets([p.grad for p in params], bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        torch.distributed.all_reduce(flat)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def _buckets(tensors: Sequence[torch.Tensor], bucket_bytes: int) -> Iterator[list[torch.Tensor]]:
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for t in group:
            bucket.append(t)
            size += t.numel() * t.element_size()
            if size >= bucket_bytes:
                yield bucket
                bucket, size = [], 0
        if bucket:
            yield bucket


# ----------------------------------------------------------------------------------------------- seeds


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch CPU and CUDA), as tensors and plain values."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    """Undo `capture_rng`: the next random draw equals the one the saved run made next."""
    random.setstate(_as_tuples(states["python"]))
    n = states["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(value: Any) -> Any:
    # random.setstate wants tuples; a round trip through some serialisers gives lists.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# ------------------------------------------------------------------------------- optimizer, schedule


def make_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.AdamW:
    """AdamW over trainable parameters; weight decay only on matrices (not biases, norms, scalars)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2]}, {"params": [p for p in params if p.ndim < 2]}]
    groups = [g | {"weight_decay": _weight_decay(g["params"], opts)} for g in groups if g["params"]]
    # fused: one kernel over all parameters instead of a dozen elementwise ops per tensor (CPU and CUDA).
    return torch.optim.AdamW(groups, lr=opts.lr, betas=(opts.betas[0], opts.betas[1]), fused=True)


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based): linear warmup, then decay.

    Warmup reaches 1 at step `warmup - 1`; cosine and linear decay reach `min_ratio` at step `total`.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1 - (1 - min_ratio) * progress
    raise ValueError(f"unknown schedule {schedule!r}; expected cosine, linear or constant")


def _weight_decay(params: Sequence[torch.Tensor], opts: TrainOptions) -> float:
    return opts.weight_decay if params[0].ndim >= 2 else 0.0


class Schedule(torch.optim.lr_scheduler.LambdaLR):
    """Warmup then cosine / linear / constant to `min_lr_ratio` (`lr_factor`); call `.step()` once per
    optimizer step. It keeps the TrainOptions it was made from (`options`; checkpoints store them).

    Loading a saved state (after the optimizer's, which carries the saved run's hyper-parameters) takes
    only the position in the schedule from it: the peak lr, betas and weight decay are put back to this
    run's `options`, so a resumed run uses the values it reports (TrainOptions says what may change)."""

    def __init__(self, optimizer: torch.optim.Optimizer, options: TrainOptions) -> None:
        self.options = options
        factor = partial(
            lr_factor,
            warmup=options.warmup_steps,
            total=options.steps,
            schedule=options.schedule,
            min_ratio=options.min_lr_ratio,
        )
        super().__init__(optimizer, factor)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "options"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        opts = self.options
        for group, factor in zip(self.optimizer.param_groups, self.lr_lambdas, strict=True):
            group["initial_lr"], group["lr"] = opts.lr, opts.lr * factor(self.last_epoch)
            group["betas"] = (opts.betas[0], opts.betas[1])
            group["weight_decay"] = _weight_decay(group["params"], opts)
        self.base_lrs = [group["initial_lr"] for group in self.optimizer.param_groups]
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def make_scheduler(optimizer: torch.optim.Optimizer, opts: TrainOptions) -> Schedule:
    """The lr schedule of `opts` over `optimizer` (see Schedule)."""
    return Schedule(optimizer, opts)


def clip(model: nn.Module, max_norm: float) -> float:
    """Clip gradients to a global L2 norm of `max_norm` (0: no clipping); returns the norm before."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    limit = max_norm if max_norm > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, limit)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # sharded: a DTensor


# ----------------------------------------------------------------------------------------- loop state


@dataclass
class LoopState:
    """Where a run is; saved in every checkpoint (as JSON) and restored on resume."""

    step: int = 0  # optimizer steps done
    tokens_seen: int = 0  # input tokens processed, all processes together
    epoch: int = 0  # current pass over the training rows
    position: int = 0  # rows of the current epoch's permutation already used
    best_eval: float | None = None  # of the evaluations after a step (the starting point is not a candidate)
    last_eval: float | None = None
    eval_start: dict[str, float] | None = None  # the held-out eval of the starting weights (step 0)
    last_checkpoint: str | None = None
    last_loss: float | None = None
    elapsed_s: float = 0.0  # training time over all runs that led here
    log_loss_sum: float = 0.0  # losses of the steps since the last metrics line (for its mean)
    log_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # a stage's own JSON state (e.g. PPO's KL coef)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def check_finite(value: float, state: LoopState, what: str = "loss") -> None:
    """Raise NonFiniteLossError naming the step and the last good checkpoint if `value` is NaN/inf."""
    if math.isfinite(value):
        return
    if state.last_checkpoint:
        kept = (
            f"the last good checkpoint is {state.last_checkpoint} (step {state.step} or earlier; "
            "it was not touched): resume from it with train.resume=auto and a lower lr or more warmup"
        )
    else:
        kept = "no checkpoint was written yet: lower the lr, add warmup or check the data and start again"
    raise NonFiniteLossError(
        f"step {state.step + 1}: the {what} is {value}; stopped before the optimizer step. {kept}."
    )


# ---------------------------------------------------------------------------------------- data order


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return tuple(torch.randperm(n, generator=generator).tolist())


def next_indices(n: int, count: int, seed: int, epoch: int, position: int) -> tuple[list[int], int, int]:
    """The next `count` row indices of a seeded per-epoch permutation of `n` rows, and the new
    (epoch, position). A step may run across an epoch boundary; resuming at (epoch, position) replays
    exactly what an unbroken run would have drawn.
    """
    if n <= 0:
        raise ValueError("no training rows to draw from")
    out: list[int] = []
    while len(out) < count:
        chunk = _permutation(n, seed, epoch)[position : position + count - len(out)]
        out.extend(chunk)
        position += len(chunk)
        if position >= n:
            epoch, position = epoch + 1, 0
    return out, epoch, position


def shard_rows(rows: Sequence[int], micro_batch: int, grad_accum: int, dist: Dist) -> list[list[int]]:
    """This process's micro-batches of one global step: micro-batch m of rank r is the slice
    `(m * world + r) * micro_batch` onward. `rows` has `micro_batch * grad_accum * world` items.
    """
    expected = micro_batch * grad_accum * dist.world
    if len(rows) != expected:
        raise ValueError(f"a step has {len(rows)} rows, expected {expected}")
    starts = ((m * dist.world + dist.rank) * micro_batch for m in range(grad_accum))
    return [list(rows[s : s + micro_batch]) for s in starts]


# ------------------------------------------------------------------------------------ metrics, progress


class MetricsLogger:
    """`metrics.jsonl` (one object per line) + TensorBoard when installed + W&B / MLflow when asked.

    Only the main process writes (`enabled`). On resume from step s, lines after s (written by the run
    that was stopped after its last checkpoint) are dropped, so the log reads as one unbroken run.
    """

    def __init__(
        self,
        out_dir: str | Path,
        enabled: bool = True,
        resume_step: int | None = None,
        report_to: Iterable[str] = (),
        run_config: dict[str, Any] | None = None,
    ) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._file: Any = None
        self._tb: Any = None
        self._sinks: list[Any] = []
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = read_metrics(self.path, max_step=resume_step) if resume_step is not None else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._tb = _tensorboard(self.path.parent / "tensorboard", resume_step)
        self._sinks = [_sink(name, self.path.parent, run_config) for name in report_to]

    def log(self, row: dict[str, Any]) -> None:
        """Write one record; `row["step"]` is required, other numeric fields become scalars."""
        if not self.enabled:
            return
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, row["step"])
        for sink in self._sinks:
            sink(scalars, row["step"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(path: str | Path, max_step: int | None = None) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (a line cut short by a kill is skipped), up to `max_step`."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and (max_step is None or row.get("step", 0) <= max_step):
            rows.append(row)
    return rows


def _tensorboard(log_dir: Path, resume_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed
        return None
    purge = resume_step + 1 if resume_step is not None else None
    return SummaryWriter(str(log_dir), purge_step=purge)


def _sink(name: str, out_dir: Path, run_config: dict[str, Any] | None) -> Any:
    """A `(scalars, step)` callable for W&B or MLflow; a clear error if it is asked for but missing."""
    if name == "wandb":
        try:
            import wandb
        except ImportError as err:
            raise ValueError("report_to wandb: the wandb package is not installed") from err
        run = wandb.init(dir=str(out_dir), config=run_config, resume="allow")
        return lambda scalars, step: run.log(scalars, step=step)
    if name == "mlflow":
        try:
            import mlflow
        except ImportError as err:
            raise ValueError("report_to mlflow: the mlflow package is not installed") from err
        if mlflow.active_run() is None:
            mlflow.start_run()
        if run_config:
            mlflow.log_dict(run_config, "config.json")
        return lambda scalars, step: mlflow.log_metrics(scalars, step=step)
    raise ValueError(f"report_to: unknown sink {name!r}; expected wandb or mlflow")


class RateMeter:
    """Tokens per second over the window since the last `rate()` call."""

    def __init__(self) -> None:
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rate(self) -> float:
        now = time.perf_counter()
        rate = self.tokens / max(now - self.start, 1e-9)
        self.tokens, self.start = 0, now
        return rate


class Progress:
    """A tqdm bar over optimizer steps with loss, tokens/s and ETA; silent off the main process
    and when stderr is not a terminal."""

    def __init__(
        self, total: int, initial: int = 0, desc: str = "train", enabled: bool = True, file: Any = None
    ) -> None:
        # A given `file` is always written to (tests, logs); stderr only when it is a terminal.
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
            file=file,
            disable=not enabled if file is not None else (True if not enabled else None),
        )

    def update(self, loss: float, tokens_per_s: float, **extra: float) -> None:
        postfix = {"loss": f"{loss:.4f}", "tok/s": _si(tokens_per_s)}
        postfix.update({k: f"{v:.4g}" for k, v in extra.items()})
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def write(self, message: str) -> None:
        if not self.bar.disable:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()


def _si(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


# ------------------------------------------------------------------------------------- stage helpers


def metrics_row(
    state: LoopState, lr: float, grad_norm: float, tokens_per_s: float, eval_loss: float | None, n_rows: int
) -> dict[str, Any]:
    """One `metrics.jsonl` line: the mean loss since the last line, and where the run is."""
    row: dict[str, Any] = {"step": state.step, "loss": state.log_loss_sum / max(state.log_steps, 1)}
    row |= {"lr": lr, "grad_norm": grad_norm, "tokens": state.tokens_seen}
    row |= {"tokens_per_s": round(tokens_per_s, 1), "epoch": round(state.epoch + state.position / n_rows, 4)}
    if eval_loss is not None:
        row["eval_loss"] = eval_loss
    return row


def evaluate_start(
    state: LoopState, logger: MetricsLogger, evaluate: Callable[[], dict[str, float]], held_out: bool
) -> None:
    """Before the first step of a run that has a held-out split (`held_out`): evaluate the starting weights
    (`evaluate` gives the metrics.jsonl fields: `eval_loss`, ...), log them as the step-0 record and keep
    them in `state`, so that the report of a resumed run has them too. A resumed run skips this."""
    if state.step > 0 or not held_out:
        return
    state.eval_start = evaluate()
    logger.log({"step": 0, "tokens": 0, "epoch": 0.0} | state.eval_start)


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, eval) indices of `n` items: a seeded `fraction` held out (at least one, never all)."""
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    n_eval = min(n - 1, max(1, round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:n_eval])
    return [i for i in range(n) if i not in held], sorted(held)


def plot_losses(rows: list[dict[str, Any]], path: Path, title: str) -> str:
    """Train (and eval) loss against step as a PNG; returns the path, or why there is none."""
    return plot_metrics(rows, path, title, "loss", [("loss", "train", "-"), ("eval_loss", "eval", "o-")])


def plot_metrics(
    rows: list[dict[str, Any]], path: Path, title: str, ylabel: str, series: list[tuple[str, str, str]]
) -> str:
    """Each (key, label, line style) of `series` against step as a PNG; the path, or why there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: matplotlib is not installed (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, style in series:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot([x for x, _ in points], [y for _, y in points], style, label=label)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)


@contextmanager
def stage_process(threads: int) -> Iterator[Dist]:
    """A stage's process for the duration of a run: joined to the job (if launched as one) and with
    `threads` torch threads (0 keeps torch's default); both are put back afterwards. Freed host memory
    is kept for reuse from here on (`allocator.retain_freed_memory`)."""
    retain_freed_memory()
    dist, before = init_distributed(), torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield dist
    finally:
        torch.set_num_threads(before)
        close_distributed(dist)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_sum: torch.Tensor,
    n_targets: int,
    state: LoopState,
    max_grad_norm: float,
    dist: Dist,
) -> tuple[float, float, float]:
    """End of a step whose micro-batch gradients are in place: sum them over processes, stop on a
    non-finite loss or gradient norm, clip, step and schedule. Returns (loss, grad_norm, lr)."""
    if not is_sharded(model):  # FSDP has summed them already, in backward
        sync_gradients(model, dist)
    loss = float(all_reduce_sum(loss_sum, dist)) / n_targets
    check_finite(loss, state)
    grad_norm = clip(model, max_grad_norm)
    check_finite(grad_norm, state, "gradient norm")
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm, lr


def advance(state: LoopState, tokens: int, loss: float, seconds: float) -> None:
    """Count a finished optimizer step in the loop state."""
    state.step += 1
    state.tokens_seen += tokens
    state.last_loss = loss
    state.log_loss_sum, state.log_steps = state.log_loss_sum + loss, state.log_steps + 1
    state.elapsed_s += seconds


def due(step: int, every: int, last: int) -> bool:
    """Whether something done every `every` steps (0: only at the end) is due after step `step` of `last`."""
    return step == last or (every > 0 and step % every == 0)
