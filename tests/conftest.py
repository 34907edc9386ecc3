"""Shared fixtures: the test-double plugin file, and the real survey files.

Real files come from two places. ``tests/data/`` is committed (a few MB: see its README), so a
fresh clone tests loaders on real data. ``../shared/data/real`` (next to the clone, or where
``$ASTROBENCH_SHARED`` names: CI sets it to a missing folder to check a fresh clone's view) holds
the full set; tests that need more than the committed subset skip, saying so, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_PLUGIN = REPO / "tests" / "plugins" / "tiny_plugin.py"
TEST_DATA = REPO / "tests" / "data"
SHARED = Path(os.environ.get("ASTROBENCH_SHARED") or REPO.parent / "shared")
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture
def tiny_plugin() -> str:
    return str(TINY_PLUGIN)


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The committed subset of real survey files (always present)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The full set of real survey files; the test skips when it is absent (a fresh clone)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"needs the full real survey files in {REAL_DATA} (absent; set ASTROBENCH_SHARED)")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_file():
    """``real_file("decals_fits/example_a.fits")``: the committed copy in tests/data when there is
    one (byte-identical to the shared file of the same relative path), else the shared one, else skip."""

    def find(relative: str) -> Path:
        for root in (TEST_DATA, REAL_DATA):
            if (root / relative).exists():
                return root / relative
        pytest.skip(f"needs {relative} from {REAL_DATA} (absent; set ASTROBENCH_SHARED)")

    return find
