"""Kill a real run with SIGKILL, start it again, and demand bit-identical final weights."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from astrobench.testing import run_cli

STEPS, EVERY = 24, 4


def config(tmp_path: Path) -> Path:
    path = tmp_path / "resume.yaml"
    path.write_text(textwrap.dedent(f"""
        train: {{steps: {STEPS}, checkpoint_every: {EVERY}, keep_checkpoints: 2, deterministic: true, log_every: 1}}
        method_options:
          tiny-ae: {{slow_step_s: 0.05}}
    """))
    return path


def args(tmp_path: Path, plugin: str, root: Path) -> list[str]:
    return ["run", "--plugin", plugin, "--dataset", "tiny", "--task", "tiny-size", "--method", "tiny-ae",
            "--profile", "smoke", "--config", str(config(tmp_path)), "--results-dir", str(root / "results"),
            "--cache-dir", str(root / "cache"), "--quiet"]


def final_weights(root: Path) -> dict[str, np.ndarray]:
    (final,) = (root / "cache" / "pretrain").glob("*/final/model.safetensors")
    return load_file(str(final))


def step_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "cache" / "pretrain").glob("*/step-*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reference")
    plugin = str(Path(__file__).resolve().parents[1] / "plugins" / "tiny_plugin.py")
    out = run_cli(*args(tmp_path, plugin, tmp_path))
    assert out.returncode == 0, out.stderr
    return final_weights(tmp_path)


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path, tiny_plugin, reference):
    root = tmp_path / "killed"
    kill_after = int(np.random.default_rng().integers(1, STEPS // EVERY - 1)) * EVERY  # a checkpoint step
    cmd = [sys.executable, "-m", "astrobench", *args(tmp_path, tiny_plugin, root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while f"step-{kill_after:09d}" not in step_dirs(root) if root.exists() else True:
        assert time.time() < deadline and proc.poll() is None, "run ended before the kill"
        time.sleep(0.01)
    time.sleep(EVERY * 0.05 * 0.5)  # land between two checkpoints
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (root / "results").exists() or not list((root / "results").rglob("*.json"))
    again = run_cli(*args(tmp_path, tiny_plugin, root))
    assert again.returncode == 0, again.stderr
    weights = final_weights(root)
    assert weights.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(weights[name], reference[name], err_msg=name)


KILL_DURING_WRITE = textwrap.dedent("""
    import os, signal, sys, torch
    import astrobench.benchmark.checkpoints as ck
    kill_at = int(os.environ["KILL_AT_STEP"])
    original = ck.write_checkpoint
    def dying_write(run_dir, step, *a, **k):
        if step == kill_at:
            real_save = torch.save
            def save_then_die(*args, **kwargs):  # weights written, state half-written: die
                real_save(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)
            torch.save = save_then_die
        return original(run_dir, step, *a, **k)
    ck.write_checkpoint = dying_write
    import astrobench.benchmark.pretrain as pt
    pt.checkpoints.write_checkpoint = dying_write
    from astrobench.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_during_checkpoint_write_resumes_from_previous_checkpoint(tmp_path, tiny_plugin, reference):
    root = tmp_path / "killed-in-write"
    script = tmp_path / "die.py"
    script.write_text(KILL_DURING_WRITE)
    kill_at = 3 * EVERY
    proc = subprocess.run([sys.executable, str(script), *args(tmp_path, tiny_plugin, root)],
                          env={**os.environ, "KILL_AT_STEP": str(kill_at)}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    run_dir = next((root / "cache" / "pretrain").iterdir())
    assert any(p.name.startswith(f".step-{kill_at:09d}") for p in run_dir.iterdir())  # the torn write
    assert f"step-{kill_at:09d}" not in step_dirs(root)
    again = run_cli(*args(tmp_path, tiny_plugin, root))
    assert again.returncode == 0, again.stderr
    import json

    (result,) = [json.loads(p.read_text()) for p in (root / "results").rglob("*.json")]
    assert result["pretrain"]["resumed_from_step"] == kill_at - EVERY
    weights = final_weights(root)
    for name in reference:
        np.testing.assert_array_equal(weights[name], reference[name], err_msg=name)


def test_non_finite_loss_stops_with_the_step_and_writes_nothing(tmp_path, tiny_plugin):
    out = run_cli("run", "--plugin", tiny_plugin, "--dataset", "tiny", "--task", "tiny-size", "--method", "tiny-ae",
                  "--profile", "smoke", "--steps", "8", "--method-option", "inject_nan_at=5",
                  "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--quiet")
    assert out.returncode == 1
    assert "non-finite loss or gradient at step 5" in out.stderr
    assert not (tmp_path / "results").exists()
    assert not list((tmp_path / "cache").rglob("final"))
