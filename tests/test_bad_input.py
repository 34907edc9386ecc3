"""The probe suite of issue 17: bad input, damaged files, faults and concurrency, each typed the way
a user types it (the real ``astrobench`` command in a subprocess).

Every bad input must give its exit code (2 usage, 1 failure), a message naming the key, file or
field, no traceback, and nothing written to the results folder. ``PROBES`` counts them; the totals
are checked at the end of the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from astrobench.datasets.storage import save_survey
from astrobench.testing import run_cli

PLUGIN = Path(__file__).resolve().parent / "plugins" / "tiny_plugin.py"
TALLY = {"tried": 0, "clear_errors": 0, "silent_accepts": 0, "partial_writes": 0}


def written(results: Path) -> list[Path]:
    return sorted(p for p in results.rglob("*") if p.is_file()) if results.exists() else []


def expect_clear_error(out: subprocess.CompletedProcess, code: int, *needles: str, results: Path | None = None) -> None:
    """The probe's outcome, tallied: exit ``code``, every needle in stderr, no traceback, nothing written."""
    TALLY["tried"] += 1
    if out.returncode == 0:
        TALLY["silent_accepts"] += 1
    if results is not None and written(results):
        TALLY["partial_writes"] += 1
    assert out.returncode == code, (out.returncode, out.stderr[-3000:])
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr[-3000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert results is None or written(results) == [], written(results)
    TALLY["clear_errors"] += 1


def tiny_run(root: Path, *extra: str, plugin: Path = PLUGIN, timeout: int = 300):
    return run_cli("run", "--plugin", str(plugin), "--dataset", "tiny", "--task", "tiny-size", "--profile", "smoke",
                   "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache"), "--quiet", *extra,
                   timeout=timeout)


# -- run settings: usage errors before any data or model is built --------------------------------
@pytest.mark.parametrize("extra, needles", [
    (["--steps", "0"], ["train.steps must be >= 1, got 0"]),
    (["--steps", "-5"], ["train.steps must be >= 1, got -5"]),
    (["--batch-size", "0"], ["train.batch_size must be >= 2, got 0"]),
    (["--batch-size", "1"], ["train.batch_size must be >= 2, got 1"]),
])
def test_untrainable_settings_are_usage_errors(tmp_path, extra, needles):
    expect_clear_error(tiny_run(tmp_path, "--method", "tiny-ae", *extra), 2, *needles, results=tmp_path / "results")


@pytest.mark.parametrize("yaml_text, needles", [
    ("train: {steps: ten}\n", ["bad.yaml: train.steps must be int, got 'ten'"]),
    ("train: {lr: fast}\n", ["bad.yaml: train.lr must be int or float, got 'fast'"]),
    ("seeds: zero\n", ["seeds must be a list of non-negative integers, got 'zero'"]),
    ("label_budgets: [10, lots]\n", ["label budget 'lots' must be an integer or 'all'"]),
])
def test_mistyped_yaml_values_are_usage_errors_naming_the_key(tmp_path, yaml_text, needles):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    out = tiny_run(tmp_path, "--method", "tiny-ae", "--config", str(config))
    expect_clear_error(out, 2, *needles, results=tmp_path / "results")


def test_a_label_budget_larger_than_the_labels_is_an_error(tmp_path):
    out = tiny_run(tmp_path, "--method", "random", "--labels", "100000")
    expect_clear_error(out, 2, "label budget 100000", "tiny-size", results=tmp_path / "results")


def test_a_moco_queue_as_large_as_the_training_set_is_an_error_before_training(tmp_path):
    out = tiny_run(tmp_path, "--method", "mocov2", "--method-option", "mocov2.queue_size=160000")
    expect_clear_error(out, 2, "mocov2: queue_size 160000 is not smaller than the", "training images",
                       results=tmp_path / "results")
    assert not (tmp_path / "cache" / "pretrain").exists()


