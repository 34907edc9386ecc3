"""Shared fixtures: the test-double plugin file."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_PLUGIN = REPO / "tests" / "plugins" / "tiny_plugin.py"


@pytest.fixture
def tiny_plugin() -> str:
    return str(TINY_PLUGIN)
