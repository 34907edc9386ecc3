"""Shared fixtures: the real survey files in ``<repo>/../shared/data/real`` (always present in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    assert REAL_DATA.is_dir(), f"real survey files missing: {REAL_DATA}"
    return REAL_DATA