def test_a_failed_rank_is_one_line_naming_the_rank_and_the_cause(tmp_path):
    # a batch two processes cannot share: every rank fails in planning; the user sees one line
    out = tiny_run(tmp_path, "--method", "tiny-ae", "--batch-size", "15", "--devices", "2")
    expect_clear_error(out, 2, " of 2 failed: ", "batch_size 15 is not divisible by the 2 processes",
                       results=tmp_path / "results")
    assert "ChildFailedError" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if "error" in line.lower()]) == 1, out.stderr


# -- per-object metadata and catalogues --------------------------------------------------------
def hdf5_file(path: Path, *, pixel_scale: float = 0.396, ebv: float = 0.05, n: int = 48) -> Path:
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.normal(1.0, 0.1, (n, 5, 16, 16)).astype(np.float32))
        f.create_dataset("specz", data=rng.uniform(0.01, 0.3, n))
        f.create_dataset("ebv", data=np.where(np.arange(n) == 5, ebv, 0.03))
        f.attrs["bands"] = "ugriz"
        f.attrs["pixel_scale_arcsec"] = pixel_scale
    return path


def hdf5_run(root: Path, path: Path):
    return run_cli("run", "--dataset", "hdf5", "--dataset-option", f"path={path}", "--dataset-option", "ebv_key=ebv",
                   "--dataset-option", "label_keys={redshift: specz}", "--method", "constant", "--task", "redshift",
                   "--profile", "smoke", "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache"),
                   "--quiet")


@pytest.mark.parametrize("options, needles", [
    ({"pixel_scale": 0.0}, ["bad.h5", "pixel_scale_arcsec", "finite number > 0"]),
    ({"pixel_scale": float("nan")}, ["bad.h5", "pixel_scale_arcsec", "finite number > 0"]),
    ({"pixel_scale": -0.4}, ["bad.h5", "pixel_scale_arcsec"]),
    ({"ebv": float("inf")}, ["bad.h5", "field 'ebv'", "is inf"]),
    ({"ebv": -0.2}, ["bad.h5", "field 'ebv'", "is -0.2"]),
])
def test_bad_per_object_metadata_names_file_and_field(tmp_path, options, needles):
    out = hdf5_run(tmp_path, hdf5_file(tmp_path / "bad.h5", **options))
    expect_clear_error(out, 1, *needles, results=tmp_path / "results")


