"""The `instructgpt` command: parses arguments, loads the stage's config, calls its `run()`; nothing else.

Every stage has the same shape: `instructgpt STAGE INPUT... -o OUTDIR [--config YAML] [key=value ...]`.
Arguments that look like `key=value` (and are not existing files) are config overrides. The stage
commands, their `--help` and their extra flags come from the registry (`instructgpt.stages.STAGES`);
chat, serve, show, score, run and demo are written here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from instructgpt import __version__
from instructgpt.config import (
    ChatConfig,
    ConfigError,
    ScoreConfig,
    ServeConfig,
    describe,
    load_config,
)
from instructgpt.progress import quiet_library_bars
from instructgpt.stages import GROUPS, STAGES, Flag, Stage
from instructgpt.threads import quiet_openmp_wait

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1  # valid input, but the run could not finish (training diverged)
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp_wait()  # before torch loads: OpenMP reads its wait policy once
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
    quiet_library_bars()
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
    groups: dict[str, Any] = {}
    for stage in STAGES.values():
        if stage.group and stage.group not in groups:
            groups[stage.group] = _group_parser(sub, stage.group)
        _stage_parser(groups.get(stage.group or "", sub), stage)
    score = "Comparisons or Conversations in, reward-model scores out"
    _inputs_parser(sub, "score", ScoreConfig, score).set_defaults(handler=_score)
    _model_parser(sub, "chat", ChatConfig, "chat with a model in the terminal").set_defaults(handler=_chat)
    serve = "serve a model over an OpenAI-compatible HTTP API"
    _model_parser(sub, "serve", ServeConfig, serve).set_defaults(handler=_serve)
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
    _board_parser(sub)
    return parser


def _board_parser(sub: Any) -> None:
    board = sub.add_parser(
        "board",
        help="a local web page to watch and compare runs",
        description="Serve a page listing the runs in RUNS_DIR (recipe runs and single stage folders): "
        "each stage's status, live metric curves, the run report, eval tables and samples, and a compare "
        "view of two or more runs. With --recipes, its recipes can be started from the page. Any running "
        "recipe run can be stopped from it (Ctrl-C to its recorded process). Ctrl-C on the board leaves "
        "the runs it started going.",
    )
    board.add_argument("runs_dir", type=Path, help="folder of runs (e.g. runs/)")
    board.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    board.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any free port)")
    board.add_argument("--read-only", action="store_true", help="refuse starting and stopping runs")
    board.add_argument("--recipes", type=Path, help="folder of recipe YAML files the page may start")
    board.set_defaults(handler=_board)


def _group_parser(sub: Any, group: str) -> Any:
    """A command with stages under it (`synth self-instruct`, `synth context`)."""
    help_line, description = GROUPS[group]
    parser = sub.add_parser(group, help=help_line, description=description)
    return parser.add_subparsers(dest=f"{group}_kind", metavar="KIND", required=True)


def _stage_parser(sub: Any, stage: Stage) -> None:
    """A registry stage's command: the shared options, its extra flags, and the one stage handler."""
    parser = _inputs_parser(
        sub, stage.words[-1], stage.config, stage.help, stage.takes_inputs, stage.needs_output
    )
    for flag in stage.flags:
        if flag.value_type is bool:
            parser.add_argument(flag.option, action="store_true", help=flag.help)
        else:
            parser.add_argument(
                flag.option, type=flag.value_type, metavar=flag.metavar, help=flag.help, nargs=flag.nargs
            )
    parser.set_defaults(handler=_run_stage, stage=stage)


