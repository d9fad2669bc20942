"""`reward` and `dpo` end to end on tiny-gpt with tied rankings (`meta.tiers`, as `instructgpt annotate`
writes them): tied pairs left out and counted (`ties=drop`), all-tied comparisons reported and rejected,
`ties=order` training exactly what the flattened ranking trains, and bad tiers stopping the CLI at
file:line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from instructgpt.cli import main
from instructgpt.config import DPOConfig, RewardConfig, ScoreConfig, load_config
from instructgpt.distributed import Dist
from instructgpt.io import Rejects, write_jsonl
from instructgpt.train import dpo, reward
from instructgpt.train.dpo_data import DPOData, Pair, build_data, read_comparisons

COMMON = ["train.threads=1", "model.vocab_size=384", "train.batch_size=4", "train.log_every=1",
          "train.warmup_steps=0", "train.lr=0.003", "train.eval_fraction=0.25", "train.eval_every=2",
          "train.steps=2", "train.save_every=0"]  # fmt: skip
REWARD = [*COMMON, "model.max_length=64", "normalize.enabled=false"]
DPO = [*COMMON, "model.max_length=96"]
N = 24  # comparisons, K = 3: 8 with one tie, 4 all tied, 12 strict


def comparisons(tiers: bool = True) -> list[dict]:
    """What is a plus b? Right beats near beats far. Every third has the two wrong answers tied; every
    sixth (from 1) ranks them all equal. Without `tiers`: the same rankings, no ties."""
    rows = []
    for i in range(N):
        a, b = i % 7, i // 7
        right, near, far = f"{a} plus {b} is {a + b}.", f"{a} plus {b} is {a + b + 1}.", "I like turtles."
        row: dict = {"id": f"p{i}", "prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}]}
        row |= {"responses": [far, right, near], "ranking": [1, 2, 0], "meta": {"annotator": "ann"}}
        if tiers and i % 3 == 0:
            row["meta"]["tiers"] = [[1], [0, 2]]  # given in any order within a tier
        elif tiers and i % 6 == 1:
            row["meta"]["tiers"] = [[1, 2, 0]]
        rows.append(row)
    return rows


TIED, ALL_TIED = N // 3, N // 6  # 8 comparisons with one tied pair, 4 with all 3 pairs tied


@pytest.fixture
def tied(tmp_path: Path) -> Path:
    path = tmp_path / "tied.jsonl"
    write_jsonl(path, comparisons())
    return path


@pytest.fixture
def strict(tmp_path: Path) -> Path:
    path = tmp_path / "strict.jsonl"
    write_jsonl(path, comparisons(tiers=False))
    return path


def metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.endswith(("_s", "_seconds", "_per_s"))} for row in rows]


def test_reward_leaves_tied_pairs_out_and_counts_them(tied: Path, tmp_path: Path) -> None:
    out = tmp_path / "rm"
    report = reward.run([tied], out, load_config(RewardConfig, overrides=REWARD))
    kept = N - ALL_TIED  # 20 comparisons: 5 held out, 15 trained
    assert (report.comparisons, report.eval_comparisons) == (kept, 5)
    assert report.tied_pairs_dropped == TIED + 3 * ALL_TIED and report.all_tied_comparisons == ALL_TIED
    assert report.train_pairs + report.eval_pairs == 3 * kept - TIED  # 3 pairs each, less one per tie
    rejected = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["where"] for r in rejected) == sorted(f"p{i}" for i in range(N) if i % 6 == 1)
    assert {r["stage"] for r in rejected} == {"all_tied"}
    # The held-out rows count only the strict pairs: 2 where the wrong answers are tied, 3 elsewhere; the
    # last eval's loss is the mean over them of each comparison's mean over its strict pairs.
    losses, correct, pairs = [], 0, 0
    for row in (json.loads(line) for line in (out / "eval_scores.jsonl").read_text().splitlines()):
        tiers = [0, 1, 1] if int(row["id"][1:]) % 3 == 0 else [0, 1, 2]
        s = row["scores"]  # best first
        gaps = [s[i] - s[j] for i in range(3) for j in range(i + 1, 3) if tiers[i] < tiers[j]]
        assert row["pairs"] == len(gaps) == (2 if tiers[2] == 1 else 3)
        losses.append(sum(math.log1p(math.exp(-g)) for g in gaps) / len(gaps))
        correct, pairs = correct + sum(g > 0 for g in gaps), pairs + len(gaps)
    last = metrics(out)[-1]
    assert last["eval_loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-4)
    assert last["eval_accuracy"] == pytest.approx(correct / pairs)
    assert "tied pairs and 4 all-tied comparisons left out" in report.summary()
    # `score` measures agreement on the strict pairs only; an all-tied comparison has none (None).
    config = load_config(ScoreConfig, overrides=[f"model.name={out / 'model'}", "model.max_length=64"])
    scored = reward.score_file([tied], tmp_path / "scores", config)
    agreed, total = 0, 0
    for row in (json.loads(line) for line in (tmp_path / "scores" / "scores.jsonl").read_text().splitlines()):
        i, s = int(row["id"][1:]), row["scores"]  # by response: far, right, near; ranked right, near, far
        gaps = [s[1] - s[2], s[1] - s[0]] + ([] if i % 3 == 0 else [s[2] - s[0]])
        if i % 6 == 1:
            assert row["agrees"] is None
            continue
        assert row["agrees"] == pytest.approx(sum(g > 0 for g in gaps) / len(gaps))
        agreed, total = agreed + sum(g > 0 for g in gaps), total + len(gaps)
    assert scored.pairwise_accuracy == pytest.approx(agreed / total)


def test_reward_ties_order_trains_the_flattened_ranking_exactly(
    tied: Path, strict: Path, tmp_path: Path
) -> None:
    order = reward.run(
        [tied], tmp_path / "order", load_config(RewardConfig, overrides=[*REWARD, "ties=order"])
    )
    plain = reward.run([strict], tmp_path / "plain", load_config(RewardConfig, overrides=REWARD))
    assert metrics(tmp_path / "order") == metrics(tmp_path / "plain")
    assert (order.train_pairs, order.eval_pairs) == (plain.train_pairs, plain.eval_pairs)
    assert (order.tied_pairs_dropped, order.all_tied_comparisons) == (0, 0)
    assert (tmp_path / "order" / "model" / "model.safetensors").read_bytes() == (
        tmp_path / "plain" / "model" / "model.safetensors"
    ).read_bytes()
    # ties=drop trains something else on the same file.
    reward.run([tied], tmp_path / "drop", load_config(RewardConfig, overrides=REWARD))
    assert metrics(tmp_path / "drop")[-1]["loss"] != metrics(tmp_path / "plain")[-1]["loss"]


def _dpo_data(path: Path, *overrides: str) -> DPOData:
    config = load_config(DPOConfig, overrides=[*DPO, *overrides])
    found = read_comparisons([path], Rejects("fail"))
    _, tokenizer = dpo._build_model(config, found, None, Dist())
    return build_data(tokenizer, found, config, Rejects("fail"))


def test_dpo_pairs_without_ties_and_ties_order_as_before(tied: Path, strict: Path) -> None:
    dropped, order, plain = _dpo_data(tied), _dpo_data(tied, "ties=order"), _dpo_data(strict)
    assert (order.pairs, order.eval_pairs, order.sequences) == (
        plain.pairs,
        plain.eval_pairs,
        plain.sequences,
    )
    assert order.fingerprint == plain.fingerprint and (order.tied, order.all_tied) == (0, 0)
    assert len(plain.pairs) + len(plain.eval_pairs) == 3 * N
    assert len(dropped.pairs) + len(dropped.eval_pairs) == 3 * N - TIED - 3 * ALL_TIED
    assert (dropped.tied, dropped.all_tied) == (TIED + 3 * ALL_TIED, ALL_TIED)
    assert dropped.comparisons + dropped.eval_comparisons == N - ALL_TIED
    by_comparison: dict[str, list[Pair]] = {}
    for pair in dropped.pairs + dropped.eval_pairs:
        by_comparison.setdefault(pair.comparison, []).append(pair)
    for name, pairs in by_comparison.items():
        if int(name[1:]) % 3 == 0:  # the right answer over each wrong one; the tied wrong ones never paired
            assert len(pairs) == 2 and pairs[0].chosen == pairs[1].chosen
            assert pairs[0].rejected != pairs[1].rejected
        else:
            assert len(pairs) == 3 and int(name[1:]) % 6 != 1


def test_dpo_trains_on_tied_data_and_reports_the_ties(tied: Path, tmp_path: Path) -> None:
    report = dpo.run([tied], tmp_path / "dpo", load_config(DPOConfig, overrides=DPO))
    assert report.pairs + report.eval_pairs == 3 * N - TIED - 3 * ALL_TIED
    assert (report.tied_pairs_dropped, report.all_tied_comparisons) == (TIED + 3 * ALL_TIED, ALL_TIED)
    saved = json.loads((tmp_path / "dpo" / "train_report.json").read_text())
    assert saved["tied_pairs_dropped"] == TIED + 3 * ALL_TIED and saved["all_tied_comparisons"] == ALL_TIED
    assert report.final_loss is not None


@pytest.mark.parametrize("stage", ["reward", "dpo"])
def test_bad_tiers_stop_the_cli_at_file_and_line(
    stage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = comparisons()[:6]
    rows[4]["meta"]["tiers"] = [[1], [2]]  # response 0 missing
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, rows)
    assert main([stage, str(path), "-o", str(tmp_path / "out"), *COMMON]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:5" in err and "meta.tiers" in err and "Traceback" not in err
