"""Shared fixtures: where the public datasets of ../shared/data are (tests using them skip when absent),
and a training run killed after a given step (for the exact-resume tests), and an evaluation file for the
decontamination tests."""

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repository, or $INSTRUCTGPT_SHARED_DATA; skips the test when absent."""
    path = Path(os.environ.get("INSTRUCTGPT_SHARED_DATA", _DEFAULT))
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path}")
    return path


@pytest.fixture
def kill_after(monkeypatch) -> Callable[[int], AbstractContextManager[None]]:
    """`with kill_after(n): run(...)`: the training run inside dies right after its n-th optimizer step
    (before the next one is taken), like a killed process: the checkpoints written so far stay."""
    from instructgpt.train import run as training_run

    @contextmanager
    def killed(steps: int) -> Iterator[None]:
        real = training_run.check_finite

        def die(value: float, state: Any, what: str = "loss") -> None:
            if state.step == steps:
                raise RuntimeError("killed")
            real(value, state, what)

        monkeypatch.setattr(training_run, "check_finite", die)
        try:
            with pytest.raises(RuntimeError, match="killed"):
                yield
        finally:
            monkeypatch.setattr(training_run, "check_finite", real)

    return killed


# A trained-tokenizer tiny-gpt preset (its initial weights), saved: what the export tests convert.
EXPORT_TEXTS = [
    "The quick brown fox jumps over the lazy dog, 3 times.",
    "机器学习是人工智能的一个分支。",
] * 20


@pytest.fixture(scope="module")
def tiny_gpt_folder(tmp_path_factory) -> Path:
    import torch

    from instructgpt.config import ModelOptions
    from instructgpt.models import load_model, save_model

    torch.manual_seed(0)
    options = ModelOptions(name="tiny-gpt", vocab_size=300, max_length=64)
    model, tokenizer = load_model(options, "causal_lm", EXPORT_TEXTS * 20)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("tiny-gpt") / "model")


# A tiny-gpt with random weights and a tokenizer trained on a bilingual line, for the sampler's consumers.
TINY_TEXTS = ["Summarize the text. The weather is nice today.", "总结一下：今天天气很好，我们去公园。"] * 20


@pytest.fixture(scope="module")
def random_tiny_gpt(tmp_path_factory, request) -> Path:
    """A saved tiny-gpt folder with random weights (varied outputs); context from the module's CONTEXT."""
    import torch
    from transformers import LlamaForCausalLM

    from instructgpt.models import PRESETS, save_model
    from instructgpt.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(TINY_TEXTS, vocab_size=300)
    torch.manual_seed(0)
    config = PRESETS["tiny-gpt"](len(tokenizer), getattr(request.module, "CONTEXT", 256))
    config.initializer_range = 0.2  # varied outputs from random weights
    config.eos_token_id = tokenizer.eos_token_id
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(LlamaForCausalLM(config), tokenizer, folder)
    return folder


# An evaluation item for the decontamination tests: a training record holding SPAN (13 of its words, in
# other case and punctuation) shares an n-gram with it.
EVAL_QUESTION = (
    "Which river flows past the old harbour of Hamburg before it finally reaches the cold North Sea near "
    "Cuxhaven?"
)
SPAN = "The old HARBOUR of Hamburg, before it finally reaches the cold North Sea"


@dataclass
class PlantedEval:
    """An evaluation file holding EVAL_QUESTION, the span a planted training text copies from it, and the
    decontamination override that names the file."""

    path: Path
    span: str = SPAN
    ngram: str = "the old harbour of hamburg before it finally reaches the cold north sea"

    @property
    def override(self) -> str:
        return f"decontaminate.eval_files=[{self.path}]"

    def rejected(self, out_dir: Path) -> list[dict[str, Any]]:
        """The rejects file's decontamination entries in `out_dir`."""
        lines = (out_dir / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
        return [e for e in map(json.loads, lines) if e["stage"] == "decontaminate"]

    def check_rejected(self, out_dir: Path, where: str) -> dict[str, Any]:
        """The one decontamination entry: at `where`, naming the evaluation file and the n-gram."""
        (entry,) = self.rejected(out_dir)
        assert entry["where"] == where
        assert str(self.path) in entry["reason"] and repr(self.ngram) in entry["reason"]
        return entry["record"]


@pytest.fixture
def planted_eval(tmp_path) -> PlantedEval:
    path = tmp_path / "eval_items.jsonl"
    path.write_text(json.dumps({"id": "eval-1", "question": EVAL_QUESTION, "answer": "the Elbe"}) + "\n")
    return PlantedEval(path)


@pytest.fixture
def hf_offline(tmp_path, monkeypatch) -> Any:
    """🤗 datasets, offline (no Hub requests) with an empty cache under tmp_path; skips when absent."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


@pytest.fixture
def two_processes() -> Callable[..., None]:
    """Run a worker script under `torchrun` with two gloo processes (one torch thread each) and fail with
    the end of its stderr when it does not exit 0."""
    import subprocess
    import sys

    def run(script: Path, *args: str, timeout: int = 300) -> None:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        done = subprocess.run(
            [*command, str(script), *args],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr[-4000:]

    return run
