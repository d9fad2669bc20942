"""The `demo-claims` recipe stage: each claim of the InstructGPT method checked on a run's own outputs.

A claim is a statement about one stage, a measured value with its 95% interval and n, the target it is
held to, and whether it held (None: the run has no such stage or measurement). All are read from files
the stages wrote; nothing is recomputed with a model:

- `sft_vs_base[lang,split]`: task score of SFT minus its pretrained base on held-out templates and
  the held-out family, paired; held when the interval lies above 0.
- `augmented_vs_raw[lang,split]`: the same for B (instruction-augmented) minus A (raw) at equal
  tokens; reported either way (higher, lower or no difference).
- `reward_accuracy`: the final reward model's pairwise accuracy on held-out comparisons (Wilson);
  held at ≥ the target with n ≥ `min_pairs`.
- `reward_accuracy[kind]`: the same per kind of comparison (`demo.preferences`); held when the
  interval lies above chance (0.5): which preferences the reward model learned.
- `ppo_win_rate`, `dpo_win_rate`: reward-model win rate against the SFT start (Wilson, a tie is ½);
  held at ≥ the target with the interval's low end above 0.5.
- `ppo_score_rises`: mean RM score of the last third of the iterations minus the first third, with a
  Welch 95% interval (each iteration's mean is one observation: iterations answer different prompts,
  so their scores scatter); held when the interval lies above 0.
- `ppo_kl_bounded`: KL to the SFT policy at the last iteration, nats per answer; `ppo_kl_per_token`
  the same per answer token (reported).
- `ppo_entropy_bounded`: policy entropy at the last iteration over the first; ≤ 1.25.
- `alignment_tax[no ptx]`, `alignment_tax[ptx]`: task score of each policy minus SFT; reported.
- `ptx_reduces_tax`: task score of PPO-ptx minus PPO without ptx; held when the interval is above 0.

The task score of an example is its family's main metric, in [0, 1]: F1 for QA with a span or open
answer, accuracy of the parsed answer for classification, ROUGE-L for the rest (eval's per-example
`scores`), so one number pools every family. Paired differences are the bootstrap of eval (`stats`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instructgpt.config import DemoClaimsConfig
from instructgpt.demo.preferences import comparison_kind
from instructgpt.evaluate import stats
from instructgpt.io import OnError
from instructgpt.reports.demo import Claim, DemoClaimsReport
from instructgpt.reports.inference import EvalReport
from instructgpt.reports.training import RewardReport

TASK_METRICS = ("f1", "accuracy", "rougeL")  # an example's task score: the first of these it has
HELDOUT_SPLITS = ("heldout_template", "heldout_family")
ENTROPY_GROWTH = 1.25  # entropy "runs away" above this multiple of its starting value


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: DemoClaimsConfig, on_error: OnError = "fail"
) -> DemoClaimsReport:
    """Check every claim on the folders of `config` into `out_dir/claims.json` (`inputs` is unused)."""
    claims = [
        *_sft_claims(config),
        _reward_claim(config),
        *_reward_kind_claims(config),
        *_ppo_claims(config),
        *_tax_claims(config),
        _win_rate_claim(config, config.dpo_model, config.dpo_win_rate, "dpo_win_rate"),
    ]
    report = DemoClaimsReport(
        claims=claims,
        output=str(Path(out_dir) / DemoClaimsReport.FILE),
        held=sum(c.held is True for c in claims),
        checked=sum(c.held is not None for c in claims),
    )
    return report.write(out_dir)


# --------------------------------------------------------------------------------- eval's examples


def task_scores(eval_dir: str, model: str) -> list[tuple[str, str, float]] | None:
    """(lang, split, task score) of each example of `model`'s generations file, in file order; None when
    there is no eval folder or the model was not evaluated."""
    path = Path(eval_dir) / f"generations-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}.jsonl"
    if not eval_dir or not path.is_file():
        return None
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        metric = next(m for m in TASK_METRICS if m in row["scores"])
        out.append((row["lang"], row["split"], float(row["scores"][metric])))
    return out


def _paired(
    config: DemoClaimsConfig, a: str, b: str, keep: Any, name: str, statement: str, positive: bool
) -> Claim:
    """Task score of a minus b on the examples `keep(lang, split)` selects; held (when `positive`) if the
    interval lies above 0."""
    scores_a, scores_b = task_scores(config.eval, a), task_scores(config.eval, b)
    if scores_a is None or scores_b is None:
        return Claim(name, statement, None, None, None, 0, "interval > 0" if positive else "reported", None)
    index = [i for i, (lang, split, _) in enumerate(scores_a) if keep(lang, split)]
    diff = stats.paired_mean_difference(
        [scores_a[i][2] for i in index], [scores_b[i][2] for i in index], config.seed, config.resamples
    )
    held = diff.low > 0 if positive else None
    target = "interval > 0" if positive else "reported"
    return Claim(name, statement, *(_r(x) for x in diff), len(index), target, held)


def _sft_claims(config: DemoClaimsConfig) -> list[Claim]:
    claims = []
    for lang in ("en", "zh"):
        for split in HELDOUT_SPLITS:

            def keep(lng: str, spl: str, lang: str = lang, split: str = split) -> bool:
                return lng == lang and spl == split

            where = f"{lang}, {split.replace('_', ' ')}"
            claims.append(_paired(
                config, config.sft, config.base, keep, f"sft_vs_base[{lang},{split}]",
                f"SFT beats its pretrained base ({where}): task score difference", True,
            ))  # fmt: skip
            claims.append(_paired(
                config, config.sft, config.raw, keep, f"augmented_vs_raw[{lang},{split}]",
                f"B (augmented) against A (raw) after SFT ({where}): task score difference", False,
            ))  # fmt: skip
    return claims


def _tax_claims(config: DemoClaimsConfig) -> list[Claim]:
    def every(_lang: str, _split: str) -> bool:
        return True

    return [
        _paired(config, config.ppo_no_ptx_model, config.sft, every, "alignment_tax[no ptx]",
                "PPO without ptx against SFT: task score difference (negative: a tax)", False),
        _paired(config, config.ppo_model, config.sft, every, "alignment_tax[ptx]",
                "PPO-ptx against SFT: task score difference (negative: a tax)", False),
        _paired(config, config.ppo_model, config.ppo_no_ptx_model, every, "ptx_reduces_tax",
                "ptx reduces the tax: task score of PPO-ptx minus PPO without ptx", True),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- reward, win rates, PPO


def _reward_claim(config: DemoClaimsConfig) -> Claim:
    name, statement = "reward_accuracy", "the reward model ranks held-out comparisons right"
    target = f">= {config.reward_accuracy} with n >= {config.min_pairs}"
    report = RewardReport.read(config.reward) if config.reward else None
    rows = [r for r in _metrics(config.reward) if "eval_accuracy" in r]
    if report is None or not rows or not report.eval_pairs:
        return Claim(name, statement, None, None, None, 0, target, None)
    accuracy, n = rows[-1]["eval_accuracy"], report.eval_pairs
    low, high = stats.wilson_interval(accuracy * n, n)
    held = accuracy >= config.reward_accuracy and n >= config.min_pairs
    return Claim(name, statement, _r(accuracy), _r(low), _r(high), n, target, held)


def _reward_kind_claims(config: DemoClaimsConfig) -> list[Claim]:
    """The reward model's held-out pairwise accuracy per kind of comparison (demo.preferences), from the
    reward stage's eval_scores.jsonl: which preferences it learned."""
    path = Path(config.reward) / "eval_scores.jsonl"
    if not config.reward or not path.is_file():
        return []
    counts: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        tally = counts.setdefault(comparison_kind(row["id"]) or "other", [0, 0])
        tally[0], tally[1] = tally[0] + row["correct"], tally[1] + row["pairs"]
    claims = []
    for kind, (correct, pairs) in sorted(counts.items()):
        if pairs:
            low, high = stats.wilson_interval(correct, pairs)
            statement = f"reward model, held-out pairs of kind {kind}: accuracy"
            claims.append(Claim(f"reward_accuracy[{kind}]", statement, _r(correct / pairs), _r(low), _r(high),
                                pairs, "low end > 0.5 (chance)", low > 0.5))  # fmt: skip
    return claims


