"""`instructgpt run RECIPE.yaml`: runs the stages a recipe names, in order, skipping those up to date.

A recipe is a YAML file that opens with the command that runs it:

```yaml
# instructgpt run recipes/demo.yaml
run_dir: runs/demo            # default runs/<recipe name>; `-o RUN_DIR` overrides
on_error: fail                # default for every stage: fail | skip (bad records)
stages:
  - name: prepare             # unique; its folder is RUN_DIR/prepare
    stage: prepare            # prepare, instruct, corpus, pretrain, sft, reward, ppo, dpo, eval,
                              # generate, finetune-task, synth-self-instruct, synth-context,
                              # demo-data (the embedded demo's inputs), demo-claims (the
                              # method's claims checked on the run's outputs)
    inputs: [data/raw]        # paths (relative to the current directory), or "{NAME}/file" for a file
                              # in an earlier stage's folder
    config: {near_dedup: {threshold: 0.8}}   # the stage's config fields, nested as in its own YAML
    format: null              # optional, record format of the inputs (prepare, corpus, pretrain, generate)
    on_error: fail            # optional, overrides the recipe's
  - name: sft_b
    stage: sft
    inputs: ["{instruct}/train.jsonl"]
    config: {model: {name: "{pretrain_b}/model"}, train: {steps: 100}}
    launch: accelerate launch --config_file recipes/accelerate/fsdp.yaml   # optional, see below
```

`{NAME}` in an input or in any string config value becomes RUN_DIR/NAME; `{{` and `}}` are literal
braces. The whole recipe is checked before anything runs: stage kinds, unique names, references to
earlier stages only, the typed configs (errors name the key), and that outside inputs exist.

A stage is up to date when its folder's `stage.json` says "done" with the same fingerprint: sha256 over
the stage kind, its resolved config, the bytes of its outside inputs (and of outside files or folders
its config names) and the fingerprints of the stages it refers to. File hashes are cached by (path,
size, mtime) in RUN_DIR/.hashes.json. `--force` reruns every stage, `--from NAME` that one and all after
it. A stage left "running" (the process was killed or interrupted) with the same fingerprint is resumed
with `train.resume=auto` when it is a training stage with checkpoints, and in its kept folder when it is
a synthesis stage (its response cache there spares the answers already paid for); any other stage that
runs starts from an empty folder. A failing stage stops the run and is marked "failed".

`launch` runs a stage (pretrain, sft, reward, ppo, dpo, eval) as its own multi-process job: the command
prefix is followed by `-m instructgpt.cli KIND INPUTS -o FOLDER --config FOLDER/launch_config.yaml`, so
`accelerate launch ...` or `torchrun --nproc-per-node 8` spreads that stage over GPUs while the recipe
itself runs in one process. The number of processes does not change what a stage computes (its loops
keep the global batch), so `launch` is not part of the fingerprint. At the end the run writes
`run_report.json`, `report.md` and `report.html` (see `instructgpt.report`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from instructgpt import config as config_module
from instructgpt.config import ConfigError, from_mapping, to_dict
from instructgpt.io import write_json


class RecipeError(ConfigError):
    """The recipe is malformed; the message names the recipe file, the stage and the field."""


class StageFailed(RuntimeError):
    """A stage raised; `report` is the run report written before stopping."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class StageKind:
    """Where a stage kind's entry point and config class live (imported only when used)."""

    module: str
    function: str
    config: str  # class name in instructgpt.config, else in `module`
    fmt: bool = False  # the entry point takes `fmt=`
    resumes_in_folder: bool = False  # an interrupted run picks up what it left in its folder


STAGE_KINDS: dict[str, StageKind] = {
    "prepare": StageKind("instructgpt.data.prepare", "run", "PrepareConfig", fmt=True),
    "instruct": StageKind("instructgpt.instruct.build", "run", "InstructConfig"),
    "corpus": StageKind("instructgpt.instruct.corpus", "run", "CorpusConfig", fmt=True),
    "pretrain": StageKind("instructgpt.train.pretrain", "run", "PretrainConfig", fmt=True),
    "sft": StageKind("instructgpt.train.sft", "run", "SFTConfig"),
    "reward": StageKind("instructgpt.train.reward", "run", "RewardConfig"),
    "ppo": StageKind("instructgpt.train.ppo", "run", "PPOConfig"),
    "dpo": StageKind("instructgpt.train.dpo", "run", "DPOConfig"),
    "finetune-task": StageKind("instructgpt.train.finetune_task", "run", "FinetuneTaskConfig"),
    "generate": StageKind("instructgpt.generation.stage", "generate_file", "GenerateConfig", fmt=True),
    "eval": StageKind("instructgpt.evaluate.suite", "run", "EvalConfig"),
    "demo-data": StageKind("instructgpt.demo.data", "run", "DemoDataConfig"),
    "demo-claims": StageKind("instructgpt.demo.claims", "run", "DemoClaimsConfig"),
    "synth-self-instruct": StageKind(
        "instructgpt.instruct.synth.self_instruct", "run", "SelfInstructConfig", resumes_in_folder=True
    ),
    "synth-context": StageKind(
        "instructgpt.instruct.synth.context", "run", "ContextSynthConfig", fmt=True, resumes_in_folder=True
    ),
}
_RECIPE_KEYS = ("run_dir", "on_error", "stages")
_STAGE_KEYS = ("name", "stage", "inputs", "config", "format", "on_error", "launch")
LAUNCHABLE = ("pretrain", "sft", "reward", "ppo", "dpo", "eval")  # stages that run as process groups
LAUNCH_CONFIG = "launch_config.yaml"
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w-]*)\}")


@dataclass
class Stage:
    """One recipe entry, validated: placeholders resolved and its config typed."""

    name: str
    kind: str
    inputs: list[str]
    config: Any
    refs: set[str] = field(default_factory=set)  # earlier stages it refers to
    fmt: str | None = None
    on_error: str = "fail"
    launch: list[str] = field(default_factory=list)  # command prefix of a multi-process stage


@dataclass
class Recipe:
    path: Path
    text: str
    run_dir: Path
    stages: list[Stage]


# ------------------------------------------------------------------------------------------ loading


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
) -> Stage:
    where = f"{path}: stage {entry['name']!r}"
    _check_keys(entry, _STAGE_KEYS, where)
    kind = entry.get("stage")
    if kind not in STAGE_KINDS:
        raise RecipeError(
            f"{where}: stage: unknown stage {kind!r}; expected one of: {', '.join(STAGE_KINDS)}"
        )
    stage = Stage(entry["name"], kind, [], None, on_error=_on_error(entry.get("on_error", on_error), where))
    resolve = _Resolver(where, earlier, later, run_dir, stage.refs)
    inputs = entry.get("inputs", [])
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not all(isinstance(p, str) for p in inputs):
        raise RecipeError(f"{where}: inputs: expected a list of paths, got {inputs!r}")
    stage.inputs = [resolve(p, f"inputs[{i}]") for i, p in enumerate(inputs)]
    for i, (raw, resolved) in enumerate(zip(inputs, stage.inputs, strict=True)):
        if not _PLACEHOLDER.search(raw) and not Path(resolved).exists():
            raise RecipeError(f"{where}: inputs[{i}]: {resolved} does not exist")
    stage.config = _typed_config(kind, resolve.walk(entry.get("config") or {}, "config"), where)
    fmt = entry.get("format")
    if fmt is not None and (not isinstance(fmt, str) or not STAGE_KINDS[kind].fmt):
        takers = ", ".join(name for name, kind in STAGE_KINDS.items() if kind.fmt)
        raise RecipeError(f"{where}: format: only {takers} stages take a format name")
    stage.fmt = fmt
    stage.launch = _launch(entry.get("launch"), kind, where)
    return stage


