"""The stage registry is the one list of stages: the CLI's stage commands and the recipe runner's stage
kinds are the same set, every stage's `--help` lists its config fields, and the CLI starts without torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import yaml

from instructgpt.cli import _parser, main
from instructgpt.config import describe
from instructgpt.recipe import RecipeError, load_recipe
from instructgpt.reports import StageReport
from instructgpt.reports.data import PrepareReport
from instructgpt.stages import STAGES


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def cli_stages() -> set[str]:
    """The recipe kind of every CLI command that runs a stage (`synth context` is `synth-context`)."""
    found, todo = set(), [((), _parser())]
    while todo:
        words, parser = todo.pop()
        for name, sub in _subcommands(parser).items():
            if sub.get_default("stage") is not None:
                found.add("-".join((*words, name)))
            elif any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                todo.append(((*words, name), sub))
    return found


def recipe_kinds(tmp_path) -> set[str]:
    """The stage kinds `instructgpt run` accepts, as its error for an unknown kind lists them."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"stages": [{"name": "x", "stage": "nope"}]}))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    return set(str(err.value).split("expected one of: ")[1].split(", "))


def test_the_cli_and_the_recipe_runner_list_the_same_stages_from_the_registry(tmp_path) -> None:
    assert cli_stages() == recipe_kinds(tmp_path) == set(STAGES)
    assert STAGES["synth-context"].words == ("synth", "context") and STAGES["sft"].words == ("sft",)


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_help_lists_its_config_fields_and_flags(name: str, capsys) -> None:
    stage = STAGES[name]
    with pytest.raises(SystemExit) as exit_:
        main([*stage.words, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {key} (" in out for key, *_ in describe(stage.config))
    assert all(flag.option in out for flag in stage.flags) and stage.config.__doc__.strip()[:30] in out


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_loads_its_entry_point(name: str) -> None:
    stage = STAGES[name]
    assert callable(stage.load()) and issubclass(stage.report, StageReport)


def test_the_cli_starts_without_torch() -> None:
    code = "import sys, instructgpt.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_stage_command_passes_its_flags_through_the_registry(tmp_path, monkeypatch) -> None:
    """A flag with `sets` (`--format`) becomes its config field, the stage's run gets the one contract's
    arguments, the summary gets the report, and `--show-mask N` shows the mask instead of training."""
    from instructgpt.data import prepare
    from instructgpt.train import sft

    calls: list[tuple[str, object]] = []
    report = PrepareReport([], "documents.jsonl", 1, 1, 0, [], {}, {}, 0, {}, 1, 1, 0.1, 10.0, {})
    monkeypatch.setattr(
        prepare, "run", lambda *args, **kwargs: calls.append(("run", (args, kwargs))) or report
    )
    monkeypatch.setattr(PrepareReport, "summary", lambda self: calls.append(("summary", self)) or "")
    inputs, out = str(tmp_path / "in.jsonl"), tmp_path / "o"
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    assert main(["prepare", inputs, "-o", str(out), "--format", "document"]) == 0
    [(first, ((given, folder, config), kwargs)), (then, summarized)] = calls
    assert (first, given, folder, kwargs) == ("run", [inputs], out, {"on_error": "fail"})
    assert (then, summarized) == ("summary", report)
    assert config.format == "document"

    shown: list[tuple[list[str], object, int]] = []
    monkeypatch.setattr(sft, "show_mask", lambda inputs, config, n: shown.append((inputs, config, n)))
    monkeypatch.setattr(sft, "run", lambda *args, **kwargs: pytest.fail("--show-mask must not train"))
    args = ["sft", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "s"), "--show-mask", "2", "train.seed=7"]
    assert main(args) == 0
    assert [(inputs, n) for inputs, _, n in shown] == [([str(tmp_path / "in.jsonl")], 2)]
    assert shown[0][1].train.seed == 7


@pytest.mark.parametrize("name", list(STAGES))
def test_every_flag_that_sets_a_field_names_one_of_the_stages_config(name: str) -> None:
    stage = STAGES[name]
    assert all(hasattr(stage.config(), flag.sets) for flag in stage.flags if flag.sets)
