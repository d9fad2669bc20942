"""demo.claims: each claim read from hand-made stage outputs, against hand-worked values."""

from __future__ import annotations

from pathlib import Path

import pytest

from instructgpt.demo.claims import DemoClaimsConfig, run, task_scores, welch_difference
from instructgpt.evaluate.stats import wilson_interval
from instructgpt.io import write_jsonl
from instructgpt.reports.demo import DemoClaimsReport
from instructgpt.reports.inference import EvalReport
from instructgpt.reports.training import RewardReport


def generations(folder: Path, model: str, scores: list[dict], langs: list[str], splits: list[str]) -> None:
    rows = [{"id": f"e{i}", "lang": lang, "split": split, "scores": s}
            for i, (s, lang, split) in enumerate(zip(scores, langs, splits, strict=True))]  # fmt: skip
    write_jsonl(folder / f"generations-{model.replace('+', '_')}.jsonl", rows)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    ev, rm, ppo, ppo0 = (tmp_path / n for n in ("eval", "reward", "ppo", "ppo_no_ptx"))
    for folder in (ev, rm, ppo, ppo0):
        folder.mkdir()
    langs = ["en", "en", "zh", "zh"] * 2
    splits = ["heldout_template", "heldout_family"] * 4

    # one example of each kind of task score: f1 first, then accuracy, then rougeL
    def scored(values: list[float]) -> list[dict]:
        kinds = (
            {"exact_match": 0.0, "f1": None},
            {"accuracy": None, "accuracy_ranked": 1.0},
            {"rougeL": None},
        )
        out = []
        for i, v in enumerate(values):
            row = dict(kinds[i % 3])
            row[next(k for k, x in row.items() if x is None)] = v
            out.append(row | {"ref_nll": 3.0})
        return out

    generations(ev, "B-SFT", scored([0.5] * 8), langs, splits)
    generations(ev, "B-pretrained", scored([0.1] * 8), langs, splits)
    generations(ev, "A-SFT", scored([0.5, 0.4] * 4), langs, splits)
    generations(ev, "B+PPO-ptx", scored([0.45] * 8), langs, splits)
    generations(ev, "B+PPO", scored([0.3] * 8), langs, splits)
    win = {"b": "B-SFT", "judge": "reward_model", "n": 100}
    win_rates = [
        win | {"a": "B+PPO-ptx", "win_rate": 0.8, "ci_low": 0.71, "ci_high": 0.87},
        win | {"a": "B+DPO", "win_rate": 0.6, "ci_low": 0.5, "ci_high": 0.69},
    ]
    EvalReport([], [], [], [], [], win_rates, [], {}, 1.0, [], 0, {}).write(ev)
    RewardReport(
        inputs=[], model="tiny-gpt", lora=False, parameters=1, trainable_parameters=1, comparisons=1250,
        eval_comparisons=250, eval_pairs=250, train_pairs=1000, dropped=0, steps=20, steps_this_run=20,
        final_loss=0.3, eval_start=None, eval_loss=0.4, eval_accuracy=0.84, reward_bias=0.0, world_size=1,
        sharded=False, resumed_from=None, train_seconds=1.0, seconds_this_run=1.0,
        outputs={"model": str(rm / "model")}, config={}, read_errors=0,
    ).write(rm)  # fmt: skip
    write_jsonl(rm / "eval_scores.jsonl", [
        {"id": "x#t-other_language", "scores": [1.0, 0.0], "correct": 1, "pairs": 1},
        {"id": "y#t-other_language", "scores": [2.0, 0.0], "correct": 1, "pairs": 1},
        {"id": "z#t-cut", "scores": [1.0, 2.0, 0.0], "correct": 2, "pairs": 3},
    ])  # fmt: skip
    write_jsonl(rm / "metrics.jsonl", [{"step": 0, "eval_accuracy": 0.5}, {"step": 10, "loss": 0.6},
                                       {"step": 20, "eval_accuracy": 0.84}])  # fmt: skip
    scores, entropies = [-0.2, 0.0, 0.3, 0.5, 0.9], [4.0, 4.1, 4.2, 4.4, 4.6]
    steps = [
        {"step": i + 1, "score": s, "kl": 2.0 + i, "kl_per_token": 0.1, "entropy": e}
        for i, (s, e) in enumerate(zip(scores, entropies, strict=True))
    ]
    write_jsonl(ppo / "metrics.jsonl", steps)
    return tmp_path


