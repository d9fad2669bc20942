"""Shared fixtures: where the public datasets of ../shared/data are (tests using them skip when absent)."""

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repository, or $INSTRUCTGPT_SHARED_DATA; skips the test when absent."""
    path = Path(os.environ.get("INSTRUCTGPT_SHARED_DATA", _DEFAULT))
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path}")
    return path
