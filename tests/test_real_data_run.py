"""End to end on real survey data: pretrain on the committed SDSS quasar cutouts (tests/data: the
first 50 of the shared 300), evaluate redshift with a redshift range that fits quasars, and read
the result on the leaderboard."""

import json

from astrobench.testing import run_cli


def test_quasar_pretraining_and_redshift_land_on_the_leaderboard(tmp_path, test_data):
    quasars = test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"
    out = run_cli("run", "--dataset", "hdf5", "--dataset-option", f"path={quasars}", "--dataset-option",
                  "preset=sdss_quasars", "--task", "redshift", "--task-option", "z_min=2.5", "--task-option",
                  "z_max=7.5", "--task-option", "n_bins=50", "--method", "simclr,random", "--profile", "smoke",
                  "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert out.returncode == 0, out.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("*.json")]
    assert sorted(r["method"] for r in records) == ["random", "simclr"]
    for r in records:
        assert r["dataset"] == "hdf5" and r["dataset_id"].startswith("hdf5-")
        assert r["task_params"]["z_max"] == 7.5
        assert 0 < r["scores"]["sigma_mad"] < 2 and 0 <= r["scores"]["eta_percent"] <= 100
    table = run_cli("leaderboard", "--results-dir", str(tmp_path / "r"), "--format", "md", "--task", "redshift")
    assert table.returncode == 0 and "simclr" in table.stdout and "random" in table.stdout


def test_a_truncated_fits_file_is_named_without_a_traceback(test_data):
    out = run_cli("data", "inspect", str(test_data / "decals_fits" / "example_incomplete.fits"))
    assert out.returncode == 1
    assert "example_incomplete.fits" in out.stderr and "Traceback" not in out.stderr