def config(root: Path) -> DemoClaimsConfig:
    folders = {name: str(root / name) for name in ("eval", "reward", "ppo", "ppo_no_ptx")}
    return DemoClaimsConfig(**folders, resamples=200)


def test_every_claim_against_hand_worked_values(run_dir: Path) -> None:
    report = run([], run_dir / "claims", config(run_dir))
    claims = {c.name: c for c in report.claims}
    sft = claims["sft_vs_base[en,heldout_template]"]  # 0.5 - 0.1 on both en held-out-template examples
    assert sft.value == pytest.approx(0.4) and sft.ci_low == pytest.approx(0.4) and sft.held is True
    assert sft.n == 2
    raw = claims["augmented_vs_raw[en,heldout_family]"]  # B 0.5 against A 0.4 on the en held-out family
    assert raw.value == pytest.approx(0.1) and raw.held is None and raw.target == "reported"
    assert claims["augmented_vs_raw[en,heldout_template]"].value == pytest.approx(0.0)
    rm = claims["reward_accuracy"]  # the last eval, not the best or the first
    low, high = wilson_interval(0.84 * 250, 250)
    assert (rm.value, rm.n, rm.held) == (0.84, 250, True)
    assert (rm.ci_low, rm.ci_high) == (round(low, 4), round(high, 4))
    language, cut = claims["reward_accuracy[other_language]"], claims["reward_accuracy[cut]"]
    assert (language.value, language.n, cut.n) == (1.0, 2, 3) and cut.value == pytest.approx(2 / 3, abs=1e-4)
    assert language.ci_low == round(wilson_interval(2, 2).low, 4) and language.held is False  # n = 2
    assert claims["ppo_win_rate"].held is True and claims["ppo_win_rate"].n == 100
    assert claims["dpo_win_rate"].held is False  # 0.6 < 0.65 and its interval touches 0.5
    assert claims["ppo_score_rises"].value == pytest.approx(0.9 - -0.2) and claims["ppo_score_rises"].held
    assert claims["ppo_kl_bounded"].value == 6.0 and claims["ppo_kl_bounded"].held is True
    assert claims["ppo_kl_per_token"].value == 0.1 and claims["ppo_kl_per_token"].held is None
    assert claims["ppo_entropy_bounded"].value == pytest.approx(4.6 / 4.0, abs=1e-4)
    assert claims["alignment_tax[no ptx]"].value == pytest.approx(-0.2)
    assert claims["alignment_tax[ptx]"].value == pytest.approx(-0.05)
    assert claims["ptx_reduces_tax"].value == pytest.approx(0.15) and claims["ptx_reduces_tax"].held
    assert DemoClaimsReport.read(run_dir / "claims") == report


def test_a_missing_stage_is_not_measured_rather_than_failed(run_dir: Path, tmp_path: Path) -> None:
    cfg = config(run_dir)
    cfg.ppo_no_ptx, cfg.reward = "", str(tmp_path / "nowhere")
    claims = {c.name: c for c in run([], run_dir / "claims", cfg).claims}
    assert claims["reward_accuracy"].held is None and claims["reward_accuracy"].value is None
    assert claims["dpo_win_rate"].held is False  # measured: the eval report has the row
    header, rows = DemoClaimsReport(list(claims.values()), "", 0, 0).table()
    assert header[-1] == "held" and "not measured" in {row[-1] for row in rows}


def test_task_score_is_the_first_of_f1_accuracy_rouge(run_dir: Path) -> None:
    scores = task_scores(str(run_dir / "eval"), "A-SFT")
    assert scores is not None and [s for _, _, s in scores] == [0.5, 0.4] * 4
    assert task_scores(str(run_dir / "eval"), "nobody") is None and task_scores("", "A-SFT") is None


def test_welch_difference_by_hand() -> None:
    # a = 1, 2, 3 (mean 2, sample variance 1), b = 0, 0, 0: 2 ± 1.96 · sqrt(1/3 + 0) = 2 ± 1.1316
    diff = welch_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert diff.value == 2.0 and diff.low == pytest.approx(0.86841, abs=1e-5)
    assert diff.high == pytest.approx(3.13159, abs=1e-5)
    assert welch_difference([1.0], [0.5]) == (0.5, 0.5, 0.5)  # one observation each: no spread to use
