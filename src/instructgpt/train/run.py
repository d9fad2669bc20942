"""One training run around a stage's loop, written once for every training stage.

A stage module reads as its method (its data, its loss, its step); the plumbing around it is here:

    with open_run(out_dir, config, on_error) as run:          # the process, resume, the rejects file
        with run.reading():                                   # an error drops the rejects file
            records = read_all(inputs, Conversation, run.rejects)
            model, tokenizer = build_model(config, records, run.resume_from, run.dist)
            data = build_data(tokenizer, records, config, run.rejects)
        training = run.start(model, tokenizer, expect)        # AdamW, schedule, loop state: resumed or seeded
        with training.logging("sft"):                         # metrics.jsonl and the progress bar
            while training.state.step < steps:
                for micro in training.accumulate(micro_batches):   # DDP no_sync but on the last
                    ...forward through training.engine, backward...
                loss, grad_norm, lr = training.optimizer_step(loss_sum, n_targets)
                training.advance(tokens, loss, step_start)
                evaluation = ...when due...
                training.end_step(loss, evaluation is not None, lambda rate: {...}, lr=lr)
        report = SFTReport(..., **training.facts(*RUN_FACTS))  # the stage's typed report
        return training.finish(report, save)                  # save(model) on the main process, report

A stage may keep the reading, building and starting in a `_setup(inputs, config, run)` of its own, so
that `run()` is a few lines naming the method's steps (sft.py, reward.py, dpo.py).

The order is the one every stage had by hand: the resume is resolved (and a fresh run refuses a folder
with an earlier run's checkpoints) before the records are read; the model is seeded and built by the
stage; then activation checkpointing is set when asked (train.activation_checkpointing), the model
is sharded when asked (train.fsdp), the optimizer and schedule are made, and either
the checkpoint is loaded (weights, moments, schedule, this process's RNG states) or the process's
dropout stream is seeded with `seed + rank`. `Training.model` is always the model itself (the optimizer,
checkpoints and saving use it: no `module.` prefixes); with several processes and no sharding the
training forwards run through its DDP wrapper, `Training.engine`, made at the first step.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from instructgpt.config import LoopOptions, TrainOptions, to_dict
from instructgpt.data.decontam import STAGE, Decontaminator, contaminated
from instructgpt.distributed import Dist, all_reduce_sum, barrier, data_parallel, is_sharded, stage_process
from instructgpt.io import OnError, Rejects, read_typed
from instructgpt.metrics_log import MetricsLogger, read_metrics
from instructgpt.models import count_parameters, save_model
from instructgpt.records import Record
from instructgpt.reports import StageReport
from instructgpt.train.checkpoint import (
    Checkpointed,
    load_checkpoint,
    refuse_to_overwrite,
    resolve_resume,
    save_checkpoint,
)
from instructgpt.train.checkpointing import enable_activation_checkpointing
from instructgpt.train.launch_env import check_launch_env, launched_mixed_precision
from instructgpt.train.loop import LoopState, NonFiniteLossError, advance, check_finite, due
from instructgpt.train.optim import Schedule, clip, make_optimizer, make_scheduler
from instructgpt.train.precision import MAX_SKIPS_IN_A_ROW, Precision, resolve_mode
from instructgpt.train.progress import Progress, RateMeter, plot_losses
from instructgpt.train.rng import capture_rng, seed_everything
from instructgpt.train.sharding import gathered, shard_model, sharding_requested

# The report fields of a run, in the order pretrain and sft report them (see Training.facts).
RUN_FACTS = (
    "steps", "steps_this_run", "tokens_seen", "final_loss", "eval_start", "eval_loss", "best_eval_loss",
    "world_size", "sharded", "resumed_from", "train_seconds", "seconds_this_run", "read_errors",
)  # fmt: skip


class StageConfig(Protocol):
    """A training stage's config: its `train` options drive the run (all of it goes to the metric sinks)."""

    train: TrainOptions


R = TypeVar("R", bound=Record)
T = TypeVar("T")
S = TypeVar("S", bound=StageReport)


def read_all(
    inputs: Sequence[str | Path],
    kind: type[R],
    rejects: Rejects,
    hint: str = "",
    decontaminate: Decontaminator | None = None,
) -> list[R]:
    """Every `kind` record of `inputs` (any format that converts to one), less those sharing an n-gram with
    `decontaminate`'s evaluation files (rejected and counted); none at all stops the run, with `hint`
    after the message."""
    found = [
        record
        for raw, record in read_typed(inputs, kind, rejects)
        if not contaminated(decontaminate, record, raw.where, rejects)
    ]
    if not found:
        removed = rejects.counts[STAGE]
        also = f" ({removed} removed by decontamination)" if removed else ""
        raise ValueError(f"no {kind.__name__.lower()}s in {', '.join(map(str, inputs))}{also}{hint}")
    return found


