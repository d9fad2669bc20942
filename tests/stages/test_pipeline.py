"""`instructgpt run RECIPE.yaml`: prepare → instruct → sft on tiny data; up-to-date checks, reruns of
what changed, --from, resume of an interrupted training stage, recipe errors before anything runs."""

import json
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from instructgpt.data import prepare
from instructgpt.demo.tasks import generate_documents, generate_task_examples
from instructgpt.instruct import build
from instructgpt.io import write_jsonl
from instructgpt.pipeline import StageFailed, main_run
from instructgpt.recipe import RecipeError, load_recipe
from instructgpt.records import to_dict
from instructgpt.train import run as training_run
from instructgpt.train import sft

TINY = {"model": {"max_length": 160, "vocab_size": 512},
        "train": {"threads": 1, "steps": 4, "batch_size": 4, "eval_every": 2, "log_every": 1,
                  "warmup_steps": 1, "save_every": 2, "lr": 0.003}}  # fmt: skip


class Killed(BaseException):
    """Stands for the process being killed: not an Exception, so the stage is left "running"."""


@pytest.fixture
def data(tmp_path):
    write_jsonl(tmp_path / "docs.jsonl", [to_dict(d) for d in generate_documents("en", 6)])
    examples = generate_task_examples("sentiment", "en", 24)
    write_jsonl(tmp_path / "examples.jsonl", [to_dict(e) for e in examples])
    return tmp_path


def stages(data, instruct_config=None, sft_config=None):
    return [
        {"name": "prep", "stage": "prepare", "inputs": [str(data / "docs.jsonl")], "config": {"workers": 1}},
        {"name": "inst", "stage": "instruct", "inputs": [str(data / "examples.jsonl")],
         "config": instruct_config or {}},
        {"name": "tune", "stage": "sft", "inputs": ["{inst}/train.jsonl"], "config": sft_config or TINY},
    ]  # fmt: skip


def write_recipe(tmp_path, stage_list, name="recipe.yaml"):
    path = tmp_path / name
    body = yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stage_list}, sort_keys=False)
    path.write_text(f"# instructgpt run {path}\n{body}")
    return path


def run(recipe, force=False, from_stage=None):
    report = main_run(recipe, None, force, from_stage)
    return {entry["name"]: entry["status"] for entry in report["stages"]}


def state(tmp_path, name):
    return json.loads((tmp_path / "run" / name / "stage.json").read_text())


def refuse(*modules):
    def fail(*args, **kwargs):
        raise AssertionError("this stage should have been skipped")

    return [(module, "run", fail) for module in modules]


def test_a_recipe_runs_then_a_second_run_skips_everything(data, monkeypatch, capsys):
    recipe = write_recipe(data, stages(data))
    assert run(recipe) == {"prep": "ran", "inst": "ran", "tune": "ran"}
    assert (data / "run" / "tune" / "model" / "model.safetensors").exists()
    first = {name: state(data, name) for name in ("prep", "inst", "tune")}
    assert all(s["status"] == "done" and len(s["fingerprint"]) == 64 for s in first.values())
    assert first["tune"]["summary"]["steps"] == 4 and "[3/3] tune: running…" in capsys.readouterr().out

    for target in refuse(prepare, build, sft):
        monkeypatch.setattr(*target)
    assert run(recipe) == {"prep": "up to date", "inst": "up to date", "tune": "up to date"}
    assert "[3/3] tune: up to date" in capsys.readouterr().out
    assert {name: state(data, name) for name in first} == first
    report = json.loads((data / "run" / "run_report.json").read_text())
    assert report["status"] == "done" and [s["status"] for s in report["stages"]] == ["up to date"] * 3
    plan = json.loads((data / "run" / "run_plan.json").read_text())["stages"]  # a board lists it at once
    assert plan == [
        {"name": "prep", "stage": "prepare"},
        {"name": "inst", "stage": "instruct"},
        {"name": "tune", "stage": "sft"},
    ]

    md = (data / "run" / "report.md").read_text()
    assert "| tune | sft | up to date |" in md and "![tune curves](report_files/tune_curves.png)" in md
    assert "| lang | 6 | 0 | 6 |" in md and "| sentiment_binary | en |" in md
    page = (data / "run" / "report.html").read_text()
    assert "<td>tune</td><td>sft</td>" in page and 'src="data:image/png;base64,' in page


def test_changes_rerun_the_changed_stage_and_what_uses_it_and_from_reruns_the_rest(data, monkeypatch):
    run(write_recipe(data, stages(data)))
    changed = write_recipe(data, stages(data, instruct_config={"seed": 1}))
    monkeypatch.setattr(*refuse(prepare)[0])
    assert run(changed) == {"prep": "up to date", "inst": "ran", "tune": "ran"}
    assert run(changed, from_stage="tune") == {"prep": "up to date", "inst": "up to date", "tune": "ran"}
    monkeypatch.undo()
    assert run(changed, force=True) == {"prep": "ran", "inst": "ran", "tune": "ran"}


