"""The `instructgpt` command: parses arguments, loads the stage's config, calls its `run()`; nothing else.

Every stage has the same shape: `instructgpt STAGE INPUT... -o OUTDIR [--config YAML] [key=value ...]`.
Arguments that look like `key=value` (and are not existing files) are config overrides.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from instructgpt import __version__
from instructgpt.config import (
    ChatConfig,
    ConfigError,
    CorpusConfig,
    DPOConfig,
    EvalConfig,
    FinetuneTaskConfig,
    GenerateConfig,
    InstructConfig,
    PPOConfig,
    PrepareConfig,
    PretrainConfig,
    RewardConfig,
    ScoreConfig,
    ServeConfig,
    SFTConfig,
    describe,
    load_config,
)
from instructgpt.instruct.synth.config import ContextSynthConfig, SelfInstructConfig

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1  # valid input, but the run could not finish (training diverged)
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # Inputs and overrides may come after options (`prepare a.txt -o out b.txt k=v`); argparse leaves
    # those unparsed, so they are collected here.
    args, extra = parser.parse_known_args(argv)
    unknown = [arg for arg in extra if arg.startswith("-")]
    if unknown or (extra and not hasattr(args, "args")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.args = [*args.args, *extra]
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from instructgpt.io import DataError

    try:
        return args.handler(args)
    except (DataError, ConfigError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as err:
        if not _training_stopped(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _training_stopped(err: RuntimeError) -> bool:
    """A NaN/inf loss stopped a training run (its message says what to do); imported only when a run
    failed, so that the CLI starts without torch."""
    from instructgpt.train.loop import NonFiniteLossError

    return isinstance(err, NonFiniteLossError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instructgpt", description="The InstructGPT method, end to end.")
    parser.add_argument("--version", action="version", version=f"instructgpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="STAGE")
    prepare = _stage(sub, "prepare", PrepareConfig, _prepare, "raw text in, clean Documents out")
    prepare.add_argument("--format", help="record format of the inputs, if not detected from their fields")
    instruct = _stage(
        sub, "instruct", InstructConfig, _instruct, "TaskExamples in, instruction Conversations out"
    )
    instruct.add_argument(
        "--layout", help="input layout (squad, text_label, ...), if not detected; sets `layout`"
    )
    instruct.add_argument("--templates-per-example", type=int, help="sets `templates_per_example`")
    corpus = _stage(sub, "corpus", CorpusConfig, _corpus, "Documents in, instruction-augmented corpus out")
    corpus.add_argument("--format", help="record format of the inputs, if not detected from their fields")
    _synth_parsers(sub)
    pretrain = _stage(
        sub, "pretrain", PretrainConfig, _pretrain, "text in, a pretrained model out (CLM or MLM)"
    )
    pretrain.add_argument("--format", help="record format of the inputs, if not detected from their fields")
    sft = _stage(sub, "sft", SFTConfig, _sft, "Conversations in, a fine-tuned model out")
    sft.add_argument(
        "--show-mask",
        type=int,
        metavar="N",
        help="print N rendered examples with trained tokens marked, then exit",
    )
    finetune = _stage(
        sub, "finetune-task", FinetuneTaskConfig, _finetune_task, "encoder + head: sentiment or QA"
    )
    finetune.add_argument(
        "--layout", help="input layout (squad, text_label, ...), if not detected; sets `layout`"
    )
    _stage(sub, "reward", RewardConfig, _trainer("reward", RewardConfig), "Comparisons in, a reward model")
    _stage(sub, "score", ScoreConfig, _score, "Comparisons or Conversations in, reward-model scores out")
    _stage(sub, "ppo", PPOConfig, _trainer("ppo", PPOConfig), "Prompts in, a PPO(-ptx)-aligned policy out")
    _stage(sub, "dpo", DPOConfig, _trainer("dpo", DPOConfig), "Comparisons in, a DPO/IPO/SimPO policy out")
    _stage(sub, "eval", EvalConfig, _eval, "Conversations and models in: task scores, win rates")
    generate = _stage(
        sub, "generate", GenerateConfig, _generate, "Prompts or Conversations in, model responses out"
    )
    generate.add_argument("--format", help="record format of the inputs, if not detected from their fields")
    chat = sub.add_parser(
        "chat",
        help="chat with a model in the terminal",
        description=ChatConfig.__doc__,
        epilog=_fields_help(ChatConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument(
        "args", nargs="+", metavar="MODEL|key=value", help="model folder, hub id or .gguf, and overrides"
    )
    chat.add_argument("--config", type=Path, help="YAML file with config fields")
    chat.set_defaults(handler=_chat)
    serve = sub.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description=inspect.cleandoc(ServeConfig.__doc__ or ""),
        epilog=_fields_help(ServeConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "args", nargs="+", metavar="MODEL|key=value", help="model folder, hub id or .gguf, and overrides"
    )
    serve.add_argument("--config", type=Path, help="YAML file with config fields")
    serve.set_defaults(handler=_serve)
    show = sub.add_parser(
        "show",
        help="print records as a person reads them",
        description="Print records of any file (conversations, comparisons, documents...) readably.",
    )
    show.add_argument("file", type=Path, help="any file of records")
    show.add_argument("-n", type=int, default=5, help="how many records (default 5)")
    show.add_argument("--offset", type=int, default=0, help="records to skip first")
    show.add_argument("--format", help="record format, if not detected from the fields")
    show.set_defaults(handler=_show)
    run = sub.add_parser(
        "run",
        help="run a recipe's stages, skipping those up to date, and write a report",
        description="Run the stages a recipe names in order; stages whose outputs are up to date are "
        "skipped, an interrupted training stage is resumed, and RUN_DIR/report.md and report.html are "
        "written at the end. The recipe format is documented in instructgpt.pipeline.",
    )
    run.add_argument("recipe", type=Path, help="recipe YAML file")
    run.add_argument("-o", "--output", type=Path, help="run directory (default: the recipe's run_dir)")
    run.add_argument("--from", dest="from_stage", metavar="STAGE", help="rerun this stage and all after it")
    run.add_argument("--force", action="store_true", help="rerun every stage, even those up to date")
    run.set_defaults(handler=_run)
    demo = sub.add_parser(
        "demo",
        help="run the embedded demo",
        description="Run the embedded bilingual demo recipe (recipes/demo.yaml) with `instructgpt run`.",
    )
    demo.add_argument(
        "-o", "--output", default="runs/demo", type=Path, help="run directory (default: runs/demo)"
    )
    demo.add_argument("--force", action="store_true", help="rerun every stage, even those up to date")
    demo.set_defaults(handler=_demo)
    return parser


def _stage(sub: Any, name: str, config_cls: type, handler: Any, summary: str) -> argparse.ArgumentParser:
    """A stage's parser: inputs and `key=value` overrides, -o, --config, --on-error, and the field list."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=(config_cls.__doc__ or summary).strip(),
        epilog=_fields_help(config_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("args", nargs="+", metavar="INPUT|key=value", help="input files and config overrides")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--config", type=Path, help="YAML file with config fields (overrides win over it)")
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="on a bad record: stop with file:line (exit 2), or skip, count and write it to rejects.jsonl",
    )
    parser.set_defaults(handler=handler)
    return parser


