"""`instructgpt export` end to end: from the CLI (gguf with its Modelfile and round trip; errors exit 2
with one line), as a recipe step after SFT, and push_to_hub failing cleanly without a network."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import gguf
import pytest
import yaml

from instructgpt.cli import main
from instructgpt.demo.tasks import generate_task_examples
from instructgpt.io import write_jsonl
from instructgpt.pipeline import main_run
from instructgpt.records import to_dict
from instructgpt.reports.export import ExportReport
from instructgpt.reports.training import SFTReport

SRC = Path(__file__).resolve().parents[2] / "src"


def test_cli_gguf_export(tiny_gpt_folder, tmp_path, capsys):
    out = tmp_path / "tiny-q8"
    assert main(["export", str(tiny_gpt_folder), "-o", str(out), "format=gguf", "quant=q8_0"]) == 0
    printed = capsys.readouterr().out
    assert "export (gguf q8_0, LlamaForCausalLM" in printed and "read back with transformers" in printed
    report = ExportReport.read(out)
    assert report.files == {
        "tiny-q8.gguf": (out / "tiny-q8.gguf").stat().st_size,
        "Modelfile": (out / "Modelfile").stat().st_size,
    }
    assert report.quant == "q8_0" and report.dtype is None and report.source == str(tiny_gpt_folder)
    assert report.roundtrip["tokenizer_equal"] and 0 < report.roundtrip["max_abs_logit_diff"] < 4e-2
    assert (out / "Modelfile").read_text().splitlines()[1] == "FROM ./tiny-q8.gguf"
    modes = {(p.is_dir(), stat.S_IMODE(p.stat().st_mode)) for p in [out, *out.iterdir()]}
    assert modes == {(True, 0o755), (False, 0o644)}
    # a q8_0 file is about a quarter of f32's size
    args = ["format=gguf", "quant=f32", "verify=false", "gguf_pre=gpt-2"]
    assert main(["export", str(tiny_gpt_folder), "-o", str(tmp_path / "f32"), *args]) == 0
    f32 = ExportReport.read(tmp_path / "f32")
    assert f32.roundtrip is None
    assert gguf.GGUFReader(tmp_path / "f32" / "f32.gguf").fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    assert report.files["tiny-q8.gguf"] < 0.45 * f32.files["f32.gguf"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{model}", "{model}"], "export: give exactly one model"),
        (["{model}", "format=onnx"], "format"),
        (["{model}", "format=gguf", "name=../x"], "give the GGUF file a plain name"),
        (["{missing}"], "missing"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tiny_gpt_folder, tmp_path, args, message):
    args = [a.format(model=tiny_gpt_folder, missing=tmp_path / "missing") for a in args]
    result = cli(["export", *args, "-o", str(tmp_path / "out")])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and message in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line] == [
        result.stderr.strip().splitlines()[-1]
    ]


def cli(args, **env):
    environment = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "instructgpt.cli", *args], capture_output=True, text=True, env=environment
    )


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_OFFLINE": "1"},
        {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_not_a_real_token", "HF_HUB_ETAG_TIMEOUT": "2"},
    ],
    ids=["offline", "unreachable"],
)
def test_push_to_hub_without_a_network_fails_in_one_line(tiny_gpt_folder, tmp_path, env):
    out = tmp_path / "out"
    result = cli(["export", str(tiny_gpt_folder), "-o", str(out), "push_to_hub=someone/tiny-gpt"], **env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(
        "error: push_to_hub=someone/tiny-gpt: the upload to the Hugging Face Hub failed"
    )
    assert (out / "model.safetensors").is_file()  # the export itself is kept


def test_recipe_step_after_sft(tmp_path):
    examples = generate_task_examples("sentiment", "en", 24)
    write_jsonl(tmp_path / "examples.jsonl", [to_dict(e) for e in examples])
    tiny = {"model": {"max_length": 160, "vocab_size": 400},
            "train": {"threads": 1, "steps": 3, "batch_size": 4, "eval_every": 0, "warmup_steps": 1,
                      "save_every": 0, "lr": 0.003}}  # fmt: skip
    stages = [
        {"name": "inst", "stage": "instruct", "inputs": [str(tmp_path / "examples.jsonl")]},
        {"name": "tune", "stage": "sft", "inputs": ["{inst}/train.jsonl"], "config": tiny},
        {"name": "hf", "stage": "export", "inputs": ["{tune}/model"], "config": {"dtype": "bfloat16"}},
        {"name": "gguf", "stage": "export", "inputs": ["{tune}/model"],
         "config": {"format": "gguf", "quant": "f16", "name": "tuned"}},
    ]  # fmt: skip
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages}, sort_keys=False))
    first = main_run(recipe, None, False, None)
    assert [s["status"] for s in first["stages"]] == ["ran"] * 4
    run = tmp_path / "run"
    assert SFTReport.read(run / "tune") is not None
    assert ExportReport.read(run / "hf").dtype == "bfloat16" and (run / "hf" / "model.safetensors").is_file()
    gguf = ExportReport.read(run / "gguf")
    assert set(gguf.files) == {"tuned.gguf", "Modelfile"} and gguf.roundtrip["max_abs_logit_diff"] < 1.5e-2
    again = main_run(recipe, None, False, None)
    assert [s["status"] for s in again["stages"]] == ["up to date"] * 4
