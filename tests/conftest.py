"""Shared fixtures.

The real public traces live outside the repository, in `../shared/data/traces/` beside the
checkout (as in CI). A missing folder is a failure, never a skip (DESIGN §8).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """The folder of real traces; fails the test when it is absent."""
    if not SHARED_TRACES.is_dir():
        pytest.fail(
            f"real traces not found at {SHARED_TRACES}: check out the shared data folder "
            "as ../shared beside the repository (see shared/data/traces/SOURCES.md)"
        )
    return SHARED_TRACES