def test_the_same_hdf5_file_with_good_metadata_runs(tmp_path):
    out = hdf5_run(tmp_path, hdf5_file(tmp_path / "good.h5"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list((tmp_path / "results").rglob("*.json"))) == 1


def test_a_label_that_does_not_parse_names_column_and_row(tmp_path):
    from PIL import Image

    rows = ["file,objid,redshift"]
    for i in range(12):
        Image.fromarray(np.full((16, 16, 3), 40 + i, np.uint8)).save(tmp_path / f"g{i}.png")
        rows.append(f"g{i}.png,{i},{'0.2x' if i == 7 else 0.01 * i + 0.02}")
    (tmp_path / "catalog.csv").write_text("\n".join(rows) + "\n")
    out = run_cli("run", "--dataset", "images", "--dataset-option", f"path={tmp_path}", "--method", "constant",
                  "--task", "redshift", "--profile", "smoke", "--results-dir", str(tmp_path / "results"),
                  "--cache-dir", str(tmp_path / "cache"), "--quiet")
    expect_clear_error(out, 1, "catalog.csv", "label column 'redshift', row 7", "'0.2x'", results=tmp_path / "results")


# -- damaged files -----------------------------------------------------------------------------
FINISHED = ("--method", "tiny-ae,random", "--steps", "3")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete tiny-ae run (results, checkpoint, embeddings) that tests copy and damage."""
    root = tmp_path_factory.mktemp("finished")
    out = tiny_run(root, *FINISHED)
    assert out.returncode == 0, out.stderr
    return root


def test_the_stored_config_is_what_the_pretraining_stage_ran(finished_run):
    record = json.loads(next((finished_run / "results").rglob("tiny-ae*.json")).read_text())
    meta = json.loads((finished_run / "cache" / record["artifacts"]["pretrain_dir"] / "final" / "meta.json").read_text())
    ran, stored = meta["method"]["train"], record["resolved_config"]["train"]  # the checkpoint's own record
    assert set(ran) <= set(stored) and {k: stored[k] for k in ran} == ran
    assert stored["steps"] == meta["stats"]["steps"] == 3  # the command line's --steps, not a default
    assert stored["batch_size"] == meta["stats"]["global_batch"]


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, needles", [
    (lambda p: p.write_text("{'scores': 1,"), ["not valid JSON"]),
    (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "scores": None})), ["field 'scores'"]),
    (lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items() if k != "scores"})),
     ["field 'scores' is missing"]),
])
def test_a_damaged_result_is_named_and_skipped_and_the_rest_still_shows(tmp_path, finished_run, damage, needles):
    root = _copy(finished_run, tmp_path / "run")
    victim = next(p for p in sorted((root / "results").rglob("*.json")) if p.name.startswith("tiny-ae"))
    damage(victim)
    out = run_cli("leaderboard", "--results-dir", str(root / "results"), "--format", "csv")
    TALLY["tried"] += 1
    assert out.returncode == 1, out.stderr
    assert str(victim) in out.stderr and all(n in out.stderr for n in needles), out.stderr
    assert "random" in out.stdout and "Traceback" not in out.stderr  # the other results still show
    TALLY["clear_errors"] += 1


def test_a_damaged_cached_model_is_named_and_trained_again(tmp_path, finished_run):
    root = _copy(finished_run, tmp_path / "run")
    (weights,) = (root / "cache" / "pretrain").glob("tiny-ae-*/final/model.safetensors")
    weights.write_bytes(b"\xff" * 100)  # safetensors: "header too large"
    for p in (root / "results").rglob("tiny-ae*"):
        p.unlink()
    out = tiny_run(root, *FINISHED)
    TALLY["tried"] += 1
    assert out.returncode == 0, out.stderr
    assert str(weights) in out.stderr and "training it again" in out.stderr, out.stderr
    record = json.loads(next((root / "results").rglob("tiny-ae*.json")).read_text())
    assert record["pretrain"]["cached"] is False
    TALLY["clear_errors"] += 1


def test_damaged_cached_embeddings_are_named_and_computed_again(tmp_path, finished_run):
    root = _copy(finished_run, tmp_path / "run")
    for npy in (root / "cache" / "embeddings").glob("*.npy"):
        npy.write_bytes(b"\x93NUMPY garbage")
    for p in (root / "results").rglob("*"):
        if p.is_file():
            p.unlink()
    out = tiny_run(root, *FINISHED)
    TALLY["tried"] += 1
    assert out.returncode == 0, out.stderr
    assert "damaged embeddings" in out.stderr and str(root / "cache" / "embeddings") in out.stderr, out.stderr
    assert all(np.load(npy).ndim == 2 for npy in (root / "cache" / "embeddings").glob("*.npy"))
    TALLY["clear_errors"] += 1


def test_a_damaged_dataset_manifest_names_the_file(tmp_path):
    from astrobench.testing import make_tiny_survey

    folder = tmp_path / "survey"
    save_survey(make_tiny_survey(48), folder)
    (folder / "manifest.json").write_text("{\"bands\": ")
    out = run_cli("data", "inspect", str(folder))
    TALLY["tried"] += 1
    assert out.returncode == 1 and "manifest.json" in out.stderr and "Traceback" not in out.stderr, out.stderr
    TALLY["clear_errors"] += 1


# -- folders that cannot be written: found at start, not after the training ----------------------
@pytest.mark.parametrize("which", ["--results-dir", "--cache-dir"])
def test_an_unwritable_folder_fails_at_start(tmp_path, which):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = {"--results-dir": str(tmp_path / "results"), "--cache-dir": str(tmp_path / "cache")}
    args[which] = str(blocker / "sub")
    t0 = time.monotonic()
    out = run_cli("run", "--plugin", str(PLUGIN), "--dataset", "tiny", "--task", "tiny-size", "--profile", "smoke",
                  "--method", "tiny-ae", "--quiet", *[x for kv in args.items() for x in kv])
    expect_clear_error(out, 1, str(blocker / "sub"), "not writable", which, results=tmp_path / "results")
    assert not (tmp_path / "cache" / "pretrain").exists()  # nothing trained before the check
    assert time.monotonic() - t0 < 120


# -- code changes and concurrency ---------------------------------------------------------------
EDITED_PLUGIN = textwrap.dedent('''
    """A plugin method whose loss a test edits."""
    import torch
    from torch import nn

    from astrobench.registry import register_method
    from astrobench.testing import TinyAutoencoder, register_test_doubles

    register_test_doubles()
    FACTOR = {factor}


    def reconstruction_loss(out, target):
        return nn.functional.mse_loss(out, target) * FACTOR


    @register_method("edited-ae")
    class EditedAutoencoder(TinyAutoencoder):
        def training_step(self, batch):
            view = self.views(batch)
            return {{"loss": reconstruction_loss(self.decoder(self.encoder(view)), view)}}
''')


def test_editing_a_plugin_loss_retrains_and_replaces_the_result(tmp_path):
    plugin = tmp_path / "edited_plugin.py"
    plugin.write_text(EDITED_PLUGIN.format(factor="1.0"))
    first = tiny_run(tmp_path, "--method", "edited-ae", plugin=plugin)
    assert first.returncode == 0, first.stderr
    again = tiny_run(tmp_path, "--method", "edited-ae", plugin=plugin)
    assert "0 result(s) written, 1 already present" in again.stderr, again.stderr  # unchanged code: reused
    plugin.write_text(EDITED_PLUGIN.format(factor="3.0"))
    edited = tiny_run(tmp_path, "--method", "edited-ae", plugin=plugin)
    assert edited.returncode == 0, edited.stderr
    assert "1 result(s) written, 0 already present" in edited.stderr, edited.stderr
    assert len([p for p in (tmp_path / "cache" / "pretrain").iterdir() if p.name.startswith("edited-ae")]) == 2
    (result,) = (tmp_path / "results").rglob("edited-ae*.json")  # replaced, not a second row
    record = json.loads(result.read_text())
    assert record["pretrain"]["cached"] is False
    assert record["code"]["method"]["method"]["target"].endswith(":EditedAutoencoder")


def test_four_identical_concurrent_runs_pretrain_once(tmp_path):
    cmd = [sys.executable, "-m", "astrobench", "run", "--plugin", str(PLUGIN), "--dataset", "tiny", "--task",
           "tiny-size", "--profile", "smoke", "--method", "tiny-ae", "--cache-dir", str(tmp_path / "cache"),
           "--quiet", "--method-option", "slow_step_s=0.2"]
    procs = [subprocess.Popen([*cmd, "--results-dir", str(tmp_path / f"results-{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    records = [json.loads(next((tmp_path / f"results-{i}").rglob("*.json")).read_text()) for i in range(4)]
    assert sorted(r["pretrain"]["cached"] for r in records) == [False, True, True, True]  # one trained
    assert len({r["pretrain_key"] for r in records}) == 1
    assert len({json.dumps(r["scores"], sort_keys=True) for r in records}) == 1  # the same model, nothing lost
    assert len([p for p in (tmp_path / "cache" / "pretrain").iterdir()]) == 1


def test_zz_probe_totals():
    """The note's numbers: every bad input was a clear error; none accepted, none left a file."""
    print(f"\nprobe totals: {TALLY}")
    if TALLY["tried"] == 0:
        pytest.skip("run with the probes above")
    assert TALLY["silent_accepts"] == 0 and TALLY["partial_writes"] == 0
    assert TALLY["clear_errors"] == TALLY["tried"]
