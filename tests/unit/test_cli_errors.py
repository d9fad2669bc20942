"""The CLI turns a bad config and a diverged training run into one clear line on stderr, no traceback:
exit 2 for bad input (naming the key), exit 1 for a run that stopped on a NaN/inf loss."""

from __future__ import annotations

import pytest

from instructgpt.cli import main
from instructgpt.train import pretrain
from instructgpt.train.loop import LoopState, check_finite


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.steps=-5", "train.steps"),
        ("train.grad_accum=0", "train.grad_accum"),
        ("train.lr=inf", "train.lr"),
    ],
)
def test_a_harmful_training_config_exits_2_naming_the_key(override, key, tmp_path, capsys) -> None:
    assert main(["pretrain", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "out"), override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {key}: expected ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_prepare_shard_size_of_0_exits_2(tmp_path, capsys) -> None:
    assert main(["prepare", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out"), "shard_size=0"]) == 2
    assert capsys.readouterr().err == "error: shard_size: expected int ≥ 1, got 0\n"


@pytest.mark.parametrize("words", [["prepare"], ["corpus"], ["synth", "context"], ["pretrain"], ["generate"]])
def test_an_unknown_format_name_exits_2_naming_the_key_and_the_known_ones(words, tmp_path, capsys) -> None:
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    args = [*words, str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out"), "--format", "vicuna"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: format: expected str (empty or one of: comparison, ") and "'vicuna'" in err
    assert not (tmp_path / "out").exists()


def test_a_nan_loss_ends_the_run_with_its_message_and_exit_1(tmp_path, capsys, monkeypatch) -> None:
    def diverges(*args, **kwargs) -> None:
        check_finite(float("nan"), LoopState(step=2, last_checkpoint="out/checkpoints/step-00000002"))

    monkeypatch.setattr(pretrain, "run", diverges)
    (tmp_path / "docs.jsonl").write_text('{"text": "x"}\n')
    assert main(["pretrain", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: step 3: the loss is nan; stopped before the optimizer step.")
    assert "resume from it with train.resume=auto" in err and "Traceback" not in err