def _launch(value: Any, kind: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(
            f"{where}: launch: expected a command prefix such as `accelerate launch`, got {value!r}"
        )
    if kind not in LAUNCHABLE:
        raise RecipeError(f"{where}: launch: only {', '.join(LAUNCHABLE)} stages run as process groups")
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
    spec = STAGE_KINDS[kind]
    cls = getattr(config_module, spec.config, None)
    if cls is None:
        try:
            cls = getattr(importlib.import_module(spec.module), spec.config)
        except (ImportError, AttributeError) as err:
            raise RecipeError(f"{where}: stage: {kind!r} is not available here ({err})") from err
    try:
        return from_mapping(cls, data, "config.")
    except ConfigError as err:
        raise RecipeError(f"{where}: {err}") from err


# -------------------------------------------------------------------------------------- fingerprints


class HashCache:
    """sha256 of files and folders, remembered by (path, size, mtime) in a JSON file; entries not used
    by a run are dropped when it saves."""

    def __init__(self, path: Path) -> None:
        self.path, self.used = path, set[str]()
        try:
            self.entries: dict[str, list[Any]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            self.entries = {}
        self._saved = dict(self.entries)

    def digest(self, path: Path) -> str:
        """A file's bytes, or a folder's files (relative names and bytes) walked in sorted order."""
        if path.is_file():
            return self._file(path)
        total = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            total.update(f"{item.relative_to(path).as_posix()}\0{self._file(item)}\n".encode())
        return total.hexdigest()

    def _file(self, path: Path) -> str:
        stat, key = path.stat(), str(path.resolve())
        self.used.add(key)
        cached = self.entries.get(key)
        if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
            return cached[2]
        sha = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, sha.hexdigest()]
        return sha.hexdigest()

    def save(self) -> None:
        kept = {key: value for key, value in self.entries.items() if key in self.used}
        if kept != self._saved:
            write_json(self.path, kept)


def fingerprint(stage: Stage, run_dir: Path, upstream: Mapping[str, str], hashes: HashCache) -> str:
    """sha256 of what decides a stage's outputs; files inside stage folders count by their stage."""
    config, upstream_dirs = to_dict(stage.config), [run_dir / name for name in stage.refs]
    outside = [p for p in [*stage.inputs, *_strings(config)] if _is_outside_path(p, upstream_dirs)]
    payload = {
        "stage": stage.kind,
        "config": config,
        "format": stage.fmt,
        "inputs": stage.inputs,
        "content": {p: hashes.digest(Path(p)) for p in sorted(set(outside))},
        "upstream": {name: upstream[name] for name in sorted(stage.refs)},
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _strings(value: Any) -> list[str]:
    if isinstance(value, (str, Path)):
        return [str(value)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _is_outside_path(text: str, upstream_dirs: list[Path]) -> bool:
    """An existing file or folder named like a path (a `/` or an extension), not in a referenced
    stage's folder (those count by their stage's fingerprint)."""
    if not text or text in (".", "..") or ("/" not in text and not Path(text).suffix):
        return False
    path = Path(text).resolve()
    return path.exists() and not any(path.is_relative_to(d.resolve()) for d in upstream_dirs)


# ------------------------------------------------------------------------------------------- running


def main_run(recipe: Path, run_dir: Path | None, force: bool, from_stage: str | None) -> dict[str, Any]:
    """`instructgpt run`: validate, run, report. Raises RecipeError before anything runs, StageFailed
    after writing the reports when a stage fails."""
    loaded = load_recipe(recipe, run_dir)
    return run_recipe(loaded, force=force, from_stage=from_stage)


def _say(line: str) -> None:
    print(line, flush=True)  # flushed, so it lands before the stage's own (stderr) progress output


def run_recipe(
    recipe: Recipe, force: bool = False, from_stage: str | None = None, echo: Callable[[str], None] = _say
) -> dict[str, Any]:
    """Run (or skip) every stage in order; returns the run report also written to run_report.json."""
    names = [s.name for s in recipe.stages]
    if from_stage is not None and from_stage not in names:
        raise RecipeError(f"{recipe.path}: --from {from_stage}: no such stage; stages: {', '.join(names)}")
    _check_folders(recipe)
    start = names.index(from_stage) if from_stage else len(names)
    hashes, upstream, entries = HashCache(recipe.run_dir / ".hashes.json"), {}, []
    started, clock = _now(), time.perf_counter()
    for i, stage in enumerate(recipe.stages):
        upstream[stage.name] = fingerprint(stage, recipe.run_dir, upstream, hashes)
        label = f"[{i + 1}/{len(names)}] {stage.name}"
        rerun = force or i >= start
        entries.append(_execute(stage, recipe.run_dir, upstream[stage.name], rerun, label, echo))
        if entries[-1]["status"] == "failed":
            break
    hashes.save()
    entries += [_entry(s, recipe.run_dir, "not run", None) for s in recipe.stages[len(entries) :]]
    report = _finish(recipe, entries, started, time.perf_counter() - clock)
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        raise StageFailed(
            f"stage {failed[0]['name']!r} ({failed[0]['stage']}) failed: {failed[0]['error']}", report
        )
    return report


def _check_folders(recipe: Recipe) -> None:
    """Never delete what the pipeline did not make: a stage folder must be new, empty, or ours."""
    for stage in recipe.stages:
        folder = recipe.run_dir / stage.name
        if folder.is_dir() and any(folder.iterdir()) and not (folder / "stage.json").is_file():
            raise RecipeError(
                f"{recipe.path}: stage {stage.name!r}: {folder} exists and was not made by `instructgpt "
                "run` (no stage.json); move it away or choose another run_dir"
            )


def _execute(
    stage: Stage, run_dir: Path, fp: str, rerun: bool, label: str, echo: Callable[[str], None]
) -> dict:
    folder = run_dir / stage.name
    state = read_state(folder)
    if not rerun and state.get("status") == "done" and state.get("fingerprint") == fp:
        echo(f"{label}: up to date")
        return _entry(stage, run_dir, "up to date", fp, summary=state.get("summary"))
    interrupted = not rerun and state.get("status") == "running" and state.get("fingerprint") == fp
    checkpoints = interrupted and _has_checkpoints(stage, folder)
    resume = checkpoints or (interrupted and STAGE_KINDS[stage.kind].resumes_in_folder)
    if not resume and folder.exists():
        shutil.rmtree(folder)
    echo(f"{label}: {'resuming' if resume else 'running'}…")
    config = _with_resume(stage.config) if checkpoints else stage.config
    state = {"name": stage.name, "stage": stage.kind, "status": "running", "fingerprint": fp}
    state |= {"started": _now(), "resumed": resume}
    write_json(folder / "stage.json", state)
    clock = time.perf_counter()
    try:
        report = call_stage(stage, folder, config)
    except Exception as err:  # an interrupt (KeyboardInterrupt) leaves "running", to be resumed
        seconds = round(time.perf_counter() - clock, 3)
        write_json(folder / "stage.json", state | {"status": "failed", "seconds": seconds, "error": str(err)})
        echo(f"{label}: failed after {seconds} s: {err}")
        return _entry(stage, run_dir, "failed", fp, seconds, error=f"{type(err).__name__}: {err}")
    seconds, summary = round(time.perf_counter() - clock, 3), _summary(report)
    write_json(
        folder / "stage.json",
        state | {"status": "done", "finished": _now(), "seconds": seconds, "summary": summary},
    )
    echo(f"{label}: done in {seconds} s")
    return _entry(stage, run_dir, "resumed" if resume else "ran", fp, seconds, summary=summary)


def call_stage(stage: Stage, folder: Path, config: Any) -> dict[str, Any]:
    """The stage's own entry point, in this process (looked up at call time), or its `launch` job."""
    if stage.launch:
        return launch_stage(stage, folder, config)
    spec = STAGE_KINDS[stage.kind]
    function = getattr(importlib.import_module(spec.module), spec.function)
    kwargs: dict[str, Any] = {"on_error": stage.on_error}
    if spec.fmt:
        kwargs["fmt"] = stage.fmt
    return function(list(stage.inputs), folder, config, **kwargs)


def launch_stage(stage: Stage, folder: Path, config: Any) -> dict[str, Any]:
    """Run the stage's CLI under its launch command (its config in FOLDER/launch_config.yaml); the report
    its main process wrote. Raises RuntimeError with the exit status when the job fails."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / LAUNCH_CONFIG
    config_path.write_text(yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False), "utf-8")
    command = [*stage.launch, "-m", "instructgpt.cli", stage.kind, *stage.inputs, "-o", str(folder)]
    command += ["--config", str(config_path), "--on-error", stage.on_error]
    code = subprocess.call(command)
    if code != 0:
        raise RuntimeError(f"`{shlex.join(command)}` exited with status {code}")
    report = folder / ("eval_report.json" if stage.kind == "eval" else "train_report.json")
    return json.loads(report.read_text(encoding="utf-8"))


def read_state(folder: Path) -> dict[str, Any]:
    """The folder's stage.json, or {} when there is none (or it is unreadable)."""
    try:
        return json.loads((folder / "stage.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _has_checkpoints(stage: Stage, folder: Path) -> bool:
    if not hasattr(getattr(stage.config, "train", None), "resume"):
        return False
    from instructgpt.train.checkpoint import latest_checkpoint

    return latest_checkpoint(folder) is not None


def _with_resume(config: Any) -> Any:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, resume="auto"))


def _summary(report: Any) -> dict[str, Any]:
    """The scalars of a stage's report (and its outputs), for stage.json and run_report.json."""
    if not isinstance(report, dict):
        return {}
    kept = {k: v for k, v in report.items() if v is None or isinstance(v, (str, int, float, bool))}
    if isinstance(report.get("outputs"), dict):
        kept["outputs"] = report["outputs"]
    return kept


def _entry(
    stage: Stage, run_dir: Path, status: str, fp: str | None, seconds: float = 0.0, **extra: Any
) -> dict[str, Any]:
    entry = {"name": stage.name, "stage": stage.kind, "status": status, "seconds": seconds}
    entry |= {"fingerprint": fp, "folder": str(run_dir / stage.name)}
    return entry | extra


def _finish(recipe: Recipe, entries: list[dict[str, Any]], started: str, seconds: float) -> dict[str, Any]:
    from instructgpt import report as report_module

    failed = any(e["status"] == "failed" for e in entries)
    report = {"recipe": str(recipe.path), "run_dir": str(recipe.run_dir)}
    report |= {"status": "failed" if failed else "done", "started": started, "finished": _now()}
    report |= {"seconds": round(seconds, 3), "stages": entries}
    try:
        files = report_module.write_report(
            recipe.run_dir, {"path": str(recipe.path), "text": recipe.text}, entries
        )
        report["report"] = {kind: str(path) for kind, path in files.items()}
    except Exception as err:  # a stage folder the report cannot read must not fail a finished run
        report["report_error"] = f"{type(err).__name__}: {err}"
        print(f"warning: report.md/report.html not written: {report['report_error']}")
    write_json(recipe.run_dir / "run_report.json", report)
    return report


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def print_summary(report: Mapping[str, Any]) -> None:
    """The stages, what happened to each and how long it took, and where the report is."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run {report['recipe']} → {report['run_dir']}")
    for column in ("stage", "kind", "status", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for entry in report["stages"]:
        table.add_row(entry["name"], entry["stage"], entry["status"], f"{entry['seconds']:.1f}")
    console = Console()
    console.print(table)
    where = ", ".join(report.get("report", {}).values()) or str(Path(report["run_dir"]) / "run_report.json")
    console.print(f"{report['status']} in {report['seconds']:.1f} s; report: {where}")
