"""sharding: when FSDP is asked for (flag or `accelerate launch` FSDP config), what is refused, and how
evaluation keeps processes in lockstep. The sharded training itself: tests/stages/test_fsdp.py (slow)."""

from pathlib import Path

import pytest
import yaml

from instructgpt.distributed import Dist
from instructgpt.train.sharding import in_lockstep, shard_model, sharding_requested

ACCELERATE = Path(__file__).resolve().parents[2] / "recipes" / "accelerate"


def clear_launcher_env(monkeypatch) -> None:
    for key in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "FSDP_OFFLOAD_PARAMS"):
        monkeypatch.delenv(key, raising=False)


def test_sharding_is_asked_by_the_flag_or_an_accelerate_fsdp_launch(monkeypatch):
    clear_launcher_env(monkeypatch)
    assert not sharding_requested(False)
    assert sharding_requested(True)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert sharding_requested(False)


@pytest.mark.parametrize(
    ("key", "message"),
    [("ACCELERATE_USE_DEEPSPEED", "does not run DeepSpeed"), ("FSDP_OFFLOAD_PARAMS", "offloading")],
)
def test_launch_configs_that_cannot_be_honoured_are_refused(monkeypatch, key, message):
    clear_launcher_env(monkeypatch)
    monkeypatch.setenv(key, "true")
    with pytest.raises(ValueError, match=message):
        sharding_requested(False)


def test_one_process_cannot_shard():
    with pytest.raises(ValueError, match="2 or more processes"):
        shard_model(object(), Dist())


def test_in_lockstep_gives_every_process_the_same_number_of_forwards():
    items = ["a", "b", "c", "d", "e"]
    rank0 = list(in_lockstep(items, Dist(rank=0, world=2), sharded=True))
    rank1 = list(in_lockstep(items, Dist(rank=1, world=2), sharded=True))
    assert rank0 == [("a", True), ("c", True), ("e", True)]
    assert rank1 == [("b", True), ("d", True), ("a", False)]  # a repeat that is not counted
    assert list(in_lockstep(items, Dist(rank=1, world=2), sharded=False)) == [("b", True), ("d", True)]


@pytest.mark.parametrize("path", sorted(ACCELERATE.glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_open_with_their_command_and_parse(path):
    assert path.read_text().startswith(f"# accelerate launch --config_file recipes/accelerate/{path.name} ")
    config = yaml.safe_load(path.read_text())
    assert config["num_processes"] >= 2 and config["distributed_type"] in {"MULTI_GPU", "FSDP"}