@dataclass
class Run:
    """A training stage's run before its model exists: where it writes, its process, the rejects file
    and the checkpoint it resumes from (None: a fresh run)."""

    out_dir: Path
    config: StageConfig
    dist: Dist
    rejects: Rejects
    resume_from: Path | None
    started: float
    precision: Precision = field(default_factory=Precision)  # train.mixed_precision, resolved

    @property
    def options(self) -> TrainOptions:
        return self.config.train

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reading and preparing the data: on an error the rejects file is dropped, else closed."""
        try:
            yield
        except BaseException:
            self.rejects.abort()
            raise
        self.rejects.close()

    def start(
        self, model: nn.Module, tokenizer: Any, expect: dict[str, Any], options: LoopOptions | None = None
    ) -> Training:
        """`model` sharded when asked (`train.fsdp`), AdamW over it and its lr schedule (`options`, by
        default the stage's), then the loop state: the checkpoint's (which must match `expect`), or a
        fresh one with this process's dropout seeded."""
        opts = options or self.options
        if opts.activation_checkpointing:  # before sharding: FSDP2 wraps the checkpointed blocks
            enable_activation_checkpointing(model)
        if isinstance(opts, TrainOptions) and sharding_requested(opts.fsdp):  # PPO shards its own models
            shard_model(model, self.dist)
        precision = self.precision
        precision.check_weights(model, self.dist.main)
        optimizer = make_optimizer(model, opts)
        scheduler = make_scheduler(optimizer, opts)
        if self.resume_from is not None:
            state = load_checkpoint(
                self.resume_from, model, optimizer, scheduler, self.dist, expect, precision=precision
            )
        else:
            state = LoopState()
            seed_everything(opts.seed + self.dist.rank)  # the dropout stream of this process
        return Training(self, model, tokenizer, optimizer, scheduler, state, state.step, expect, precision)


@contextmanager
def open_run(out_dir: str | Path, config: StageConfig, on_error: OnError) -> Iterator[Run]:
    """The stage's process (stage_process) for the run, the resume resolved (`train.resume`; a fresh run
    refuses a folder holding an earlier run's checkpoints), the accelerate launch's options checked and
    the mixed precision resolved (launch_env, precision), and the rejects file (main process) opened."""
    check_launch_env()
    mode = resolve_mode(config.train.mixed_precision, launched_mixed_precision())
    with stage_process(config.train.threads) as dist:
        started, folder = time.perf_counter(), Path(out_dir)
        resume_from = resolve_resume(config.train.resume, folder / "checkpoints")
        refuse_to_overwrite(folder, resume_from)
        rejects = Rejects(on_error, folder / "rejects.jsonl" if dist.main else None)
        yield Run(folder, config, dist, rejects, resume_from, started, Precision.create(mode, dist.device))


@dataclass
class Training:
    """A run with its model: the optimizer, schedule and loop state, and the step's book-keeping
    (counters, metrics.jsonl, progress, checkpoints when due) while `logging` is open."""

    run: Run
    model: nn.Module  # what the optimizer trains and the checkpoints hold
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    state: LoopState
    first_step: int  # the step this run started at (0 unless resumed)
    expect: dict[str, Any]  # what a checkpoint must share with this run
    precision: Precision  # autocast and loss scaling (train.mixed_precision)
    logger: MetricsLogger = field(init=False)
    progress: Progress = field(init=False)
    window: RateMeter = field(init=False)  # tokens since the last metrics line
    run_tokens: int = field(init=False, default=0)  # tokens of this run, for the progress bar
    run_start: float = field(init=False, default=0.0)
    wrapped: dict[int, nn.Module] = field(init=False, default_factory=dict)  # DDP wrappers, by id(module)

    @property
    def dist(self) -> Dist:
        return self.run.dist

    @property
    def options(self) -> TrainOptions:
        return self.run.options

    @property
    def out_dir(self) -> Path:
        return self.run.out_dir

    @property
    def engine(self) -> nn.Module:
        """What the training forwards of `model` run through (`parallel(model)`)."""
        return self.parallel(self.model)

    def parallel(self, module: nn.Module) -> nn.Module:
        """What a training forward of `module` (the trained model, or a trained part of it) runs through, so
        that its backward sums the gradients over processes: a DDP wrapper (distributed.data_parallel, made
        on first use), or `module` itself with one process or when FSDP shards it (FSDP sums in backward).
        Evaluation and generation use the module itself."""
        if self.dist.world == 1 or is_sharded(module):
            return module
        if id(module) not in self.wrapped:
            self.wrapped[id(module)] = data_parallel(module, self.dist)
        return self.wrapped[id(module)]

    def accumulate(self, micro_batches: Sequence[T]) -> Iterator[T]:
        """The micro-batches of one optimizer step, in order: the backward of each but the last keeps its
        gradients on this process (DDP `no_sync`), the last one's sums the accumulated gradients over
        processes, overlapped with the backward. Forwards run through `engine`."""
        engine = self.engine
        for i, micro in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            with nullcontext() if last or engine is self.model else engine.no_sync():
                yield micro

    @contextmanager
    def logging(self, desc: str) -> Iterator[None]:
        """metrics.jsonl (on resume, cut back to the checkpoint's step) and the progress bar `desc`."""
        opts, dist = self.options, self.dist
        resumed = self.state.step if self.state.last_checkpoint else None
        self.logger = MetricsLogger(
            self.out_dir, dist.main, resumed, report_to=opts.report_to, run_config=to_dict(self.run.config)
        )
        self.progress = Progress(opts.steps, self.state.step, desc, dist.main)
        self.window, self.run_tokens, self.run_start = RateMeter(), 0, time.perf_counter()
        try:
            yield
        finally:
            self.logger.close()
            self.progress.close()

    def autocast(self) -> AbstractContextManager[Any]:
        """Around each forward that produces a loss: bf16/fp16 compute under train.mixed_precision."""
        return self.precision.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        """`loss.backward()`, scaled under fp16 mixed precision (the gradients are unscaled in the step)."""
        self.precision.backward(loss)

    def optimizer_step(self, loss_sum: torch.Tensor, n_targets: int) -> tuple[float, float, float]:
        """End of a step whose micro-batch gradients are in place, already summed over processes (by DDP
        or FSDP, in the last backward: see `accumulate`): stop on a non-finite loss or gradient norm, clip,
        step and schedule. `loss_sum` is this process's share of the step's loss times `n_targets`. Under
        fp16 the gradients are unscaled first, and a step whose gradients overflowed is skipped and counted
        instead (precision.py). Returns (loss, grad_norm, lr)."""
        model, dist, state, precision = self.model, self.dist, self.state, self.precision
        loss = float(all_reduce_sum(loss_sum, dist)) / n_targets
        check_finite(loss, state)
        precision.unscale(self.optimizer)
        grad_norm = clip(model, self.options.max_grad_norm)
        if not precision.overflowed(grad_norm):
            check_finite(grad_norm, state, "gradient norm")
        lr = self.scheduler.get_last_lr()[0]
        moved = precision.step(self.optimizer, grad_norm)
        if precision.skips_in_a_row >= MAX_SKIPS_IN_A_ROW:
            raise NonFiniteLossError(
                f"step {state.step + 1}: fp16 gradients overflowed {precision.skips_in_a_row} steps in a row "
                f"(loss scale now {precision.scale}): try train.mixed_precision=bf16 or a lower lr"
            )
        with warnings.catch_warnings():
            if not moved:  # the schedule follows the loop's steps, skipped ones too: torch's warning is moot
                warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`", UserWarning)
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm, lr

    def advance(self, tokens: int, loss: float, step_start: float) -> None:
        """Count the optimizer step just done (`tokens`: all processes') in the state and the meters."""
        advance(self.state, tokens, loss, time.perf_counter() - step_start)
        self.window.add(tokens)
        self.run_tokens += tokens

    def eval_due(self) -> bool:
        """Whether the held-out split is evaluated after this step: every `eval_every` and at the end."""
        return due(self.state.step, self.options.eval_every, self.options.steps)

    def end_step(
        self, loss: float, evaluated: bool, row: Callable[[float], dict[str, Any]], **shown: float
    ) -> None:
        """After an evaluation, or every `log_every` steps: the metrics line `row(tokens per second)`,
        which closes the window of losses it averages. Then the progress bar, and a checkpoint when due."""
        opts, state = self.options, self.state
        if evaluated or due(state.step, opts.log_every, opts.steps):
            self.logger.log({**row(self.window.rate()), **self.precision_row()})
            state.log_loss_sum, state.log_steps = 0.0, 0
        self.show(loss, **shown)
        self.checkpoint_when_due()

    def precision_row(self) -> dict[str, Any]:
        """The metrics line's mixed precision fields: none when off; the mode; under fp16 the loss scale
        and the steps skipped so far."""
        precision = self.precision
        if precision.mode == "no":
            return {}
        scaling = {"loss_scale": precision.scale, "skipped_steps": precision.skipped_steps}
        return {"mixed_precision": precision.mode, **(scaling if precision.scaler is not None else {})}

    def show(self, loss: float, **shown: float) -> None:
        self.progress.update(loss, self.run_tokens / (time.perf_counter() - self.run_start), **shown)

    def checkpoint_when_due(self) -> None:
        """A resumable checkpoint every `save_every` steps and at the end."""
        if due(self.state.step, self.options.save_every, self.options.steps):
            self.checkpoint()

    def checkpoint(self) -> None:
        """Save a resumable checkpoint of the step just done (with this process's RNG states) and remember
        it in the loop state, so that a later NaN/inf stop can name it."""
        saved = Checkpointed(
            self.model, self.optimizer, self.scheduler, self.tokenizer, self.expect, self.precision
        )
        root, keep = self.out_dir / "checkpoints", self.options.keep_checkpoints
        path = save_checkpoint(root, saved, self.state, capture_rng(), self.dist, keep)
        self.state.last_checkpoint = str(path)

    def save_best(self, merge_lora: bool) -> None:
        """The model as it is now to `best/` (gathered on the main process when sharded)."""
        best = gathered(self.model, self.dist)
        if best is not None:
            save_model(best, self.tokenizer, self.out_dir / "best", merge_lora=merge_lora)

    def facts(self, *keys: str) -> dict[str, Any]:
        """The report fields every stage words alike, those named by `keys`, in that order (keyword
        arguments of the stage's report)."""
        state, dist, resume_from = self.state, self.dist, self.run.resume_from
        known: dict[str, Callable[[], Any]] = {
            "parameters": lambda: count_parameters(self.model)[0],
            "trainable_parameters": lambda: count_parameters(self.model)[1],
            "steps": lambda: state.step,
            "steps_this_run": lambda: state.step - self.first_step,
            "tokens_seen": lambda: state.tokens_seen,
            "final_loss": lambda: state.last_loss,
            "eval_start": lambda: state.eval_start,
            "eval_loss": lambda: state.last_eval,
            "best_eval_loss": lambda: state.best_eval,
            "world_size": lambda: dist.world,
            "sharded": lambda: is_sharded(self.model),
            "resumed_from": lambda: str(resume_from) if resume_from else None,
            "train_seconds": lambda: round(state.elapsed_s, 3),
            "seconds_this_run": lambda: round(time.perf_counter() - self.run.started, 3),
            "read_errors": lambda: self.run.rejects.counts.get("read_error", 0),
            "decontaminated": lambda: self.run.rejects.counts.get(STAGE, 0),
        }
        return {key: known[key]() for key in keys}

    def outputs(self, *names: str) -> dict[str, str]:
        """The report's `outputs`: each named file or folder of the run's folder."""
        return {name: str(self.out_dir / name) for name in names}

    def save_with_plot(self, model: nn.Module, title: str, merge_lora: bool = True) -> dict[str, str]:
        """`model` to `model/` with the tokenizer; the loss curve `loss_curve.png` as the report's `plot`."""
        save_model(model, self.tokenizer, self.out_dir / "model", merge_lora=merge_lora)
        rows = read_metrics(self.out_dir / "metrics.jsonl")
        return {"plot": plot_losses(rows, self.out_dir / "loss_curve.png", title)}

    def finish(
        self, report: S | None, save: Callable[[nn.Module], dict[str, Any]], kind: type[S] | None = None
    ) -> S:
        """On the main process: `save(the model, gathered when sharded)` writes the stage's outputs and
        returns report fields (plots) to set, then the report goes to its file. Every process waits here
        and returns the report (its folder set). A stage whose report only the main process builds (None on
        the others) names its type, `kind`: the other processes return the report the main process wrote."""
        final = gathered(self.model, self.dist)
        if final is not None:
            assert report is not None  # the main process builds the report
            report = dataclasses.replace(report, **save(final)).write(self.out_dir)
        barrier(self.dist)
        if report is None:
            assert kind is not None  # names the report the main process wrote
            report = kind.read(self.out_dir)
            if report is None:
                raise RuntimeError(f"the main process left no readable {kind.FILE} in {self.out_dir}")
        return dataclasses.replace(report, folder=self.out_dir)
