"""Recipes: reading a recipe YAML file and checking all of it before anything runs.

The format is documented in `instructgpt.pipeline`, which runs what `load_recipe` returns. The check
covers the stage kinds (the registry, `instructgpt.stages.STAGES`), unique names, `{NAME}` references to
earlier stages only, each stage's typed config (errors name the key), `format` (put into the config's
`format` field) and `launch` only where the stage takes them, an annotate stage's `target`, and that
outside inputs exist.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from instructgpt.config import ConfigError, from_mapping
from instructgpt.io_hub import is_spec
from instructgpt.stages import STAGES


class RecipeError(ConfigError):
    """The recipe is malformed; the message names the recipe file, the stage and the field."""


_RECIPE_KEYS = ("run_dir", "on_error", "stages")
_STAGE_KEYS = ("name", "stage", "inputs", "config", "format", "on_error", "launch")
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w-]*)\}")


@dataclass
class RecipeStage:
    """One recipe entry, validated: placeholders resolved and its config typed."""

    name: str
    kind: str  # its key in STAGES
    inputs: list[str]
    config: Any
    refs: set[str] = field(default_factory=set)  # earlier stages it refers to
    on_error: str = "fail"
    launch: list[str] = field(default_factory=list)  # command prefix of a multi-process stage


@dataclass
class Recipe:
    path: Path
    text: str
    run_dir: Path
    stages: list[RecipeStage]


def load_recipe(path: str | Path, run_dir: str | Path | None = None) -> Recipe:
    """Read and validate the whole recipe; raises RecipeError naming the file, stage and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as err:
        raise RecipeError(f"{path}: cannot read the recipe: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with a `stages` list")
    _check_keys(data, _RECIPE_KEYS, f"{path}")
    entries = data.get("stages")
    if not isinstance(entries, list) or not entries:
        raise RecipeError(f"{path}: stages: expected a non-empty list of stages")
    folder = Path(run_dir or data.get("run_dir") or Path("runs") / path.stem)
    names = _stage_names(path, entries)
    default_on_error = _on_error(data.get("on_error", "fail"), f"{path}: on_error")
    stages = [
        _load_stage(path, entry, names[:i], names[i + 1 :], folder, default_on_error)
        for i, entry in enumerate(entries)
    ]
    return Recipe(path, text, folder, stages)


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise RecipeError(f"{where}: {key}: unknown key; expected one of: {', '.join(allowed)}")


def _stage_names(path: Path, entries: list[Any]) -> list[str]:
    names: list[str] = []
    for i, entry in enumerate(entries):
        where = f"{path}: stages[{i}]"
        if not isinstance(entry, dict):
            raise RecipeError(f"{where}: expected a mapping with name, stage, inputs, config")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise RecipeError(f"{where}: name: expected a word (letters, digits, _ or -), got {name!r}")
        if name in names:
            raise RecipeError(f"{where}: name: {name!r} is used by an earlier stage; names must be unique")
        names.append(name)
    return names


def _on_error(value: Any, where: str) -> str:
    if value not in ("fail", "skip"):
        raise RecipeError(f"{where}: expected fail or skip, got {value!r}")
    return value


def _load_stage(
    path: Path, entry: dict[str, Any], earlier: list[str], later: list[str], run_dir: Path, on_error: str
) -> RecipeStage:
    where = f"{path}: stage {entry['name']!r}"
    _check_keys(entry, _STAGE_KEYS, where)
    kind = entry.get("stage")
    if kind not in STAGES:
        raise RecipeError(f"{where}: stage: unknown stage {kind!r}; expected one of: {', '.join(STAGES)}")
    stage = RecipeStage(
        entry["name"], kind, [], None, on_error=_on_error(entry.get("on_error", on_error), where)
    )
    resolve = _Resolver(where, earlier, later, run_dir, stage.refs)
    inputs = entry.get("inputs", [])
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not all(isinstance(p, str) for p in inputs):
        raise RecipeError(f"{where}: inputs: expected a list of paths, got {inputs!r}")
    stage.inputs = [resolve(p, f"inputs[{i}]") for i, p in enumerate(inputs)]
    for i, (raw, resolved) in enumerate(zip(inputs, stage.inputs, strict=True)):
        if not _PLACEHOLDER.search(raw) and not is_spec(resolved) and not Path(resolved).exists():
            raise RecipeError(f"{where}: inputs[{i}]: {resolved} does not exist")
    given = resolve.walk(entry.get("config") or {}, "config")
    stage.config = _with_format(_typed_config(kind, given, where), given, entry.get("format"), kind, where)
    stage.launch = _launch(entry.get("launch"), kind, where)
    if kind == "annotate" and stage.config.target < 1:  # Ctrl-C would end the labels, not the run
        raise RecipeError(f"{where}: config.target: an annotate stage needs the number of labels to wait for")
    return stage


def _with_format(config: Any, given: Mapping[str, Any], fmt: Any, kind: str, where: str) -> Any:
    """The typed `config` with the stage's `format:` key (the inputs' record format) as its `format`
    field; `given` is the `config:` mapping it was read from."""
    if fmt is None:
        return config
    if not isinstance(fmt, str) or not _takes_format(kind):
        takers = ", ".join(name for name in STAGES if _takes_format(name))
        raise RecipeError(f"{where}: format: only {takers} stages take a format name")
    if given.get("format", fmt) != fmt:
        raise RecipeError(
            f"{where}: format: {fmt!r}, but config.format is {given['format']!r}; give the format once"
        )
    try:
        return from_mapping(type(config), {"format": fmt}, base=config)
    except ConfigError as err:
        raise RecipeError(f"{where}: {err}") from err


def _takes_format(kind: str) -> bool:
    return "format" in {f.name for f in fields(STAGES[kind].config)}


def _launch(value: Any, kind: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(
            f"{where}: launch: expected a command prefix such as `accelerate launch`, got {value!r}"
        )
    if not STAGES[kind].launchable:
        launchable = ", ".join(name for name, spec in STAGES.items() if spec.launchable)
        raise RecipeError(f"{where}: launch: only {launchable} stages run as process groups")
    return shlex.split(value)


@dataclass
class _Resolver:
    """Replaces `{NAME}` with RUN_DIR/NAME for earlier stages, remembering which ones were used."""

    where: str
    earlier: list[str]
    later: list[str]
    run_dir: Path
    refs: set[str]

    def __call__(self, text: str, key: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:  # `{{` or `}}`
                return match.group(0)[0]
            if name in self.earlier:
                self.refs.add(name)
                return str(self.run_dir / name)
            if name in self.later:
                raise RecipeError(
                    f"{self.where}: {key}: {{{name}}} refers to a later stage; a stage can only use "
                    "the outputs of stages before it"
                )
            known = ", ".join(self.earlier) or "none"
            raise RecipeError(f"{self.where}: {key}: {{{name}}} names no earlier stage (earlier: {known})")

        return _PLACEHOLDER.sub(substitute, text)

    def walk(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            return self(value, key)
        if isinstance(value, list):
            return [self.walk(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.walk(v, f"{key}.{k}") for k, v in value.items()}
        return value


def _typed_config(kind: str, data: Any, where: str) -> Any:
    try:
        return from_mapping(STAGES[kind].config, data, "config.")
    except ConfigError as err:
        raise RecipeError(f"{where}: {err}") from err
