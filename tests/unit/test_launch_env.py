"""`accelerate launch` options (train/launch_env.py): the environment accelerate's own launcher builds for
the recipes' configs and for --mixed_precision passes; every option a run cannot honour is refused, by the
check and by the CLI (exit 2, one line naming the variable)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from instructgpt.cli import main
from instructgpt.train.launch_env import REFUSED, check_launch_env, launched_mixed_precision

RECIPES = Path(__file__).parents[2] / "recipes" / "accelerate"

# A value of each refused variable that the run cannot honour, as accelerate's launcher writes it.
REFUSED_VALUES = {
    "ACCELERATE_USE_DEEPSPEED": "true",
    "ACCELERATE_USE_MEGATRON_LM": "true",
    "ACCELERATE_USE_PARALLELISM_CONFIG": "true",
    "ACCELERATE_MIXED_PRECISION": "fp8",
    "ACCELERATE_DYNAMO_BACKEND": "INDUCTOR",
    "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "4",
    "ACCELERATE_GRADIENT_CLIPPING": "1.0",
    "FSDP_OFFLOAD_PARAMS": "true",
    "FSDP_ACTIVATION_CHECKPOINTING": "true",
    "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT",
    "FSDP_SHARDING_STRATEGY": "HYBRID_SHARD",
    "ACCELERATE_USE_CPU": "True",
}


def launcher_env(*argv: str) -> dict[str, str]:
    """The ACCELERATE_* / FSDP_* variables `accelerate launch ARGV x.py` gives the process it starts
    (accelerate's own parser and launcher functions; `_validate_launch_command` fills in the config)."""
    launch = pytest.importorskip("accelerate.commands.launch")
    from accelerate.utils.launch import prepare_multi_gpu_env, prepare_simple_launcher_cmd_env

    args, _, _ = launch._validate_launch_command(launch.launch_command_parser().parse_args([*argv, "x.py"]))
    env = (
        prepare_multi_gpu_env(args)
        if args.use_fsdp or args.multi_gpu
        else prepare_simple_launcher_cmd_env(args)[1]
    )
    return {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_"))}


@pytest.mark.parametrize("config", ["fsdp.yaml", "multi_process.yaml"])
def test_the_recipes_accelerate_configs_pass(config):
    env = launcher_env("--config_file", str(RECIPES / config))
    check_launch_env(env)
    assert launched_mixed_precision(env) == "no"


@pytest.mark.parametrize("mode", ["no", "bf16", "fp16"])
def test_accelerates_mixed_precision_is_read(mode):
    env = launcher_env("--num_processes", "1", "--num_machines", "1", "--mixed_precision", mode)
    check_launch_env(env)
    assert launched_mixed_precision(env) == mode
    assert launched_mixed_precision({}) == "no"  # not launched by accelerate


def test_a_torch_compile_launch_is_refused_as_accelerate_writes_it():
    env = launcher_env("--num_processes", "1", "--num_machines", "1", "--dynamo_backend", "inductor")
    with pytest.raises(ValueError, match=r"DYNAMO_BACKEND=INDUCTOR: --dynamo_backend: torch\.compile is not"):
        check_launch_env(env)


def test_every_refused_option_has_a_test_value():
    assert {name for name, _, _ in REFUSED} == set(REFUSED_VALUES)


@pytest.fixture
def gpu_machine(monkeypatch):
    """torch.cuda.is_available() is true: ACCELERATE_USE_CPU cannot be honoured."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize(("name", "value"), REFUSED_VALUES.items())
def test_each_option_that_cannot_be_honoured_is_refused(name, value, gpu_machine):
    with pytest.raises(ValueError, match=re.escape(f"accelerate launch with {name}={value}: ")):
        check_launch_env({name: value})
    harmless = {"ACCELERATE_USE_CPU": "False", "ACCELERATE_MIXED_PRECISION": "bf16"}
    harmless |= {"ACCELERATE_DYNAMO_BACKEND": "NO", "FSDP_SHARDING_STRATEGY": "FULL_SHARD"}
    check_launch_env(harmless)


def test_use_cpu_is_honoured_on_a_machine_without_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_launch_env({"ACCELERATE_USE_CPU": "True"})


@pytest.mark.parametrize(("name", "value"), REFUSED_VALUES.items())
def test_the_cli_exits_2_on_a_refused_option(name, value, gpu_machine, tmp_path, monkeypatch, capsys):
    data = tmp_path / "train.jsonl"
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    data.write_text(json.dumps({"messages": messages}) + "\n")
    monkeypatch.setenv(name, value)
    assert main(["sft", str(data), "-o", str(tmp_path / "out"), "train.steps=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: accelerate launch with {name}={value}: ") and "Traceback" not in err
    assert err.count("\n") == 1
