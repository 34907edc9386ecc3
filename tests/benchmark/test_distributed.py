"""A real 2-process (gloo, CPU) run through the CLI matches a 1-process run."""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from astrobench.testing import run_cli


def run(root: Path, plugin: str, *extra: str):
    return run_cli("run", "--plugin", plugin, "--dataset", "tiny", "--task", "tiny-size", "--method", "tiny-ae",
                   "--profile", "smoke", "--steps", "6", "--results-dir", str(root / "results"),
                   "--cache-dir", str(root / "cache"), "--quiet", *extra, timeout=600)


def test_two_gloo_processes_match_one_process(tmp_path, tiny_plugin):
    one = run(tmp_path / "one", tiny_plugin)
    assert one.returncode == 0, one.stderr
    two = run(tmp_path / "two", tiny_plugin, "--devices", "2")
    assert two.returncode == 0, two.stderr
    (r1,) = [json.loads(p.read_text()) for p in (tmp_path / "one" / "results").rglob("*.json")]
    (r2,) = [json.loads(p.read_text()) for p in (tmp_path / "two" / "results").rglob("*.json")]
    assert (r1["world_size"], r2["world_size"]) == (1, 2)
    assert r1["config_hash"] == r2["config_hash"]
    # only one result file, written by rank 0, and the same score within float tolerance
    assert abs(r1["scores"]["r2"] - r2["scores"]["r2"]) < 1e-3
    w1 = load_file(str(next((tmp_path / "one" / "cache").rglob("final/model.safetensors"))))
    w2 = load_file(str(next((tmp_path / "two" / "cache").rglob("final/model.safetensors"))))
    for name in w1:
        np.testing.assert_allclose(w1[name], w2[name], rtol=1e-4, atol=1e-5, err_msg=name)
    e1 = np.load(next((tmp_path / "one" / "cache" / "embeddings").iterdir()))
    e2 = np.load(next((tmp_path / "two" / "cache" / "embeddings").iterdir()))
    np.testing.assert_allclose(e1, e2, rtol=1e-4, atol=1e-5)  # gathered back in row order
