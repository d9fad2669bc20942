"""The run report: eval summary rows gathered into a column per model with intervals and label shares,
paired comparisons and win rates with intervals, Markdown and HTML from hand-made stage outputs."""

import json

import pytest

from instructgpt.metrics_log import read_metrics
from instructgpt.report import write_report
from instructgpt.reports.inference import EvalReport, score_table
from instructgpt.reports.training import SFTReport


def summary(model, value, n, low, high, split="seen", family="summarization", metric="rougeL", **extra):
    return {"model": model, "family": family, "lang": "en", "split": split, "metric": metric, "value": value,
            "n": n, "ci_low": low, "ci_high": high, **extra}  # fmt: skip


SHARES = {"positive": 0.93, "negative": 0.07}
SUMMARY = [
    summary("A", 0.425, 40, 0.38, 0.47), summary("B", 0.55, 40, 0.5, 0.6),
    summary("A", 0.1, 5, 0.05, 0.15, "heldout_template"), summary("B", 0.3, 5, 0.2, 0.4, "heldout_template"),
    summary("A", 0.7, 20, 0.481, 0.855, family="sentiment", metric="accuracy", predicted=SHARES),
    summary("B", 0.9, 20, 0.699, 0.972, family="sentiment", metric="accuracy", predicted={"negative": 1.0}),
]  # fmt: skip
BY_SPLIT = [{k: v for k, v in row.items() if k not in ("family", "lang")} for row in SUMMARY]
COMPARISON = {"a": "B", "b": "A", "family": "summarization", "lang": "en", "split": "seen",
              "metric": "rougeL", "n": 40, "difference": 0.125, "ci_low": 0.05, "ci_high": 0.2,
              "verdict": "better"}  # fmt: skip
WIN_RATE = {"a": "B", "b": "A", "judge": "reward_model", "wins": 12, "losses": 5, "ties": 3, "invalid": 0,
            "win_rate": 0.675, "n": 20, "ci_low": 0.456693, "ci_high": 0.836913}  # fmt: skip
NO_VERDICT = {"a": "B", "b": "A", "judge": "llm_judge", "wins": 0, "losses": 0, "ties": 0, "invalid": 4,
              "win_rate": None, "n": 0, "ci_low": None, "ci_high": None}  # fmt: skip
SAMPLE = {"id": "x1", "task": "summarization_en", "prompt": "Summarise: <script>alert('hi')</script> & co",
          "reference": "a | b", "outputs": {"A": "first\nsecond", "B": "<b>bold</b>"}}  # fmt: skip
WIN_RATES = [WIN_RATE, NO_VERDICT]
EVAL_REPORT = EvalReport(models=["A", "B"], scores=[], summary_rows=SUMMARY, summary_by_split=BY_SPLIT,
                         comparisons=[COMPARISON], win_rates=WIN_RATES, samples=[SAMPLE], config={},
                         seconds=1.0, inputs=[], read_errors=0, outputs={})  # fmt: skip
SFT_REPORT = SFTReport(
    stage="sft", model="tiny-gpt", parameters=1000, trainable_parameters=1000, lora=False, inputs=[],
    examples=8, eval_examples=0, truncated=0, dropped=0, train_rows=4, target_tokens=40, steps=3,
    steps_this_run=3, tokens_seen=120, final_loss=2.0, eval_start=None, eval_loss=None, best_eval_loss=None,
    world_size=1, sharded=False, resumed_from=None, train_seconds=0.5, seconds_this_run=0.6, read_errors=0,
    outputs={"model": "sft/model"}, config={"train": {"steps": 3}},
)  # fmt: skip
STAGES = [
    {"name": "sft", "stage": "sft", "status": "ran", "seconds": 2.5},
    {"name": "ev", "stage": "eval", "status": "ran", "seconds": 1.0},
]


def test_score_table_gathers_the_models_of_a_row():
    rows = score_table(SUMMARY)
    keys = [(r.family, r.lang, r.split, r.metric) for r in rows]
    assert keys == [
        ("sentiment", "en", "seen", "accuracy"),
        ("summarization", "en", "seen", "rougeL"),
        ("summarization", "en", "heldout_template", "rougeL"),
    ]
    assert rows[1].values == {"A": 0.425, "B": 0.55} and rows[1].n == {"A": 40, "B": 40}
    assert rows[1].intervals == {"A": (0.38, 0.47), "B": (0.5, 0.6)} and rows[1].predicted == {}
    assert rows[0].predicted == {"A": SHARES, "B": {"negative": 1.0}}
    (split,) = [r for r in score_table(BY_SPLIT) if r.split == "heldout_template"]
    assert (split.family, split.lang, split.values) == ("", "", {"A": 0.1, "B": 0.3})


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "sft").mkdir()
    (tmp_path / "ev").mkdir()
    metrics = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5, "eval_loss": 2.7}, {"step": 3, "loss": 2.0}]
    text = "".join(json.dumps(m) + "\n" for m in metrics) + '{"step": 4, "lo'  # a line cut short by a kill
    (tmp_path / "sft" / "metrics.jsonl").write_text(text)
    SFT_REPORT.write(tmp_path / "sft")
    EVAL_REPORT.write(tmp_path / "ev")
    return tmp_path