def test_outside_input_content_is_part_of_the_fingerprint(data):
    recipe = write_recipe(data, stages(data)[:2])
    run(recipe)
    rows = [to_dict(e) for e in generate_task_examples("sentiment", "en", 20)]
    write_jsonl(data / "examples.jsonl", rows)
    assert run(recipe) == {"prep": "up to date", "inst": "ran"}
    assert str((data / "examples.jsonl").resolve()) in json.loads((data / "run" / ".hashes.json").read_text())


def test_an_interrupted_training_stage_is_resumed_from_its_checkpoints(data, monkeypatch):
    recipe = write_recipe(data, stages(data))
    real_check = training_run.check_finite

    def killed_at_step_3(value, train_state, what="loss"):
        if train_state.step == 3:
            raise Killed
        real_check(value, train_state, what)

    monkeypatch.setattr(training_run, "check_finite", killed_at_step_3)
    with pytest.raises(Killed):
        run(recipe)
    assert state(data, "tune")["status"] == "running"
    assert (data / "run" / "tune" / "checkpoints" / "step-00000002" / "state.json").exists()
    monkeypatch.setattr(training_run, "check_finite", real_check)

    seen, real_run = [], sft.run

    def recording_run(inputs, out_dir, config, **kwargs):
        seen.append(config)
        return real_run(inputs, out_dir, config, **kwargs)

    monkeypatch.setattr(sft, "run", recording_run)
    assert run(recipe) == {"prep": "up to date", "inst": "up to date", "tune": "resumed"}
    assert seen[0].train.resume == "auto"
    report = json.loads((data / "run" / "tune" / "train_report.json").read_text())
    assert report["resumed_from"].endswith("step-00000002") and report["steps"] == 4
    assert state(data, "tune")["status"] == "done" and state(data, "tune")["resumed"] is True


def test_an_interrupted_synthesis_stage_keeps_its_folder_and_cache(data, monkeypatch):
    from instructgpt.instruct.synth import context
    from instructgpt.reports.data import ContextReport

    stage_list = [{"name": "prep", "stage": "prepare", "inputs": [str(data / "docs.jsonl")],
                   "config": {"workers": 1}},
                  {"name": "syn", "stage": "synth-context", "inputs": ["{prep}/documents.jsonl"],
                   "config": {"model": {"name": "unused"}}}]  # fmt: skip
    recipe = write_recipe(data, stage_list)
    seen = []

    def killed(inputs, out_dir, config, **kwargs):
        (out_dir / "cache.jsonl").write_text("paid for\n")
        raise Killed

    def finishing(inputs, out_dir, config, **kwargs):
        cache = out_dir / "cache.jsonl"
        seen.append(cache.read_text() if cache.exists() else None)
        return ContextReport([], 0, 0, 0, 0, 0, 0, 0, {}, {}, 0, 0, {}, {}, 0.0)

    monkeypatch.setattr(context, "run", killed)
    with pytest.raises(Killed):
        run(recipe)
    monkeypatch.setattr(context, "run", finishing)
    assert run(recipe) == {"prep": "up to date", "syn": "resumed"}
    assert seen == ["paid for\n"]
    assert run(recipe, force=True)["syn"] == "ran" and seen[-1] is None  # a rerun starts afresh


