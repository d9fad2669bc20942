"""`instructgpt run RECIPE.yaml`: runs the stages a recipe names, in order, skipping those up to date.

A recipe is a YAML file that opens with the command that runs it:

```yaml
# instructgpt run recipes/demo.yaml
run_dir: runs/demo            # default runs/<recipe name>; `-o RUN_DIR` overrides
on_error: fail                # default for every stage: fail | skip (bad records)
stages:
  - name: prepare             # unique; its folder is RUN_DIR/prepare
    stage: prepare            # prepare, instruct, corpus, pretrain, sft, reward, ppo, dpo, eval,
                              # annotate (people rank answers: `instructgpt annotate`),
                              # generate, finetune-task, synth-self-instruct, synth-context,
                              # demo-data (the embedded demo's inputs), demo-claims (the
                              # method's claims checked on the run's outputs)
    inputs: [data/raw]        # paths (relative to the current directory), or "{NAME}/file" for a file
                              # in an earlier stage's folder
    config: {near_dedup: {threshold: 0.8}}   # the stage's config fields, nested as in its own YAML
    format: null              # optional, record format of the inputs (prepare, corpus, synth-context,
                              # pretrain, generate): sets the config's `format`, like `--format`
                              # (a different `format` in `config:` too is an error)
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
a synthesis stage (its response cache there spares the answers already paid for); an `annotate` stage
that runs always goes on in its folder (people's labels are never deleted: a higher `target` serves the
page again until that many labels stand); any other stage that runs starts from an empty folder. A
failing stage stops the run and is marked "failed".

`launch` runs a stage (pretrain, sft, reward, ppo, dpo, eval) as its own multi-process job: the command
prefix is followed by `-m instructgpt.cli KIND INPUTS -o FOLDER --config FOLDER/launch_config.yaml`, so
`accelerate launch ...` or `torchrun --nproc-per-node 8` spreads that stage over GPUs while the recipe
itself runs in one process. The number of processes does not change what a stage computes (its loops
keep the global batch), so `launch` is not part of the fingerprint. At the end the run writes
`run_report.json`, `report.md` and `report.html` (see `instructgpt.report`).

This module runs a recipe; `instructgpt.recipe` reads and checks it, `instructgpt.fingerprints` decides
what is up to date, and the stage kinds are the registry's (`instructgpt.stages.STAGES`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from instructgpt.board.process import this_process
from instructgpt.config import to_dict
from instructgpt.fingerprints import HashCache, fingerprint
from instructgpt.io import write_json
from instructgpt.recipe import Recipe, RecipeError, RecipeStage, load_recipe
from instructgpt.reports import StageReport
from instructgpt.stages import STAGES

LAUNCH_CONFIG = "launch_config.yaml"


class StageFailed(RuntimeError):
    """A stage raised; `report` is the run report written before stopping."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


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
    plan = [{"name": s.name, "stage": s.kind} for s in recipe.stages]  # what a board lists before they run
    write_json(
        recipe.run_dir / "run_plan.json", {"recipe": str(recipe.path), "started": started, "stages": plan}
    )
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
    stage: RecipeStage, run_dir: Path, fp: str, rerun: bool, label: str, echo: Callable[[str], None]
) -> dict:
    folder = run_dir / stage.name
    state = read_state(folder)
    if not rerun and state.get("status") == "done" and state.get("fingerprint") == fp:
        echo(f"{label}: up to date")
        return _entry(stage, run_dir, "up to date", fp, summary=state.get("summary"))
    interrupted = not rerun and state.get("status") == "running" and state.get("fingerprint") == fp
    checkpoints = interrupted and _has_checkpoints(stage, folder)
    resume = checkpoints or (interrupted and STAGES[stage.kind].resumes_in_folder)
    resume |= STAGES[stage.kind].keeps_folder and folder.exists()  # people's labels are never deleted
    if not resume and folder.exists():
        shutil.rmtree(folder)
    echo(f"{label}: {'resuming' if resume else 'running'}…")
    config = _with_resume(stage.config) if checkpoints else stage.config
    state = {"name": stage.name, "stage": stage.kind, "status": "running", "fingerprint": fp}
    state |= {"started": _now(), "resumed": resume, "process": this_process()}  # the board checks, stops it
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


def call_stage(stage: RecipeStage, folder: Path, config: Any) -> StageReport:
    """The stage's entry point through the registry, in this process, or its `launch` job."""
    if stage.launch:
        return launch_stage(stage, folder, config)
    return STAGES[stage.kind].run(list(stage.inputs), folder, config, stage.on_error)


def launch_stage(stage: RecipeStage, folder: Path, config: Any) -> StageReport:
    """Run the stage's CLI under its launch command (its config in FOLDER/launch_config.yaml); the report
    its main process wrote. Raises RuntimeError with the exit status when the job fails."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / LAUNCH_CONFIG
    config_path.write_text(yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False), "utf-8")
    spec = STAGES[stage.kind]
    command = [*stage.launch, "-m", "instructgpt.cli", *spec.words, *stage.inputs, "-o", str(folder)]
    command += ["--config", str(config_path), "--on-error", stage.on_error]
    code = subprocess.call(command)
    if code != 0:
        raise RuntimeError(f"`{shlex.join(command)}` exited with status {code}")
    report = spec.report.read(folder)
    if report is None:
        raise RuntimeError(f"`{shlex.join(command)}` left no readable {spec.report.FILE} in {folder}")
    return report


def read_state(folder: Path) -> dict[str, Any]:
    """The folder's stage.json, or {} when there is none (or it is unreadable)."""
    try:
        return json.loads((folder / "stage.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _has_checkpoints(stage: RecipeStage, folder: Path) -> bool:
    if not hasattr(getattr(stage.config, "train", None), "resume"):
        return False
    from instructgpt.train.checkpoint import latest_checkpoint

    return latest_checkpoint(folder) is not None


def _with_resume(config: Any) -> Any:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, resume="auto"))


def _summary(report: StageReport) -> dict[str, Any]:
    """The scalars of a stage's report (and its outputs), for stage.json and run_report.json."""
    saved = report.to_dict()
    kept = {k: v for k, v in saved.items() if v is None or isinstance(v, (str, int, float, bool))}
    if isinstance(saved.get("outputs"), dict):
        kept["outputs"] = saved["outputs"]
    return kept


def _entry(
    stage: RecipeStage, run_dir: Path, status: str, fp: str | None, seconds: float = 0.0, **extra: Any
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
