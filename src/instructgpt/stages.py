"""The stage registry: one table, `STAGES`, that the CLI (`instructgpt STAGE ...`) and the recipe runner
(`instructgpt run`) both read for the stage names, config types, `--help` lines, extra flags, report
files and how each stage runs.

Every stage is called the same way through its entry, whatever its module's own signature:

    report = STAGES[name].run(inputs, out_dir, config, on_error, fmt)
    STAGES[name].print_summary(report, out_dir)

A stage's module is imported only when the stage runs (its loader below), so `instructgpt --help` does
not import torch. Adding a stage: write its module (`run(inputs, out_dir, config, on_error=...)`
returning the report it also writes to its report file, and `print_summary(report)`), a three-line
loader, and one line in STAGES.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from instructgpt.config import (
    CorpusConfig,
    DemoClaimsConfig,
    DemoDataConfig,
    DPOConfig,
    EvalConfig,
    FinetuneTaskConfig,
    GenerateConfig,
    InstructConfig,
    PPOConfig,
    PrepareConfig,
    PretrainConfig,
    RewardConfig,
    SFTConfig,
)
from instructgpt.instruct.synth.config import ContextSynthConfig, SelfInstructConfig

Report = dict[str, Any]


class Entry(NamedTuple):
    """A stage module's entry point and summary printer, looked up when the stage runs."""

    run: Callable[..., Report]
    print_summary: Callable[[Report, Path], None]


@dataclass(frozen=True)
class Flag:
    """An extra option of a stage's command: it sets a config field (`sets`), or does something instead
    of the run when given (`instead(inputs, config, value)`), or is FORMAT (the inputs' record format)."""

    option: str
    help: str
    value_type: type = str
    metavar: str | None = None
    sets: str | None = None
    instead: Callable[[list[str], Any, Any], None] | None = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Stage:
    """One stage: its name (the recipe kind; the CLI command, under `group` when it has one), config type,
    help line, loader, report file, extra flags, and how a recipe may run it."""

    name: str
    config: type
    help: str
    load: Callable[[], Entry]
    report_file: str
    flags: tuple[Flag, ...] = ()
    group: str | None = None  # the CLI command it sits under: `synth-context` is `synth context`
    takes_inputs: bool = True
    launchable: bool = False  # a recipe may run it as a multi-process job (`launch`)
    resumes_in_folder: bool = False  # an interrupted run picks up what it left in its folder

    @property
    def words(self) -> tuple[str, ...]:
        """Its command on the CLI: `("sft",)`, `("synth", "context")`."""
        return (self.group, self.name.removeprefix(f"{self.group}-")) if self.group else (self.name,)

    @property
    def takes_format(self) -> bool:
        return FORMAT in self.flags

    def run(
        self,
        inputs: Sequence[str],
        out_dir: Path,
        config: Any,
        on_error: str = "fail",
        fmt: str | None = None,
    ) -> Report:
        """Run the stage into `out_dir`; returns the report it also wrote to `out_dir / report_file`."""
        fmt_arg = {"fmt": fmt} if self.takes_format else {}
        return self.load().run(inputs, out_dir, config, on_error=on_error, **fmt_arg)

    def print_summary(self, report: Report, out_dir: Path) -> None:
        self.load().print_summary(report, out_dir)


def _report_only(print_summary: Callable[[Report], None]) -> Callable[[Report, Path], None]:
    """A module's summary printer that needs no folder, in the registry's signature."""
    return lambda report, out_dir: print_summary(report)


def _prepare() -> Entry:
    from instructgpt.data import prepare

    return Entry(prepare.run, _report_only(prepare.print_summary))


def _instruct() -> Entry:
    from instructgpt.instruct import build

    return Entry(build.run, build.print_summary)


def _corpus() -> Entry:
    from instructgpt.instruct import corpus

    return Entry(corpus.run, corpus.print_summary)


def _self_instruct() -> Entry:
    from instructgpt.instruct.synth import self_instruct

    return Entry(self_instruct.run, self_instruct.print_summary)


def _context() -> Entry:
    from instructgpt.instruct.synth import context

    return Entry(context.run, context.print_summary)


def _pretrain() -> Entry:
    from instructgpt.train import pretrain

    return Entry(pretrain.run, _report_only(pretrain.print_summary))


def _sft() -> Entry:
    from instructgpt.train import sft

    return Entry(sft.run, _report_only(sft.print_summary))