def test_metrics_reader_skips_a_cut_line(run_dir):
    assert [r["step"] for r in read_metrics(run_dir / "sft" / "metrics.jsonl")] == [1, 2, 3]


def test_markdown_has_tables_curves_charts_and_samples(run_dir):
    paths = write_report(run_dir, {"path": "recipes/x.yaml", "text": "# instructgpt run x\n"}, STAGES)
    md = paths["markdown"].read_text()
    assert "| sft | sft | ran | 2.5 |" in md
    assert "| summarization | en | seen | rougeL | 40 | 0.425 [0.380, 0.470] | 0.550 [0.500, 0.600] |" in md
    assert (
        "| summarization | en | heldout_template | rougeL | 5 | 0.100 [0.050, 0.150] | 0.300 [0.200, 0.400] |"
        in md
    )
    assert (
        "| sentiment | en | seen | accuracy | 20 | 0.700 [0.481, 0.855]<br>positive 0.93 · negative 0.07 "
        "| 0.900 [0.699, 0.972]<br>negative 1.00 |"
    ) in md  # a model that always says one label shows it
    assert "| B | A | summarization | en | seen | rougeL | 40 | +0.125 [+0.050, +0.200] | better |" in md
    assert "| B | A | reward_model | 12 | 5 | 3 | 0 | 20 | 0.675 [0.457, 0.837] |" in md
    assert "| B | A | llm_judge | 0 | 0 | 0 | 4 | 0 | n/a (no valid verdict) |" in md
    assert "![sft curves](report_files/sft_curves.png)" in md
    for png in ("sft_curves.png", "ev_rougeL.png", "ev_accuracy.png"):
        assert (run_dir / "report_files" / png).stat().st_size > 1000
        assert f"(report_files/{png})" in md
    assert "| final_loss | 2.0000 |" in md and "| model | tiny-gpt |" in md and "| steps | 3 |" in md
    assert "a \\| b" in md and "first<br>second" in md  # table cells stay one row
    assert "No prepare, instruct or corpus stage in this run" in md


def test_html_embeds_images_and_escapes_sample_text(run_dir):
    paths = write_report(run_dir, {"path": "recipes/x.yaml", "text": "stages: []"}, STAGES)
    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "<td>0.425 [0.380, 0.470]</td><td>0.550 [0.500, 0.600]</td>" in page
    assert "<td>0.700 [0.481, 0.855]<br>positive 0.93 · negative 0.07</td>" in page
    assert "&lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt; &amp; co" in page
    assert "<script>" not in page and "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "first<br>second" in page


def test_missing_pieces_are_skipped_with_a_line(tmp_path):
    stages = [{"name": "p", "stage": "prepare", "status": "failed", "seconds": 0.1},
              {"name": "ev", "stage": "eval", "status": "not run", "seconds": 0}]  # fmt: skip
    md = write_report(tmp_path, {"path": "r.yaml", "text": ""}, stages)["markdown"].read_text()
    assert f"No prepare_report.json in {tmp_path / 'p'}: skipped." in md
    assert f"No eval_report.json in {tmp_path / 'ev'}: skipped." in md
    assert "No training stage in this run: no curves." in md


def test_ppo_and_reward_curves_use_their_own_metrics(tmp_path):
    rows = {
        "rm": [{"step": 1, "loss": 0.7, "accuracy": 0.5}, {"step": 2, "loss": 0.6, "eval_accuracy": 0.6}],
        "rl": [{"step": 1, "score": 0.1, "kl": 0.0, "loss": 1.0}, {"step": 2, "score": 0.3, "kl": 0.2}],
    }
    for name, metrics in rows.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    stages = [{"name": "rm", "stage": "reward", "status": "ran", "seconds": 1},
              {"name": "rl", "stage": "ppo", "status": "ran", "seconds": 1}]  # fmt: skip
    md = write_report(tmp_path, {"path": "r.yaml", "text": ""}, stages)["markdown"].read_text()
    assert "fraction of pairs ranked correctly" in md and "mean score" in md
    assert (tmp_path / "report_files" / "rm_curves.png").exists()
    assert (tmp_path / "report_files" / "rl_curves.png").exists()
