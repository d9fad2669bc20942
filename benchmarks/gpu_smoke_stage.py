"""benchmarks/gpu_smoke.sh's Python half: run one stage and record its peak GPU memory, or summarise a run.

python benchmarks/gpu_smoke_stage.py run PEAKS/NAME -- sft DATA -o OUT key=value ...
    runs `instructgpt sft ...` in this process (under `accelerate launch` too: one file per rank) and
    writes PEAKS/NAME-rankR.json: the exit code and torch.cuda.max_memory_allocated() (null on CPU);
python benchmarks/gpu_smoke_stage.py summary RUN
    reads RUN/<stage>/metrics.jsonl and RUN/peaks/*.json into RUN/summary.json and RUN/summary.md:
    per stage, the mean tokens/s over its logged steps, the last loss and the peak memory per process.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from instructgpt.cli import main as cli_main

LOSS_KEYS = ("loss", "train_loss", "policy_loss")
STAGES = ["sft", "reward", "ppo", "dpo"]  # the summary's order


def run_stage(peak_file: Path, argv: list[str]) -> int:
    """`instructgpt ARGV` with CUDA's peak-memory counter reset first; its exit code."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    code = cli_main(argv)
    rank = os.environ.get("RANK", "0")
    peak = torch.cuda.max_memory_allocated() if cuda else None
    peak_file.parent.mkdir(parents=True, exist_ok=True)
    out = peak_file.with_name(f"{peak_file.name}-rank{rank}.json")
    out.write_text(json.dumps({"exit_code": code, "peak_bytes": peak, "argv": argv}) + "\n")
    return code


def stage_summary(stage_dir: Path, peaks: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput, last loss and peak memory of one stage folder."""
    path = stage_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    report_path = stage_dir / "train_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    rates = [r["tokens_per_s"] for r in rows if isinstance(r.get("tokens_per_s"), (int, float))]
    if not rates and report.get("train_seconds"):  # ppo logs no rate: its report's tokens over its time
        rates = [report["tokens_seen"] / report["train_seconds"]]
    train = [r for r in rows if any(k in r for k in LOSS_KEYS)]
    last = train[-1] if train else {}
    peak = [p["peak_bytes"] for p in peaks if p["peak_bytes"] is not None]
    return {
        "steps_logged": len(rows),
        "tokens_per_s": round(statistics.mean(rates), 1) if rates else None,
        "generated_tokens_per_s": _generation_rate(rows, report),
        "last_losses": {k: last[k] for k in (*LOSS_KEYS, "value_loss", "ptx_loss", "score") if k in last},
        "peak_gib_per_process": [round(p / 2**30, 2) for p in peak] or None,
        "exit_codes": [p["exit_code"] for p in peaks],
    }


def _generation_rate(rows: list[dict[str, Any]], report: dict[str, Any]) -> float | None:
    """PPO: answer tokens sampled per second of generation, over all processes (rollouts per iteration
    × mean response length / generation seconds)."""
    seconds = sum(r.get("generation_s", 0.0) for r in rows)
    if not seconds or not report.get("iterations"):
        return None
    per_iteration = report["rollouts"] / report["iterations"]
    return round(sum(per_iteration * r["response_length"] for r in rows) / seconds, 1)


def summarize(run: Path) -> dict[str, Any]:
    """RUN/summary.json and RUN/summary.md for every stage that left a peak file."""
    found = {p.name.rsplit("-rank", 1)[0] for p in (run / "peaks").glob("*-rank*.json")}
    names = sorted(found, key=lambda n: (STAGES.index(n) if n in STAGES else len(STAGES), n))
    summary = {"device": _device()}
    for name in names:
        peaks = [json.loads(p.read_text()) for p in sorted((run / "peaks").glob(f"{name}-rank*.json"))]
        summary[name] = stage_summary(run / name, peaks)
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    header = "| stage | tokens/s | generated tokens/s | peak GiB per process | last losses |"
    lines = [f"device: {summary['device']}", "", header]
    lines.append("| --- | --- | --- | --- | --- |")
    for name in names:
        s = summary[name]
        losses = ", ".join(f"{k} {v:.4g}" for k, v in s["last_losses"].items())
        row = [name, s["tokens_per_s"], s["generated_tokens_per_s"], s["peak_gib_per_process"], losses]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    (run / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def _device() -> str:
    if not torch.cuda.is_available():
        return "cpu"
    return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"] and sys.argv[3:4] == ["--"]:
        sys.exit(run_stage(Path(sys.argv[2]), sys.argv[4:]))
    elif sys.argv[1:2] == ["summary"] and len(sys.argv) == 3:
        print((Path(sys.argv[2]) / "summary.md").read_text() if summarize(Path(sys.argv[2])) else "")
    else:
        sys.exit(__doc__)