def _win_rate_claim(config: DemoClaimsConfig, model: str, target_rate: float, name: str) -> Claim:
    statement, target = f"{model} beats {config.sft} by the reward model", f">= {target_rate}, low end > 0.5"
    report = EvalReport.read(config.eval) if config.eval else None
    rows = [
        r for r in (report.win_rates if report else [])
        if r["a"] == model and r["b"] == config.sft and r["judge"] == "reward_model" and r["n"]
    ]  # fmt: skip
    if not rows:
        return Claim(name, statement, None, None, None, 0, target, None)
    row = rows[0]
    held = row["win_rate"] >= target_rate and row["ci_low"] > 0.5
    return Claim(name, statement, row["win_rate"], row["ci_low"], row["ci_high"], row["n"], target, held)


def _ppo_claims(config: DemoClaimsConfig) -> list[Claim]:
    rows = _metrics(config.ppo)
    win = _win_rate_claim(config, config.ppo_model, config.ppo_win_rate, "ppo_win_rate")
    if len(rows) < 2:
        return [win]
    third = max(1, len(rows) // 3)
    rise = welch_difference([r["score"] for r in rows[-third:]], [r["score"] for r in rows[:third]])
    kl, per_token = rows[-1]["kl"], rows[-1].get("kl_per_token")
    growth = rows[-1]["entropy"] / rows[0]["entropy"] if rows[0]["entropy"] else None
    return [
        win,
        Claim("ppo_score_rises", f"PPO-ptx mean RM score, last {third} iterations minus first {third}",
              *(_r(x) for x in rise), len(rows), "interval > 0", rise.low > 0),
        Claim("ppo_kl_bounded", "PPO-ptx KL to SFT at the last iteration, nats per answer",
              _r(kl), None, None, len(rows), f"<= {config.kl_bound}", kl <= config.kl_bound),
        Claim("ppo_kl_per_token", "the same KL per answer token", _r(per_token), None, None, len(rows),
              "reported", None),
        Claim("ppo_entropy_bounded", "PPO-ptx policy entropy, last iteration over the first",
              _r(growth), None, None, len(rows), f"<= {ENTROPY_GROWTH}",
              None if growth is None else growth <= ENTROPY_GROWTH),
    ]  # fmt: skip


def welch_difference(a: Sequence[float], b: Sequence[float]) -> stats.Difference:
    """mean(a) - mean(b) of two independent samples with the normal 95% interval of Welch's standard
    error, sqrt(var(a)/n_a + var(b)/n_b) (sample variances; a sample of one contributes 0)."""

    def var(x: Sequence[float]) -> float:
        m = sum(x) / len(x)
        return sum((v - m) ** 2 for v in x) / (len(x) - 1) if len(x) > 1 else 0.0

    diff = sum(a) / len(a) - sum(b) / len(b)
    half = stats.Z95 * (var(a) / len(a) + var(b) / len(b)) ** 0.5
    return stats.Difference(diff, diff - half, diff + half)


def _metrics(folder: str) -> list[dict[str, Any]]:
    """The training rows (step ≥ 1) of a stage's metrics.jsonl; [] when there is none."""
    path = Path(folder) / "metrics.jsonl"
    if not folder or not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("step", 0) >= 1]


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