def _synth_parsers(sub: Any) -> None:
    """`synth self-instruct` and `synth context`: two stages under one command."""
    synth = sub.add_parser(
        "synth",
        help="model-generated instructions: Self-Instruct, or pairs grounded in documents",
        description="Instructions written by a model (local, or any OpenAI-compatible server), filtered, "
        "with every filter counted in report.json. `instructgpt synth KIND --help` lists a kind's fields.",
    )
    kinds = synth.add_subparsers(dest="synth_kind", metavar="KIND", required=True)
    summary = "seed tasks in, Self-Instruct instructions and instances out"
    _stage(kinds, "self-instruct", SelfInstructConfig, _synth_self_instruct, summary)
    context = _stage(
        kinds, "context", ContextSynthConfig, _synth_context, "Documents in, pairs grounded in them out"
    )
    context.add_argument("--format", help="record format of the inputs, if not detected from their fields")


def _fields_help(config_cls: type) -> str:
    lines = ["config fields (set in --config YAML or as key=value):"]
    for key, type_name, default, help_text in describe(config_cls):
        lines.append(f"  {key} ({type_name}, default {default})")
        lines.append(f"      {help_text}")
    return "\n".join(lines)


def _split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    inputs, overrides = [], []
    for arg in args:
        is_override = _OVERRIDE.match(arg) and not Path(arg).exists()
        (overrides if is_override else inputs).append(arg)
    return inputs, overrides


def _load(
    config_cls: type[T], args: argparse.Namespace, flags: dict[str, Any] | None = None
) -> tuple[list[str], T]:
    """Inputs and the stage config: YAML file, then `key=value` overrides, then dedicated flags."""
    inputs, overrides = _split_args(args.args)
    overrides += [f"{key}={value}" for key, value in (flags or {}).items() if value is not None]
    config = load_config(config_cls, args.config, overrides)
    if not inputs:
        raise ConfigError(f"{args.command}: no input files given")
    return inputs, config


def _prepare(args: argparse.Namespace) -> int:
    from instructgpt.data import prepare

    inputs, config = _load(PrepareConfig, args)
    report = prepare.run(inputs, args.output, config, args.format, args.on_error)
    prepare.print_summary(report)
    return 0


def _instruct(args: argparse.Namespace) -> int:
    from instructgpt.instruct import build

    flags = {"layout": args.layout, "templates_per_example": args.templates_per_example}
    inputs, config = _load(InstructConfig, args, flags)
    report = build.run(inputs, args.output, config, args.on_error)
    build.print_summary(report, args.output)
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from instructgpt.instruct import corpus

    inputs, config = _load(CorpusConfig, args)
    report = corpus.run(inputs, args.output, config, args.format, args.on_error)
    corpus.print_summary(report, args.output)
    return 0