def _inputs_parser(
    sub: Any,
    name: str,
    config_cls: type,
    summary: str,
    takes_inputs: bool = True,
    needs_output: bool = True,
) -> argparse.ArgumentParser:
    """Inputs and `key=value` overrides, -o, --config, --on-error, and the config's field list."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=inspect.cleandoc(config_cls.__doc__ or summary),
        epilog=_fields_help(config_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if takes_inputs:
        parser.add_argument(
            "args",
            nargs="+",
            metavar="INPUT|key=value",
            help="input files, folders or 🤗 datasets ('hf:NAME?split=train', README: Inputs) "
            "and config overrides",
        )
    else:
        parser.add_argument("args", nargs="*", metavar="key=value", help="config overrides")
    where = "output folder" if needs_output else "output folder (default: print the report only)"
    parser.add_argument("-o", "--output", required=needs_output, type=Path, help=where)
    parser.add_argument("--config", type=Path, help="YAML file with config fields (overrides win over it)")
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="on a bad record: stop with file:line (exit 2), or skip, count and write it to rejects.jsonl",
    )
    parser.set_defaults(takes_inputs=takes_inputs)
    return parser


def _model_parser(sub: Any, name: str, config_cls: type, summary: str) -> argparse.ArgumentParser:
    """`chat` and `serve`: one model and `key=value` overrides."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=inspect.cleandoc(config_cls.__doc__ or ""),
        epilog=_fields_help(config_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "args", nargs="+", metavar="MODEL|key=value", help="model folder, hub id or .gguf, and overrides"
    )
    parser.add_argument("--config", type=Path, help="YAML file with config fields")
    return parser


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
    """Inputs and the config: YAML file, then `key=value` overrides, then dedicated flags."""
    inputs, overrides = _split_args(args.args)
    overrides += [f"{key}={value}" for key, value in (flags or {}).items() if value is not None]
    config = load_config(config_cls, args.config, overrides)
    if not inputs and args.takes_inputs:
        raise ConfigError(f"{args.command}: no input files given")
    return inputs, config


def _run_stage(args: argparse.Namespace) -> int:
    """Any registry stage: its config, then the flag that replaces the run if one was given, else the
    run and (on the main process only) its summary."""
    stage: Stage = args.stage
    flags = {flag.sets: _flag_value(args, flag) for flag in stage.flags if flag.sets}
    inputs, config = _load(stage.config, args, flags)
    for flag in stage.flags:
        if flag.instead and getattr(args, flag.dest):
            flag.instead(inputs, args.output, config, getattr(args, flag.dest))
            return 0
    if args.output is None:  # a stage that only reports, run without -o
        with tempfile.TemporaryDirectory(prefix=f"instructgpt-{stage.name}-") as folder:
            report = stage.run(inputs, Path(folder), config, args.on_error)
        print(dataclasses.replace(report, folder=None).summary())
        return 0
    report = stage.run(inputs, args.output, config, args.on_error)
    if _main_process():
        print(report.summary())
    return 0


def _flag_value(args: argparse.Namespace, flag: Flag) -> Any:
    """A flag's value for its override; a list flag's values as a YAML list, less the `key=value`
    overrides it took in after them (`--against a.jsonl ngram=8`), which go back to the overrides."""
    value = getattr(args, flag.dest)
    if not isinstance(value, list):
        return value
    files, overrides = _split_args(value)
    args.args = [*args.args, *overrides]
    return json.dumps(files)


def _main_process() -> bool:
    """Under torchrun / accelerate launch only rank 0 prints the summary (the others hold the same)."""
    return os.environ.get("RANK", "0") == "0"


def _score(args: argparse.Namespace) -> int:
    from instructgpt.train import reward

    inputs, config = _load(ScoreConfig, args)
    reward.print_scores(reward.score_file(inputs, args.output, config, args.on_error))
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


def _board(args: argparse.Namespace) -> int:
    from instructgpt.board.api import Board
    from instructgpt.board.jobs import Jobs
    from instructgpt.board.server import serve

    root = args.runs_dir.resolve()
    recipes = None if args.read_only else args.recipes
    serve(Board(root, args.read_only, Jobs(root, recipes)), args.host, args.port)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """`instructgpt run` on the embedded demo recipe, then the method's claims as this run measured them."""
    from instructgpt.demo import recipe_path
    from instructgpt.reports.demo import DemoClaimsReport

    args.recipe, args.from_stage = recipe_path(), None
    status = _run(args)
    measured = DemoClaimsReport.read(Path(args.output) / "claims")
    if status == 0 and measured is not None:
        print(measured.summary())
    return status


if __name__ == "__main__":
    sys.exit(main())
