"""What a training run shows while it runs and draws when it ends: the progress bar or lines
(`Progress`), the tokens-per-second window (`RateMeter`), one `metrics.jsonl` line (`metrics_row`) and
the loss plots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from instructgpt.progress import Ticker, stderr_is_terminal
from instructgpt.train.loop import LoopState


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
    """Optimizer steps with loss, tokens/s and ETA: a tqdm bar on a terminal (or into a given `file`),
    else plain lines every few seconds (`instructgpt.progress.Ticker`); silent off the main process."""

    def __init__(
        self, total: int, initial: int = 0, desc: str = "train", enabled: bool = True, file: Any = None
    ) -> None:
        self.bar: Any = None
        self.ticker: Ticker | None = None
        if file is not None or stderr_is_terminal():
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit="step",
                dynamic_ncols=True,
                file=file,
                disable=not enabled,
            )
        else:
            self.ticker = Ticker(desc, "step", total, initial, show_rate=False, enabled=enabled)

    def update(self, loss: float, tokens_per_s: float, **extra: float) -> None:
        postfix = {"loss": f"{loss:.4f}", "tok/s": _si(tokens_per_s)}
        postfix.update({k: f"{v:.4g}" for k, v in extra.items()})
        if self.ticker is not None:
            self.ticker.update(1, **postfix)
            return
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        (self.ticker or self.bar).close()


def _si(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


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