def _show_mask(inputs: list[str], config: SFTConfig, n: int) -> None:
    from instructgpt.train import sft

    sft.show_mask(inputs, config, n)


def _finetune_task() -> Entry:
    from instructgpt.train import finetune_task

    return Entry(finetune_task.run, _report_only(finetune_task.print_summary))


def _reward() -> Entry:
    from instructgpt.train import reward

    return Entry(reward.run, _report_only(reward.print_summary))


def _ppo() -> Entry:
    from instructgpt.train import ppo

    return Entry(ppo.run, _report_only(ppo.print_summary))


def _dpo() -> Entry:
    from instructgpt.train import dpo

    return Entry(dpo.run, _report_only(dpo.print_summary))


def _eval() -> Entry:
    from instructgpt.evaluate import suite

    return Entry(suite.run, _report_only(suite.print_summary))


def _generate() -> Entry:
    from instructgpt.generation import stage

    return Entry(stage.generate_file, stage.print_summary)


def _demo_data() -> Entry:
    from instructgpt.demo import data

    return Entry(data.run, _report_only(data.print_summary))


def _demo_claims() -> Entry:
    from instructgpt.demo import claims

    return Entry(claims.run, _report_only(claims.print_summary))


FORMAT = Flag("--format", "record format of the inputs, if not detected from their fields")
LAYOUT = Flag(
    "--layout", "input layout (squad, text_label, ...), if not detected; sets `layout`", sets="layout"
)
TEMPLATES = Flag("--templates-per-example", "sets `templates_per_example`", int, sets="templates_per_example")
SHOW_MASK = Flag(
    "--show-mask",
    "print N rendered examples with trained tokens marked, then exit",
    int,
    "N",
    instead=_show_mask,
)
TRAIN = "train_report.json"
STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("prepare", PrepareConfig, "raw text in, clean Documents out", _prepare, "prepare_report.json",
              (FORMAT,)),
        Stage("instruct", InstructConfig, "TaskExamples in, instruction Conversations out", _instruct,
              "instruct_report.json", (LAYOUT, TEMPLATES)),
        Stage("corpus", CorpusConfig, "Documents in, instruction-augmented corpus out", _corpus,
              "corpus_stats.json", (FORMAT,)),
        Stage("synth-self-instruct", SelfInstructConfig, "seed tasks in, Self-Instruct instructions and "
              "instances out", _self_instruct, "report.json", group="synth", resumes_in_folder=True),
        Stage("synth-context", ContextSynthConfig, "Documents in, pairs grounded in them out", _context,
              "report.json", (FORMAT,), group="synth", resumes_in_folder=True),
        Stage("pretrain", PretrainConfig, "text in, a pretrained model out (CLM or MLM)", _pretrain, TRAIN,
              (FORMAT,), launchable=True),
        Stage("sft", SFTConfig, "Conversations in, a fine-tuned model out", _sft, TRAIN, (SHOW_MASK,),
              launchable=True),
        Stage("finetune-task", FinetuneTaskConfig, "encoder + head: sentiment or QA", _finetune_task,
              "finetune_report.json", (LAYOUT,)),
        Stage("reward", RewardConfig, "Comparisons in, a reward model", _reward, TRAIN, launchable=True),
        Stage("ppo", PPOConfig, "Prompts in, a PPO(-ptx)-aligned policy out", _ppo, TRAIN, launchable=True),
        Stage("dpo", DPOConfig, "Comparisons in, a DPO/IPO/SimPO policy out", _dpo, TRAIN, launchable=True),
        Stage("eval", EvalConfig, "Conversations and models in: task scores, win rates", _eval,
              "eval_report.json", launchable=True),
        Stage("generate", GenerateConfig, "Prompts or Conversations in, model responses out", _generate,
              "generate_report.json", (FORMAT,)),
        Stage("demo-data", DemoDataConfig, "the embedded demo's inputs out (documents, tasks, comparisons)",
              _demo_data, "demo_data_report.json", takes_inputs=False),
        Stage("demo-claims", DemoClaimsConfig, "a demo run's stage folders in, the method's claims checked",
              _demo_claims, "claims.json", takes_inputs=False),
    )
}  # fmt: skip
GROUPS = {
    "synth": (
        "model-generated instructions: Self-Instruct, or pairs grounded in documents",
        "Instructions written by a model (local, or any OpenAI-compatible server), filtered, with every "
        "filter counted in report.json. `instructgpt synth KIND --help` lists a kind's fields.",
    )
}
