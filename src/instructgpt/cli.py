"""The `instructgpt` command: parses arguments, loads the stage's config, calls its `run()`; nothing else.

Every stage has the same shape: `instructgpt STAGE INPUT... -o OUTDIR [--config YAML] [key=value ...]`.
Arguments that look like `key=value` (and are not existing files) are config overrides.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from instructgpt import __version__
from instructgpt.config import ConfigError, PrepareConfig, describe, load_config

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")
EXIT_BAD_INPUT = 2


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
    except (DataError, ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instructgpt", description="The InstructGPT method, end to end.")
    parser.add_argument("--version", action="version", version=f"instructgpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="STAGE")
    prepare = sub.add_parser(
        "prepare",
        help="raw text in, clean Documents out",
        description="Clean, filter, deduplicate and decontaminate raw text into Documents.",
        epilog=_fields_help(PrepareConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument(
        "args", nargs="+", metavar="INPUT|key=value", help="input files and config overrides"
    )
    _common_options(prepare)
    prepare.set_defaults(handler=_prepare)
    demo = sub.add_parser(
        "demo", help="run the embedded demo", description="Run the embedded bilingual demo."
    )
    demo.add_argument(
        "-o", "--output", default="runs/demo", type=Path, help="run directory (default: runs/demo)"
    )
    demo.set_defaults(handler=_demo)
    return parser


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--config", type=Path, help="YAML file with config fields (overrides win over it)")
    parser.add_argument("--format", help="record format of the inputs, if not detected from their fields")
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="on a bad record: stop with file:line (exit 2), or skip, count and write it to rejects.jsonl",
    )


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


def _prepare(args: argparse.Namespace) -> int:
    from instructgpt.data import prepare

    inputs, overrides = _split_args(args.args)
    config = load_config(PrepareConfig, args.config, overrides)
    if not inputs:
        raise ConfigError("prepare: no input files given")
    report = prepare.run(inputs, args.output, config, args.format, args.on_error)
    prepare.print_summary(report)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from instructgpt.demo import run_demo

    run_demo(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
