"""The stage registry: one table, `STAGES`, that the CLI (`instructgpt STAGE ...`) and the recipe runner
(`instructgpt run`) both read for the stage names, config types, `--help` lines, extra flags, report
types (and so report files) and how each stage runs.

Every stage is called the same way through its entry, whatever its module's own signature:

    report = STAGES[name].run(inputs, out_dir, config, on_error)   # a StageReport; print(report.summary())
    STAGES[name].report.read(out_dir)                             # the report a run left there

A stage's module is imported only when the stage runs (its loader below), so `instructgpt --help` does
not import torch; its report type (`instructgpt.reports`) is light and named here. Adding a stage: its
report type in `instructgpt.reports`, its module (`run(inputs, out_dir, config, on_error=...)` returning
that report, written to its file), a three-line loader, and one line in STAGES.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt.config import (
    AnnotateConfig,
    CorpusConfig,
    DecontamConfig,
    DemoClaimsConfig,
    DemoDataConfig,
    DPOConfig,
    EvalConfig,
    ExportConfig,
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
from instructgpt.reports import StageReport
from instructgpt.reports.annotate import AnnotateReport
from instructgpt.reports.data import (
    ContextReport,
    CorpusReport,
    DecontamReport,
    InstructReport,
    PrepareReport,
    SelfInstructReport,
)
from instructgpt.reports.demo import DemoClaimsReport, DemoDataReport
from instructgpt.reports.export import ExportReport
from instructgpt.reports.inference import EvalReport, GenerateReport
from instructgpt.reports.training import (
    DPOReport,
    FinetuneTaskReport,
    PPOReport,
    PretrainReport,
    RewardReport,
    SFTReport,
)

Run = Callable[..., StageReport]  # a stage module's `run(inputs, out_dir, config, on_error=...)`


@dataclass(frozen=True)
class Flag:
    """An extra option of a stage's command: it sets a config field (`sets`), or does something instead
    of the run when given (`instead(inputs, out_dir, config, value)`). With `nargs="+"` it takes the
    values that follow it and sets a list field; with `value_type=bool` it is a switch (no value)."""

    option: str
    help: str
    value_type: type = str
    metavar: str | None = None
    sets: str | None = None
    instead: Callable[[list[str], Path | None, Any, Any], None] | None = None  # out_dir: -o, if given
    nargs: str | None = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Stage:
    """One stage: its name (the recipe kind; the CLI command, under `group` when it has one), config type,
    help line, loader, report type, extra flags, and how a recipe may run it."""

    name: str
    config: type
    help: str
    load: Callable[[], Run]  # imports the stage's module and returns its run
    report: type[StageReport]
    flags: tuple[Flag, ...] = ()
    group: str | None = None  # the CLI command it sits under: `synth-context` is `synth context`
    takes_inputs: bool = True
    needs_output: bool = True  # without -o, a stage that only reports runs in a temporary folder
    launchable: bool = False  # a recipe may run it as a multi-process job (`launch`)
    resumes_in_folder: bool = False  # an interrupted run picks up what it left in its folder
    keeps_folder: bool = False  # any rerun picks up what it left in its folder (people's labels)

    @property
    def words(self) -> tuple[str, ...]:
        """Its command on the CLI: `("sft",)`, `("synth", "context")`."""
        return (self.group, self.name.removeprefix(f"{self.group}-")) if self.group else (self.name,)

    def run(self, inputs: Sequence[str], out_dir: Path, config: Any, on_error: str = "fail") -> StageReport:
        """Run the stage into `out_dir`; returns the report it also wrote to `out_dir / report.FILE`."""
        return self.load()(inputs, out_dir, config, on_error=on_error)


def _prepare() -> Run:
    from instructgpt.data import prepare

    return prepare.run


def _instruct() -> Run:
    from instructgpt.instruct import build

    return build.run


def _corpus() -> Run:
    from instructgpt.instruct import corpus

    return corpus.run


def _self_instruct() -> Run:
    from instructgpt.instruct.synth import self_instruct

    return self_instruct.run


def _context() -> Run:
    from instructgpt.instruct.synth import context

    return context.run


def _decontam() -> Run:
    from instructgpt.data import overlap

    return overlap.run


def _pretrain() -> Run:
    from instructgpt.train import pretrain

    return pretrain.run


def _sft() -> Run:
    from instructgpt.train import sft

    return sft.run


def _show_mask(inputs: list[str], out_dir: Path | None, config: SFTConfig, n: int) -> None:
    from instructgpt.train import sft

    sft.show_mask(inputs, config, n)


def _annotate() -> Run:
    from instructgpt.annotate import run

    return run.run


def _annotate_stats(inputs: list[str], out_dir: Path, config: AnnotateConfig, given: bool) -> None:
    from instructgpt.annotate import run

    print(json.dumps(run.stats(out_dir, config), ensure_ascii=False, indent=2))


def _finetune_task() -> Run:
    from instructgpt.train import finetune_task

    return finetune_task.run


def _reward() -> Run:
    from instructgpt.train import reward

    return reward.run


def _ppo() -> Run:
    from instructgpt.train import ppo

    return ppo.run


def _dpo() -> Run:
    from instructgpt.train import dpo

    return dpo.run


def _eval() -> Run:
    from instructgpt.evaluate import suite

    return suite.run


def _generate() -> Run:
    from instructgpt.generation import stage

    return stage.generate_file


def _export() -> Run:
    from instructgpt.export import stage

    return stage.run


def _demo_data() -> Run:
    from instructgpt.demo import data

    return data.run


def _demo_claims() -> Run:
    from instructgpt.demo import claims

    return claims.run


FORMAT = Flag(
    "--format", "record format of the inputs, if not detected from their fields; sets `format`", sets="format"
)
LAYOUT = Flag(
    "--layout", "input layout (squad, text_label, ...), if not detected; sets `layout`", sets="layout"
)
TEMPLATES = Flag("--templates-per-example", "sets `templates_per_example`", int, sets="templates_per_example")
AGAINST = Flag(
    "--against",
    "evaluation files to check against; sets `eval_files`",
    metavar="EVAL",
    sets="eval_files",
    nargs="+",
)
SHOW_MASK = Flag(
    "--show-mask",
    "print N rendered examples with trained tokens marked, then exit",
    int,
    "N",
    instead=_show_mask,
)
STATS = Flag("--stats", "print progress and agreement of OUT and exit", bool, instead=_annotate_stats)
STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("prepare", PrepareConfig, "raw text in, clean Documents out", _prepare, PrepareReport,
              (FORMAT,)),
        Stage("instruct", InstructConfig, "TaskExamples in, instruction Conversations out", _instruct,
              InstructReport, (LAYOUT, TEMPLATES)),
        Stage("corpus", CorpusConfig, "Documents in, instruction-augmented corpus out", _corpus,
              CorpusReport, (FORMAT,)),
        Stage("decontam", DecontamConfig, "training files in, their n-gram overlap with evaluation files "
              "reported (nothing changed)", _decontam, DecontamReport, (AGAINST,), needs_output=False),
        Stage("synth-self-instruct", SelfInstructConfig, "seed tasks in, Self-Instruct instructions and "
              "instances out", _self_instruct, SelfInstructReport, group="synth", resumes_in_folder=True),
        Stage("synth-context", ContextSynthConfig, "Documents in, pairs grounded in them out", _context,
              ContextReport, (FORMAT,), group="synth", resumes_in_folder=True),
        Stage("pretrain", PretrainConfig, "text in, a pretrained model out (CLM or MLM)", _pretrain,
              PretrainReport, (FORMAT,), launchable=True),
        Stage("sft", SFTConfig, "Conversations in, a fine-tuned model out", _sft, SFTReport, (SHOW_MASK,),
              launchable=True),
        Stage("finetune-task", FinetuneTaskConfig, "encoder + head: sentiment or QA", _finetune_task,
              FinetuneTaskReport, (LAYOUT,)),
        Stage("annotate", AnnotateConfig, "rank K answers per prompt in a web page", _annotate,
              AnnotateReport, (STATS,), keeps_folder=True),
        Stage("reward", RewardConfig, "Comparisons in, a reward model", _reward, RewardReport,
              launchable=True),
        Stage("ppo", PPOConfig, "Prompts in, a PPO(-ptx)-aligned policy out", _ppo, PPOReport,
              launchable=True),
        Stage("dpo", DPOConfig, "Comparisons in, a DPO/IPO/SimPO policy out", _dpo, DPOReport,
              launchable=True),
        Stage("eval", EvalConfig, "Conversations and models in: task scores, win rates", _eval,
              EvalReport, launchable=True),
        Stage("generate", GenerateConfig, "Prompts or Conversations in, model responses out", _generate,
              GenerateReport, (FORMAT,)),
        Stage("export", ExportConfig, "a model out: a merged Hugging Face folder, or GGUF + Ollama Modelfile",
              _export, ExportReport),
        Stage("demo-data", DemoDataConfig, "the embedded demo's inputs out (documents, tasks, comparisons)",
              _demo_data, DemoDataReport, takes_inputs=False),
        Stage("demo-claims", DemoClaimsConfig, "a demo run's stage folders in, the method's claims checked",
              _demo_claims, DemoClaimsReport, takes_inputs=False),
    )
}  # fmt: skip
GROUPS = {
    "synth": (
        "model-generated instructions: Self-Instruct, or pairs grounded in documents",
        "Instructions written by a model (local, or any OpenAI-compatible server), filtered, with every "
        "filter counted in report.json. `instructgpt synth KIND --help` lists a kind's fields.",
    )
}
