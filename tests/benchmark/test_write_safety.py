"""A write that fails (a full disk) leaves nothing behind; folders are checked writable up front (issue 17)."""

import errno
import os

import pandas as pd
import pytest

from astrobench.benchmark import store
from astrobench.fsutil import check_writable


def _record():
    return {"kind": "astrobench-result", "method": "m", "config_hash": "c", "dataset": "d", "profile": "smoke",
            "task": "t", "protocol": "linear", "seed": 0, "label_budget": None, "scores": {"acc": 0.5},
            "main_score": "acc", "higher_is_better": {"acc": True}}


def test_a_full_disk_while_writing_the_json_leaves_no_orphan_predictions(tmp_path, monkeypatch):
    real_stage, calls = store.stage_bytes, []

    def stage(path, payload):
        calls.append(path.name)
        if path.suffix == ".json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(path, payload)

    monkeypatch.setattr(store, "stage_bytes", stage)
    with pytest.raises(OSError, match="No space left"):
        store.write_result(tmp_path / "r.json", _record(), pd.DataFrame({"object_id": ["a"], "y": [1.0]}))
    assert calls == ["r.predictions.parquet", "r.json"]
    assert list(tmp_path.iterdir()) == []  # neither the parquet nor a temporary


def test_a_failed_rename_keeps_the_previous_complete_result(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    store.write_result(path, _record(), None)
    before = path.read_text()
    monkeypatch.setattr(store.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        store.write_result(path, {**_record(), "scores": {"acc": 0.9}}, None)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_check_writable_names_the_folder_and_the_option_and_creates_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"results folder '.*file/sub' is not writable .*--results-dir"):
        check_writable(blocker / "sub", "results folder", "--results-dir")
    check_writable(tmp_path / "new" / "deeper", "cache folder", "--cache-dir")
    assert not (tmp_path / "new").exists()  # checked, not created: a failed run leaves nothing
    check_writable(tmp_path, "cache folder", "--cache-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probe file is gone


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OSError, match="not writable"):
            check_writable(folder, "results folder", "--results-dir")
    finally:
        folder.chmod(0o700)


def test_large_hdf5_scratch_arrays_are_private_and_leave_no_file(tmp_path, monkeypatch):
    # issue 17: every run used one fixed <cache>/hdf5_image.npy, so two concurrent runs wrote into each other
    import numpy as np

    from astrobench.datasets import hdf5

    monkeypatch.setattr(hdf5, "_MEMMAP_BYTES", 1)  # every array goes to a memory-mapped scratch file
    a = hdf5.HDF5Source._allocate((4, 3), np.float32, tmp_path, "image")
    b = hdf5.HDF5Source._allocate((4, 3), np.float32, tmp_path, "image")
    a[:] = 1.0
    b[:] = 2.0
    assert float(a.sum()) == 12.0 and float(b.sum()) == 24.0  # not the same file
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing left behind