def _synth_self_instruct(args: argparse.Namespace) -> int:
    from instructgpt.instruct.synth import self_instruct

    inputs, config = _load(SelfInstructConfig, args)
    report = self_instruct.run(inputs, args.output, config, args.on_error)
    self_instruct.print_summary(report, args.output)
    return 0


def _synth_context(args: argparse.Namespace) -> int:
    from instructgpt.instruct.synth import context

    inputs, config = _load(ContextSynthConfig, args)
    report = context.run(inputs, args.output, config, args.format, args.on_error)
    context.print_summary(report, args.output)
    return 0


def _main_process() -> bool:
    """Under torchrun / accelerate launch only rank 0 prints the summary (the others hold the same)."""
    return os.environ.get("RANK", "0") == "0"


def _pretrain(args: argparse.Namespace) -> int:
    from instructgpt.train import pretrain

    inputs, config = _load(PretrainConfig, args)
    report = pretrain.run(inputs, args.output, config, args.format, args.on_error)
    if _main_process():
        pretrain.print_summary(report)
    return 0


def _sft(args: argparse.Namespace) -> int:
    from instructgpt.train import sft

    inputs, config = _load(SFTConfig, args)
    if args.show_mask:
        sft.show_mask(inputs, config, args.show_mask)
        return 0
    report = sft.run(inputs, args.output, config, args.on_error)
    if _main_process():
        sft.print_summary(report)
    return 0


def _finetune_task(args: argparse.Namespace) -> int:
    from instructgpt.train import finetune_task

    inputs, config = _load(FinetuneTaskConfig, args, {"layout": args.layout})
    report = finetune_task.run(inputs, args.output, config, args.on_error)
    if _main_process():
        finetune_task.print_summary(report)
    return 0


def _trainer(module: str, config_cls: type) -> Callable[[argparse.Namespace], int]:
    """The handler of an alignment stage: `instructgpt.train.<module>.run(...)`, then its summary."""

    def handler(args: argparse.Namespace) -> int:
        stage = importlib.import_module(f"instructgpt.train.{module}")
        inputs, config = _load(config_cls, args)
        report = stage.run(inputs, args.output, config, args.on_error)
        if _main_process():
            stage.print_summary(report)
        return 0

    return handler


def _score(args: argparse.Namespace) -> int:
    from instructgpt.train import reward

    inputs, config = _load(ScoreConfig, args)
    reward.print_scores(reward.score_file(inputs, args.output, config, args.on_error))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from instructgpt.evaluate import suite

    inputs, config = _load(EvalConfig, args)
    report = suite.run(inputs, args.output, config, args.on_error)
    if _main_process():
        suite.print_summary(report)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from instructgpt.generation import stage as generation

    inputs, config = _load(GenerateConfig, args)
    report = generation.generate_file(inputs, args.output, config, args.on_error, fmt=args.format)
    generation.print_summary(report, args.output)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from instructgpt.generation import chat as generation
    from instructgpt.models import load_model

    models, overrides = _split_args(args.args)
    if len(models) != 1:
        raise ConfigError("chat: give exactly one model (a folder, hub id or .gguf file)")
    config = load_config(ChatConfig, args.config, [f"model.name={models[0]}", *overrides])
    model, tokenizer = load_model(config.model, "causal_lm")
    generation.chat_repl(model, tokenizer, config.sampling, system=config.system)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from instructgpt import serve

    models, overrides = _split_args(args.args)
    if len(models) != 1:
        raise ConfigError("serve: give exactly one model (a folder, hub id or .gguf file)")
    serve.run(load_config(ServeConfig, args.config, [f"model.name={models[0]}", *overrides]))
    return 0


def _show(args: argparse.Namespace) -> int:
    from instructgpt.show import show

    show(args.file, args.n, args.offset, args.format)
    return 0


def _run(args: argparse.Namespace) -> int:
    from instructgpt import pipeline

    try:
        report = pipeline.main_run(args.recipe, args.output, args.force, args.from_stage)
    except pipeline.StageFailed as err:
        pipeline.print_summary(err.report)
        print(f"error: {err}", file=sys.stderr)
        return 1
    pipeline.print_summary(report)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """`instructgpt run` on the embedded demo recipe, then the method's claims as this run measured them."""
    import json

    from instructgpt.demo import claims, recipe_path

    args.recipe, args.from_stage = recipe_path(), None
    status = _run(args)
    measured = Path(args.output) / "claims" / "claims.json"
    if status == 0 and measured.is_file():
        claims.print_summary(json.loads(measured.read_text(encoding="utf-8")))
    return status


if __name__ == "__main__":
    sys.exit(main())
