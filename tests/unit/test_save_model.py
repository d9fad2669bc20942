"""models.save_model leaves a folder others can read (the umask's modes, not tempfile's 0700), and the
next save removes what a killed save left; a pickled weights file is refused with a clean error."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from transformers import LlamaForCausalLM

from instructgpt.config import ModelOptions
from instructgpt.models import PRESETS, load_model, save_model
from instructgpt.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tiny() -> tuple[LlamaForCausalLM, object]:
    tokenizer = train_tokenizer(["a small text to train on, 一些中文"] * 4, vocab_size=300)
    return LlamaForCausalLM(PRESETS["tiny-gpt"](len(tokenizer), 32)), tokenizer


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    before = os.umask(0o022)
    yield os.umask
    os.umask(before)


def _modes(folder: Path) -> set[tuple[str, int]]:
    return {
        ("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.iterdir()]
    }


@pytest.mark.parametrize(("mask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_a_saved_model_has_the_modes_of_the_umask(tiny, tmp_path, umask, mask, dir_mode, file_mode) -> None:
    umask(mask)
    folder = save_model(*tiny, tmp_path / "model")
    assert (folder / "model.safetensors").is_file()
    assert _modes(folder) == {("dir", dir_mode), ("file", file_mode)}


def test_the_next_save_removes_what_a_killed_save_left(tiny, tmp_path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = int(dead.stdout)
    for name in (
        f"model.tmp-{gone}-x1",
        f"model.old-{gone}-x2",
        f"model.tmp-{os.getpid()}-x3",
        "best.tmp-7-x4",
    ):
        (tmp_path / name).mkdir()
    save_model(*tiny, tmp_path / "model")
    # a live process's folder stays (it may be saving now), and so does another model's
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.tmp-7-x4",
        "model",
        f"model.tmp-{os.getpid()}-x3",
    ]


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_weights_file_is_refused_naming_it(tiny, tmp_path) -> None:
    folder = save_model(*tiny, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(
        ValueError, match=r"refused .*model/pytorch_model\.bin: it holds something other than"
    ):
        load_model(ModelOptions(name=str(folder)), "causal_lm")
