"""Shared fixtures: paths to the real data, the test-double plugin, and an isolated cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"
TINY_PLUGIN = REPO / "tests" / "plugins" / "tiny_plugin.py"


@pytest.fixture
def tiny_plugin() -> str:
    return str(TINY_PLUGIN)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A clean results + cache folder; the environment variables point the CLI there."""
    monkeypatch.setenv("ASTROBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ASTROBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300):
    """Run the real console entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "astrobench", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )
