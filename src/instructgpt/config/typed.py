"""The machinery of typed configs: `option(default, help, *checks)` fields, reading YAML plus `key=value`
overrides into a dataclass with validation and clear errors, and `describe` for `--help`. The stage configs
themselves are in this package's other modules.

Nested sections are dataclasses too and are addressed with dotted keys: `near_dedup.threshold=0.7`.

A field's constraints are declared once, with the field: `option(1, "Micro-batches per step.", at_least(1))`.
They are checked whenever a config is read (YAML, overrides, a recipe's section), shown in `--help` beside
the type, and a value that breaks one is a ConfigError naming the key. Every float must be finite.
Errors name the key, and a value read from a YAML file also names the file.

A section that renamed or retired a key keeps reading it for one release: the dataclass defines
`migrate(data, base, prefix)`, which `from_mapping` calls on the section's raw mapping first; it returns
the mapping in today's keys and reports each old one with `deprecated` (a warning on stderr naming the
recipe key and what replaces it). Keys a section lists in `retired_keys` are accepted as overrides too.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key is unknown or its value has the wrong type; the message names the key."""


@dataclasses.dataclass(frozen=True)
class Check:
    """A constraint on a field's value: `holds(value)` is true when it is met; `text` says what it asks
    for, after the type ("≥ 1" in "expected int ≥ 1")."""

    text: str
    holds: Callable[[Any], bool]


def at_least(low: float) -> Check:
    return Check(f"≥ {low}", lambda v: v >= low)


def above(low: float) -> Check:
    return Check(f"> {low}", lambda v: v > low)


def between(low: float, high: float, open_low: bool = False, open_high: bool = False) -> Check:
    """`low ≤ value ≤ high`; `open_low` / `open_high` leave that end out."""
    text = f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    return Check(
        text, lambda v: (low < v if open_low else low <= v) and (v < high if open_high else v <= high)
    )


def fraction() -> Check:
    return between(0, 1)


def length(n: int) -> Check:
    return Check(f"of length {n}", lambda v: len(v) == n)


def each(check: Check) -> Check:
    """`check` on every item of a list, or every value of a dict."""
    return Check(f"each {check.text}", lambda v: all(map(check.holds, _items(v))))


def each_key(check: Check) -> Check:
    return Check(f"each key {check.text}", lambda v: all(map(check.holds, v)))


def _items(value: Any) -> Any:
    return value.values() if isinstance(value, Mapping) else value


def deprecated(what: str, advice: str) -> None:
    """Warn on stderr (from the main process of a launch) that `what`, a recipe key as it was used, is
    deprecated; `advice` names what replaces it and what the next release will do."""
    if os.environ.get("RANK", "0") == "0":
        print(f"warning: {what} is deprecated: {advice}", file=sys.stderr)


def option(default: Any, help: str, *checks: Check, decides_outputs: bool = True) -> Any:
    """Declare a config field with its default, its one-line documentation and its constraints.
    `decides_outputs=False`: the field does not change what the stage writes (a server's port), so a
    recipe does not rerun the stage when only it changes."""
    metadata = {"help": help, "checks": checks, "decides_outputs": decides_outputs}
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build `cls` from an optional YAML file, then apply `key=value` overrides (later wins). An error in
    the file names the file and the key; one in an override names the key."""
    config = cls()
    if path is not None:
        try:
            config = from_mapping(cls, _read_yaml(Path(path)))
        except ConfigError as err:
            raise ConfigError(_in_file(Path(path), err)) from err
    data: dict[str, Any] = {}
    for item in overrides:
        key, raw = split_override(item)
        _set_dotted(data, key, _parse_override_value(cls, key, raw))
    return from_mapping(cls, data, base=config)


def _in_file(path: Path, err: ConfigError) -> str:
    text = str(err)
    return text if text.startswith(f"{path}:") else f"{path}: {text}"


def split_override(item: str) -> tuple[str, str]:
    """`"a.b=1"` → `("a.b", "1")`; anything without `=` is an error."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{item!r}: an override must look like key=value")
    return key.strip(), raw


