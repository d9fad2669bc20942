"""The embedded demo: its recipe ships twice (package and recipes/) identically, validates, and runs end
to end through every stage (data → prepare → instruct → corpus → pretrain A/B → SFT A/B → reward → PPO-ptx
and PPO → DPO → eval → claims → report) with its budgets cut down."""

from __future__ import annotations

import json
from pathlib import Path

from instructgpt import cli, demo, pipeline
from instructgpt.config import DemoDataConfig
from instructgpt.demo import data, recipe_path, smoke_recipe
from instructgpt.reports.demo import DemoClaimsReport
from instructgpt.reports.inference import EvalReport
from instructgpt.stages import STAGES

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_recipe_is_the_embedded_one_and_validates(tmp_path):
    assert (REPO / "recipes" / "demo.yaml").read_text() == recipe_path().read_text()
    recipe = pipeline.load_recipe(recipe_path(), tmp_path / "run")
    assert [s.kind for s in recipe.stages][:4] == ["demo-data", "prepare", "instruct", "corpus"]
    assert {"reward", "ppo", "dpo", "eval"} <= {s.kind for s in recipe.stages}
    assert recipe.stages[-1].kind == "demo-claims"


def test_demo_data_writes_every_input(tmp_path):
    report = data.run([], tmp_path, DemoDataConfig(examples_per_family=8, documents=4, preference_examples=6))
    assert report.task_examples == 4 * 2 * 8 and report.documents == 2 * 4
    comparisons = [json.loads(line) for line in (tmp_path / "comparisons.jsonl").open()]
    assert len(comparisons) == report.comparisons > 0
    assert all(c["ranking"] == list(range(len(c["responses"]))) for c in comparisons)
    prompts = [json.loads(line) for line in (tmp_path / "prompts.jsonl").open()]
    assert [p["messages"] for p in prompts] == [c["prompt"] for c in comparisons]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        ["articles_en.txt", "articles_zh.txt", "web_crawl.jsonl", "eval_snippets.jsonl"]
    )


def test_the_demo_recipe_runs_end_to_end_with_small_budgets(tmp_path, monkeypatch, capsys):
    path = tmp_path / "demo.yaml"
    by_name = {s["name"]: s for s in smoke_recipe(path)["stages"]}
    report = pipeline.main_run(path, tmp_path / "run", False, None)
    run = tmp_path / "run"
    assert all(json.loads((run / s / "stage.json").read_text())["status"] == "done" for s in by_name)
    for name, stage in by_name.items():  # every report file reads back as its type, key for key
        report_type = STAGES[stage["stage"]].report
        written = json.loads((run / name / report_type.FILE).read_text())
        assert json.dumps(report_type.read(run / name).to_dict()) == json.dumps(written), name
    evaluation = EvalReport.read(run / "eval")
    assert evaluation.models == ["B-SFT", "B-pretrained", "A-SFT", "B+PPO-ptx", "B+PPO", "B+DPO"]
    assert {row["split"] for row in evaluation.scores} == {"seen", "heldout_template", "heldout_family"}
    assert {row["lang"] for row in evaluation.scores} == {"en", "zh"}
    assert len(evaluation.win_rates) == 5 and {r["b"] for r in evaluation.win_rates} == {"B-SFT"}
    claims = {c.name: c for c in DemoClaimsReport.read(run / "claims").claims}
    assert claims["reward_accuracy"].n > 0 and claims["ppo_win_rate"].n == 4
    assert claims["ptx_reduces_tax"].n == claims["alignment_tax[ptx]"].n > 0
    html = (run / "report.html").read_text()
    assert "B+PPO" in html and "data:image/png;base64" in html and "The method&#x27;s claims" in html
    assert report is not None
    # `instructgpt demo` on the finished run: every stage up to date, then the claims table printed.
    monkeypatch.setattr(demo, "recipe_path", lambda: path)
    capsys.readouterr()
    assert cli.main(["demo", "-o", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "up to date" in printed and "the method's claims on this run" in printed
    assert "measured claims held" in printed
