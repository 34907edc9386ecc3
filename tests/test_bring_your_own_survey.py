"""Bring your own survey, end to end through the command line: a train file and a test file, the
generic tasks on real quasars and ring PNGs, and the plan made before any training."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from astrobench.testing import run_cli


def _quasar_file(real_file):
    """The shared 300 quasars when present, else the committed first 50 of them."""
    try:
        return real_file("sdss_quasars/sdss_quasars_ugriz64.h5")
    except pytest.skip.Exception:
        return real_file("sdss_quasars/sdss_quasars_ugriz64_first50.h5")


def _write_rows(source, out, rows, drop=()):
    with h5py.File(source) as f, h5py.File(out, "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        for key in f:
            if key not in drop:
                g.create_dataset(key, data=f[key][...][rows])
    return out


def _split_quasars(real_file, tmp_path):
    source = _quasar_file(real_file)
    with h5py.File(source) as f:
        n = f["specz"].shape[0]
    first = np.arange(n) < int(0.6 * n)
    return (_write_rows(source, tmp_path / "train.h5", np.flatnonzero(first)),
            _write_rows(source, tmp_path / "test.h5", np.flatnonzero(~first)), source)


def _records(results):
    return [json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))]


def test_pretrain_on_one_file_fit_on_all_of_it_score_on_all_of_the_other(real_file, tmp_path):
    train, test, _ = _split_quasars(real_file, tmp_path)
    with h5py.File(train) as f, h5py.File(test) as g:
        n_train, test_ids = f["specz"].shape[0], sorted(str(i) for i in g["specobjid"][...])
    out = run_cli("run", "--dataset", "hdf5", "--dataset-option", f"path={train}", "--dataset-option", "preset=sdss_quasars",
                  "--test-dataset", "hdf5", "--test-dataset-option", f"path={test}", "--test-dataset-option",
                  "preset=sdss_quasars", "--task", "regression", "--task-option", "label=redshift",
                  "--method", "simclr", "--profile", "smoke", "--protocol", "linear,knn",
                  "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert out.returncode == 0, out.stderr
    records = _records(tmp_path / "r")
    assert sorted(r["protocol"] for r in records) == ["knn", "linear"]
    for record in records:
        assert record["details"]["n_train"] == n_train  # every object of the train file fits the probe
        assert record["details"]["n_test"] == len(test_ids)
        assert record["dataset_options"]["eval"]["test"]["path"] == str(test)
        assert record["main_score"] == "sigma_mad" and 0 < record["scores"]["sigma_mad"] < 2
        predictions = pd.read_parquet(next((tmp_path / "r").rglob(f"*{record['protocol']}*.parquet")))
        assert sorted(predictions["object_id"]) == test_ids  # every test object is scored, and only those
    # pretraining saw the whole train file (no 70% hash split): steps x batch over n_train rows
    assert records[0]["pretrain"]["steps"] >= 1


def test_pretraining_on_an_unlabelled_file(real_file, tmp_path):
    train, test, source = _split_quasars(real_file, tmp_path)
    unlabelled = _write_rows(source, tmp_path / "unlabelled.h5", slice(None), drop=("specz", "specz_err"))
    hdf5 = ["--dataset-option", "image_key=images", "--dataset-option", "id_key=specobjid", "--dataset-option", "bands=ugriz"]
    out = run_cli("run", "--dataset", "hdf5", "--dataset-option", f"path={unlabelled}", *hdf5,
                  "--train-dataset", "hdf5", "--train-dataset-option", f"path={train}", "--train-dataset-option",
                  "preset=sdss_quasars", "--test-dataset", "hdf5", "--test-dataset-option", f"path={test}",
                  "--test-dataset-option", "preset=sdss_quasars", "--task", "classification", "--task-option",
                  "label=redshift", "--task-option", "bin_edges=[2.5, 3.5, 8]", "--method", "random", "--profile", "smoke",
                  "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert out.returncode == 0, out.stderr
    [record] = _records(tmp_path / "r")
    assert record["details"]["classes"] == ["[2.5, 3.5)", "[3.5, 8]"]
    assert 0 <= record["scores"]["balanced_accuracy"] <= 1


def test_duplicates_across_the_train_and_test_files_are_named_and_strict_fails(real_file, tmp_path):
    train, test, _ = _split_quasars(real_file, tmp_path)
    with h5py.File(train) as f, h5py.File(test, "r+") as g:
        g["images"][0] = f["images"][3]  # the same cutout, filed again under another id
        planted = (str(f["specobjid"][3]), str(g["specobjid"][0]))
    args = ["run", "--dataset", "hdf5", "--dataset-option", f"path={train}", "--dataset-option", "preset=sdss_quasars",
            "--test-dataset", "hdf5", "--test-dataset-option", f"path={test}", "--test-dataset-option", "preset=sdss_quasars",
            "--task", "regression", "--task-option", "label=redshift", "--method", "constant", "--profile", "smoke",
            "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet"]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    assert "train-test-leakage" in out.stderr and all(repr(i) in out.stderr for i in planted), out.stderr
    strict = run_cli(*args, "--strict", "--results-dir", str(tmp_path / "strict"))
    assert strict.returncode == 1 and "--strict" in strict.stderr
    assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").rglob("*.json"))


def test_generic_tasks_run_on_ring_pngs_with_no_plugin(real_file, tmp_path):
    rings = real_file("gz_rings_16")
    common = ["--dataset", "images", "--dataset-option", f"path={rings}", "--dataset-option", "size=32",
              "--splits", "0.5,0,0.5", "--method", "random", "--profile", "smoke",
              "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet"]
    out = run_cli("run", "--task", "classification,retrieval", "--task-option", "label=ring",
                  "--task-option", "retrieval.ks=[1,3]", *common)
    assert out.returncode == 0, out.stderr
    out = run_cli("run", "--task", "regression", "--task-option", "label=smooth-or-featured_featured-or-disk_fraction", *common)
    assert out.returncode == 0, out.stderr
    assert sorted(r["task"] for r in _records(tmp_path / "r")) == ["classification", "regression", "retrieval"]
    assert list((tmp_path / "c" / "images").glob("*.npz"))  # decoded once, kept for the next run


def test_rgb_data_drops_simclr_default_flux_views_with_a_note_and_refuses_chosen_ones(real_file, tmp_path):
    rings = real_file("gz_rings_16")
    common = ["--dataset", "images", "--dataset-option", f"path={rings}", "--dataset-option", "size=32",
              "--task", "classification", "--task-option", "label=ring", "--splits", "0.5,0,0.5",
              "--profile", "smoke", "--steps", "2", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    out = run_cli("run", "--method", "simclr", "--quiet", *common)
    assert out.returncode == 0, out.stderr
    assert "note: method 'simclr': RGB data" in out.stderr and "['GR', 'PS']" in out.stderr
    [record] = _records(tmp_path / "r")
    assert not {"GR", "PS"} & set(record["method_config"]["views"]["codes"])
    config = tmp_path / "views.yaml"
    config.write_text("views:\n  simclr: {codes: [RR, GR]}\n")
    refused = run_cli("run", "--method", "random,simclr", "--config", str(config), *common[:-4],
                      "--results-dir", str(tmp_path / "r2"), "--cache-dir", str(tmp_path / "c2"))
    assert refused.returncode == 2 and "views ['GR'] need flux images" in refused.stderr
    assert not (tmp_path / "c2" / "pretrain").exists()  # refused before any training, even of 'random'


def test_quasars_with_the_default_redshift_range_fail_before_training_naming_z_max(real_file, tmp_path):
    quasars = _quasar_file(real_file)
    out = run_cli("run", "--dataset", "hdf5", "--dataset-option", f"path={quasars}", "--dataset-option",
                  "preset=sdss_quasars", "--task", "redshift", "--method", "random", "--profile", "smoke",
                  "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--quiet")
    assert out.returncode == 1
    assert "at or above z_max=0.4" in out.stderr and "z_max=..." in out.stderr
    assert not (tmp_path / "c" / "pretrain").exists()


def test_data_inspect_takes_the_dataset_options(tmp_path, real_file):
    rings = real_file("gz_rings_16")
    folder = tmp_path / "gz"
    (folder / "Imagenes").mkdir(parents=True)
    catalog = pd.read_csv(rings / "catalog.csv")
    for name, file in zip(catalog["iauname"], catalog["file"]):
        (folder / "Imagenes" / f"{name}.png").write_bytes((rings / file).read_bytes())
    (folder / "Imagenes" / "copy.png").write_bytes((rings / catalog["file"][0]).read_bytes())
    rows = catalog[["iauname", "ring"]].rename(columns={"iauname": "OBJID", "ring": "CLASS"})
    rows = pd.concat([rows, pd.DataFrame({"OBJID": ["copy"], "CLASS": [1]})])
    rows.to_csv(folder / "gz.csv", index=False)
    out = run_cli("data", "inspect", str(folder), "--dataset-option", "catalog=gz.csv", "--dataset-option",
                  "file_pattern=Imagenes/{OBJID}.png", "--dataset-option", "size=16")
    assert out.returncode == 0, out.stderr
    assert "objects:      17" in out.stdout and "label CLASS" in out.stdout
    assert "[duplicate-images]" in out.stdout and f"'{catalog['iauname'][0]}' = 'copy'" in out.stdout
    strict = run_cli("data", "inspect", str(folder), "--dataset", "images", "--dataset-option", "catalog=gz.csv",
                     "--dataset-option", "file_pattern=Imagenes/{OBJID}.png", "--dataset-option", "size=16", "--strict")
    assert strict.returncode == 1
    typo = run_cli("data", "inspect", str(folder), "--dataset", "images", "--dataset-option", "catalogue=gz.csv")
    assert typo.returncode == 2 and "no option 'catalogue'" in typo.stderr