def from_mapping(cls: type[T], data: Mapping[str, Any], prefix: str = "", base: T | None = None) -> T:
    """Validate `data` against the dataclass `cls`, on top of `base` (default: `cls()`), so a section's
    keys left out keep the defaults its parent gave it; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or '<config>'}: expected a mapping, got {_show(data)}")
    base = cls() if base is None else base
    migrate = getattr(cls, "migrate", None)
    if migrate is not None:
        data = migrate(data, base, prefix)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; expected one of: {', '.join(fields)}")
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = from_mapping(hints[key], value, f"{prefix}{key}.", getattr(base, key))
        else:
            kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
            _check(kwargs[key], hints[key], fields[key], f"{prefix}{key}")
    return dataclasses.replace(base, **kwargs)


def _check(value: Any, tp: Any, field: dataclasses.Field, key: str) -> None:
    for check in field.metadata.get("checks", ()):
        if value is not None and not check.holds(value):
            raise ConfigError(f"{key}: expected {type_name(tp)} {check.text}, got {value!r}")


def checks_text(field: dataclasses.Field) -> str:
    """The field's constraints as `describe` shows them after the type: " ≥ 1", or ""."""
    return "".join(f" {check.text}" for check in field.metadata.get("checks", ()))


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (for writing beside a stage's outputs)."""
    return dataclasses.asdict(config)


def outputs_dict(config: Any) -> dict[str, Any]:
    """`to_dict` without the fields declared `decides_outputs=False` (for fingerprints)."""
    data = dataclasses.asdict(config)
    _drop_non_outputs(config, data)
    return data


def _drop_non_outputs(config: Any, data: dict[str, Any]) -> None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not f.metadata.get("decides_outputs", True):
            del data[f.name]
        elif dataclasses.is_dataclass(value):
            _drop_non_outputs(value, data[f.name])


def describe(cls: type, prefix: str = "", instance: Any = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every leaf field of `cls`, nested sections flattened; defaults
    are those of `instance` (default `cls()`), so a section shows what its parent sets."""
    instance = cls() if instance is None else instance
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, value = hints[f.name], getattr(instance, f.name)
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, f"{prefix}{f.name}.", value))
            continue
        rows.append(
            (prefix + f.name, type_name(tp) + checks_text(f), repr(value), f.metadata.get("help", ""))
        )
    return rows


def type_name(tp: Any) -> str:
    """A short readable name for a field type, used in help and error messages."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + "|".join(str(a) for a in args)
    if _is_union(tp):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, dict, tuple):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        return _coerce_union(value, args, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {_show(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {_show(value)}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {_show(value)}")
        return {
            _coerce(k, args[0], f"{key}.{k}"): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()
        }
    return _coerce_scalar(value, tp, key)


def _coerce_scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is float:
        return _coerce_float(value, key)
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp is type(None) and value is None:
        return None
    # bool is an int subclass: `min_units: true` must not pass as 1.
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {type_name(tp)}, got {_show(value)}")


def _coerce_float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key}: expected float, got {_show(value)}")
    try:
        number = float(value)  # YAML 1.1 reads 3e-3 (no dot) as a string
    except (ValueError, OverflowError):
        raise ConfigError(f"{key}: expected float, got {_show(value)}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite float, got {value!r}")
    return number


def _coerce_union(value: Any, args: tuple, key: str) -> Any:
    for arg in args:
        try:
            return _coerce(value, arg, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key}: expected {' or '.join(type_name(a) for a in args)}, got {_show(value)}")


def _is_union(tp: Any) -> bool:
    return get_origin(tp) is Union or isinstance(tp, types.UnionType)


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{_yaml_place(path, err)}: not valid YAML: {_yaml_problem(err)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return data


def _yaml_place(path: Path, err: yaml.YAMLError) -> str:
    """`file:line:column` of a YAML error (1-based), or the file alone when YAML gives no place."""
    mark = getattr(err, "problem_mark", None)
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    return "; ".join(p for p in parts if p) or str(err)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part} is not a section")
        node = child
    node[leaf] = value


def _parse_override_value(cls: type, key: str, raw: str) -> Any:
    """Parse `raw` as YAML, except for plain-string fields where the text is taken as it is."""
    tp = _field_type(cls, key)
    if tp is str or (_is_union(tp) and str in get_args(tp) and raw not in ("null", "~")):
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"{key}: cannot parse {raw!r}: {err}") from err


def _field_type(cls: type, key: str) -> Any:
    tp: Any = cls
    for part in key.split("."):
        if not dataclasses.is_dataclass(tp):
            return None
        hints = typing.get_type_hints(tp)
        if part in getattr(tp, "retired_keys", ()):
            return None  # read as YAML; the section's `migrate` deals with it
        if part not in hints:
            names = ", ".join(f.name for f in dataclasses.fields(tp))
            raise ConfigError(f"{key}: unknown key; expected one of: {names}")
        tp = hints[part]
    return tp