def test_a_failing_stage_stops_the_run_and_is_marked_failed(data, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("examples.jsonl:3: missing field 'task'")

    monkeypatch.setattr(build, "run", broken)
    with pytest.raises(StageFailed, match=r"stage 'inst' \(instruct\) failed: .*missing field 'task'") as err:
        run(write_recipe(data, stages(data)))
    assert [s["status"] for s in err.value.report["stages"]] == ["ran", "failed", "not run"]
    assert state(data, "inst")["status"] == "failed" and not (data / "run" / "tune").exists()
    assert "| inst | instruct | failed |" in (data / "run" / "report.md").read_text()
    monkeypatch.undo()
    assert run(write_recipe(data, stages(data)[:2])) == {"prep": "up to date", "inst": "ran"}


def bad_kind(s):
    s[2]["stage"] = "sftt"


def forward_reference(s):
    s[1]["inputs"] = ["{tune}/model"]


def bad_config_key(s):
    s[2]["config"] = {"train": {"stepz": 3}}


def bad_config_type(s):
    s[0]["config"] = {"near_dedup": {"threshold": "high"}}


def unknown_reference(s):
    s[2]["config"] = {"model": {"name": "{pretrain}/model"}}


def duplicate_name(s):
    s[1]["name"] = "prep"


def missing_input(s):
    s[0]["inputs"] = ["nowhere/raw.txt"]


def launch_of_a_data_stage(s):
    s[1]["launch"] = "torchrun --nproc-per-node 2"


def empty_launch(s):
    s[2]["launch"] = " "


def format_of_a_stage_without_one(s):
    s[2]["format"] = "conversation"


def unknown_format(s):
    s[0]["format"] = "vicuna"


def two_formats(s):
    s[0]["format"], s[0]["config"]["format"] = "document", "alpaca"


@pytest.mark.parametrize(
    "breaks, message",
    [
        (bad_kind, "stage 'tune': stage: unknown stage 'sftt'; expected one of: prepare,"),
        (forward_reference, "stage 'inst': inputs[0]: {tune} refers to a later stage"),
        (bad_config_key, "stage 'tune': config.train.stepz: unknown key"),
        (bad_config_type, "stage 'prep': config.near_dedup.threshold: expected float"),
        (unknown_reference, "stage 'tune': config.model.name: {pretrain} names no earlier stage"),
        (duplicate_name, "stages[1]: name: 'prep' is used by an earlier stage"),
        (missing_input, "stage 'prep': inputs[0]: nowhere/raw.txt does not exist"),
        (launch_of_a_data_stage, "stage 'inst': launch: only pretrain, sft, reward, ppo, dpo, eval stages"),
        (empty_launch, "stage 'tune': launch: expected a command prefix"),
        (
            format_of_a_stage_without_one,
            "stage 'tune': format: only prepare, corpus, synth-context, pretrain,",
        ),
        (unknown_format, "stage 'prep': format: expected str (empty or one of: comparison, "),
        (
            two_formats,
            "stage 'prep': format: 'document', but config.format is 'alpaca'; give the format once",
        ),
    ],
)
def test_bad_recipes_fail_before_anything_runs(data, breaks, message):
    stage_list = stages(data)
    breaks(stage_list)
    recipe = write_recipe(data, stage_list, "bad.yaml")
    with pytest.raises(RecipeError) as err:
        main_run(recipe, None, False, None)
    assert str(err.value).startswith(f"{recipe}: ") and message in str(err.value)
    assert not (data / "run").exists()


def test_from_must_name_a_stage_and_foreign_folders_are_never_deleted(data):
    recipe = write_recipe(data, stages(data)[:1])
    with pytest.raises(RecipeError, match=r"--from nope: no such stage; stages: prep"):
        main_run(recipe, None, False, "nope")
    (data / "run" / "prep").mkdir(parents=True)
    (data / "run" / "prep" / "mine.txt").write_text("keep me")
    with pytest.raises(RecipeError, match="exists and was not made by `instructgpt run`"):
        main_run(recipe, None, False, None)
    assert (data / "run" / "prep" / "mine.txt").read_text() == "keep me"


def test_placeholders_resolve_to_stage_folders_and_braces_can_be_escaped(data):
    stage_list = stages(data)
    stage_list[2]["config"] = {"model": {"tokenizer": "{{inst}}"}, "train": {"resume": "{prep}/x"}}
    recipe = load_recipe(write_recipe(data, stage_list), data / "elsewhere")
    tune = recipe.stages[2]
    assert recipe.run_dir == data / "elsewhere"
    assert tune.inputs == [str(data / "elsewhere" / "inst" / "train.jsonl")]
    assert tune.config.model.tokenizer == "{inst}"
    assert tune.config.train.resume == str(data / "elsewhere" / "prep" / "x")
    assert tune.refs == {"inst", "prep"} and recipe.stages[0].refs == set()


def test_a_stage_format_is_its_configs_format_field(data):
    """A recipe stage's `format:` is the `format` field of its config, as `--format` is on the CLI (the
    same name given in both places is fine)."""
    stage_list = stages(data)[:1]
    stage_list[0]["format"] = "document"
    assert load_recipe(write_recipe(data, stage_list)).stages[0].config.format == "document"
    stage_list[0]["config"]["format"] = "document"
    assert load_recipe(write_recipe(data, stage_list)).stages[0].config.format == "document"
    assert run(write_recipe(data, stage_list)) == {"prep": "ran"}
    assert (
        json.loads((data / "run" / "prep" / "prepare_report.json").read_text())["config"]["format"]
        == "document"
    )


def test_a_launched_stage_runs_as_its_own_job_and_trains_the_same_model(data, capsys):
    """`launch` runs `PREFIX -m instructgpt.cli sft ...` (here the prefix is plain python: one process);
    the model equals the in-process stage's, and the launch command is not part of the fingerprint."""
    in_process = write_recipe(data, stages(data))
    assert run(in_process) == {"prep": "ran", "inst": "ran", "tune": "ran"}
    expected = load_file(data / "run" / "tune" / "model" / "model.safetensors")
    fingerprint = state(data, "tune")["fingerprint"]

    launched = stages(data)
    launched[2]["launch"] = sys.executable
    recipe = write_recipe(data, launched, "launched.yaml")
    assert run(recipe, from_stage="tune") == {"prep": "up to date", "inst": "up to date", "tune": "ran"}
    tune = data / "run" / "tune"
    assert (tune / "launch_config.yaml").is_file() and state(data, "tune")["fingerprint"] == fingerprint
    assert state(data, "tune")["summary"]["steps"] == 4
    got = load_file(tune / "model" / "model.safetensors")
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_failing_launched_job_fails_its_stage(data):
    launched = stages(data)
    launched[2]["launch"] = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    with pytest.raises(StageFailed, match="exited with status 3"):
        main_run(write_recipe(data, launched), None, False, None)
    assert state(data, "tune")["status"] == "failed"
