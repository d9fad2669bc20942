"""`metrics.jsonl`: one JSON object per logged step, written by training (`MetricsLogger`, which also
feeds TensorBoard when installed and W&B / MLflow when asked) and read back by plots and reports
(`read_metrics`). Nothing here imports torch until a TensorBoard writer is made."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
        self._sinks: list[_Sink] = []
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
            sink.log(scalars, row["step"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        for sink in self._sinks:
            sink.close()
        self._sinks = []


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


@dataclass(frozen=True)
class _Sink:
    """A tracker: `log(scalars, step)` per metrics line, `close()` when the run ends (it flushes)."""

    log: Callable[[dict[str, float], int], None]
    close: Callable[[], None]


def _sink(name: str, out_dir: Path, run_config: dict[str, Any] | None) -> _Sink:
    """W&B or MLflow; a clear error if it is asked for but missing or cannot start."""
    if name == "wandb":
        return _wandb(out_dir, run_config)
    if name == "mlflow":
        return _mlflow(run_config)
    raise ValueError(f"report_to: unknown sink {name!r}; expected wandb or mlflow")


def _wandb(out_dir: Path, run_config: dict[str, Any] | None) -> _Sink:
    """A W&B run whose files sit in OUT/wandb (`WANDB_MODE=offline` keeps them there, for `wandb sync`)."""
    try:
        import wandb
    except ImportError as err:
        raise ValueError("report_to wandb: the wandb package is not installed (pip install wandb)") from err
    run = wandb.init(dir=str(out_dir), config=run_config, resume="allow")  # WANDB_RUN_ID continues a run
    return _Sink(lambda scalars, step: run.log(scalars, step=step), run.finish)


def _mlflow(run_config: dict[str, Any] | None) -> _Sink:
    """An MLflow run at MLFLOW_TRACKING_URI (a server, or a local `file:` folder), the config as an
    artifact; a run already active (started by the caller) is logged to and left open."""
    try:
        import mlflow
    except ImportError as err:
        raise ValueError(
            "report_to mlflow: the mlflow package is not installed (pip install mlflow)"
        ) from err
    from mlflow.exceptions import MlflowException

    own = mlflow.active_run() is None
    try:
        run = mlflow.start_run() if own else mlflow.active_run()
    except MlflowException as err:
        raise ValueError(f"report_to mlflow: {err.message}") from err
    run_id = run.info.run_id
    if run_config:
        mlflow.log_dict(run_config, "config.json", run_id=run_id)

    def log(scalars: dict[str, float], step: int) -> None:
        mlflow.log_metrics(scalars, step=step, run_id=run_id)

    def close() -> None:
        if own:
            mlflow.end_run()

    return _Sink(log, close)
