"""The training stages' typed reports on real tiny runs (pretrain → sft → reward → ppo, dpo; finetune-task
on tiny-bert), run through the registry: each report file reads back as its type key for key, in order,
the registry returns that report, and its summary states the run's numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from instructgpt.config import FinetuneTaskConfig, load_config
from instructgpt.demo.tasks import generate_documents, generate_task_examples
from instructgpt.distributed import Dist
from instructgpt.io import write_jsonl
from instructgpt.records import to_dict
from instructgpt.reports.training import TrainingStageReport
from instructgpt.stages import STAGES
from instructgpt.train.run import open_run

FAST = ["train.threads=1", "train.batch_size=4", "train.steps=2", "train.eval_every=2", "train.save_every=2"]
CHAT = ["model.max_length=96", "train.eval_fraction=0.2", *FAST]


def _sums(n: int) -> list[tuple[list[dict[str, str]], str, str]]:
    """(prompt, right answer, wrong answer) of "What is a plus b?"."""
    return [
        ([{"role": "user", "content": f"What is {i % 7} plus {i // 7}?"}], f"{i % 7} plus {i // 7} is "
         f"{i % 7 + i // 7}.", f"{i % 7} plus {i // 7} is {i % 7 + i // 7 + 1}.")
        for i in range(n)
    ]  # fmt: skip


def _inputs(root: Path) -> dict[str, Path]:
    sums = _sums(24)
    files = {
        name: root / f"{name}.jsonl" for name in ("documents", "chats", "comparisons", "prompts", "tasks")
    }
    write_jsonl(files["documents"], [to_dict(d) for d in generate_documents("en", 8)])
    chats = [{"id": f"c{i}", "messages": [*p, {"role": "assistant", "content": right}]}
             for i, (p, right, _) in enumerate(sums)]  # fmt: skip
    write_jsonl(files["chats"], chats)
    comparisons = [{"id": f"k{i}", "prompt": p, "responses": [right, wrong], "ranking": [0, 1]}
                   for i, (p, right, wrong) in enumerate(sums)]  # fmt: skip
    write_jsonl(files["comparisons"], comparisons)
    write_jsonl(files["prompts"], [{"id": f"p{i}", "messages": p} for i, (p, _, _) in enumerate(sums)])
    write_jsonl(files["tasks"], [to_dict(e) for e in generate_task_examples("sentiment", "en", 40)])
    return files


def _run(root: Path, name: str, inputs: Path, *overrides: str) -> TrainingStageReport:
    stage = STAGES[name]
    report = stage.run([str(inputs)], root / name, load_config(stage.config, overrides=list(overrides)))
    assert isinstance(report, stage.report)
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, TrainingStageReport]:
    """Each training stage's report as the registry returned it, the policy chain as in the demo."""
    root = tmp_path_factory.mktemp("training")
    files = _inputs(root)
    reports = {
        "pretrain": _run(root, "pretrain", files["documents"], "model.vocab_size=512", "block_size=64",
                         *FAST),
        "sft": _run(root, "sft", files["chats"], "model.vocab_size=512", *CHAT),
        "finetune-task": _run(root, "finetune-task", files["tasks"], "model.name=tiny-bert",
                              "model.vocab_size=1000", "max_length=64", "task=sentiment_binary", *FAST),
    }  # fmt: skip
    sft = f"model.name={root / 'sft' / 'model'}"
    reports["reward"] = _run(root, "reward", files["comparisons"], sft, "normalize.enabled=false", *CHAT)
    reports["dpo"] = _run(root, "dpo", files["comparisons"], sft, *CHAT)
    reports["ppo"] = _run(
        root, "ppo", files["prompts"], sft, f"reward_model={root / 'reward' / 'model'}",
        "model.max_length=96", "sampling.max_new_tokens=8", "rollout_batch=4", "generation_batch=4",
        "minibatch_size=4", "ppo_epochs=1", "train.threads=1", "train.steps=2", "train.save_every=0",
    )  # fmt: skip
    return reports


NAMES = ["pretrain", "sft", "finetune-task", "reward", "ppo", "dpo"]


@pytest.mark.parametrize("name", NAMES)
def test_the_report_file_reads_back_as_its_type_key_for_key(runs: dict[str, Any], name: str) -> None:
    report, stage = runs[name], STAGES[name]
    text = (report.folder / stage.report.FILE).read_text(encoding="utf-8")
    written = json.loads(text)
    again = stage.report.from_dict(written).to_dict()
    assert again == written and json.dumps(again) == json.dumps(written)  # the same keys in the same order
    assert report.to_dict() == written and stage.report.read(report.folder) == report


def _expected(report: Any) -> list[str]:
    """What each summary must say: its stage's numbers, formatted as the summary formats them."""
    if report.FILE == "finetune_report.json":
        accuracy = report.evaluation["accuracy"]
        return [f"({report.task}, ", f"{report.train['steps']} steps", f"held out: accuracy {accuracy:.3f}"]
    said = [f"→ {report.folder}"]
    if hasattr(report, "iterations"):  # ppo
        return [
            *said,
            f"{report.iterations} iterations",
            f"{report.rollouts:,} rollouts",
            f"β {report.kl_coef:.4g}",
        ]
    said += [f"{report.steps} steps", f"final loss {report.final_loss:.4f}"]
    if hasattr(report, "reward_bias"):
        return [
            *said,
            f"pairwise accuracy {report.eval_accuracy:.3f}",
            f"reward bias {report.reward_bias:+.4f}",
        ]
    return [*said, f"{report.tokens_seen:,} tokens", f"eval loss {report.eval_start['eval_loss']:.4f} → "]


@pytest.mark.parametrize("name", NAMES)
def test_the_summary_states_the_runs_numbers(runs: dict[str, Any], name: str) -> None:
    summary = runs[name].summary()
    assert all(part in summary for part in _expected(runs[name])), summary
    assert summary.startswith(f"{name} (")  # dpo: its loss's name, dpo by default


@pytest.mark.parametrize("name", NAMES)
def test_the_run_reports_key_numbers_are_fields_of_the_report(runs: dict[str, Any], name: str) -> None:
    report = runs[name]
    assert list(report.facts()) == list(report.FACTS) and set(report.FACTS) <= set(vars(report))
    assert report.facts()["model"] == report.to_dict()["model"]


def test_a_process_other_than_the_main_one_gets_the_report_the_main_one_wrote(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    """finetune-task builds its report on the main process only: `Training.finish` reads the file there."""
    report = runs["finetune-task"]
    with open_run(tmp_path, load_config(FinetuneTaskConfig, overrides=["train.threads=1"]), "fail") as run:
        training = run.start(nn.Linear(3, 2), None, {})
    training.run.dist, training.run.out_dir = Dist(rank=1), report.folder  # another process of that run
    assert (
        training.finish(None, lambda model: pytest.fail("saved off the main process"), type(report)) == report
    )
