"""Configurable split fractions, "all", and one evaluation set made of a train file and a test file."""

from __future__ import annotations

import numpy as np
import pytest

from astrobench.datasets.hdf5 import HDF5Source
from astrobench.datasets.schema import DataError
from astrobench.datasets.splits import resolve_fractions, split_indices, train_test_union


@pytest.fixture(scope="module")
def quasars(test_data):
    return HDF5Source(str(test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"), preset="sdss_quasars").load()


def test_fractions_from_config_values(quasars):
    assert resolve_fractions(None) == {"train": 0.7, "val": 0.1, "test": 0.2}
    assert resolve_fractions("all") == {"train": 1.0, "val": 0.0, "test": 0.0}
    assert resolve_fractions("all", whole="test") == {"train": 0.0, "val": 0.0, "test": 1.0}
    assert resolve_fractions("0.8,0,0.2") == {"train": 0.8, "val": 0.0, "test": 0.2}
    assert resolve_fractions({"train": 0.5, "test": 0.5}) == {"train": 0.5, "val": 0.0, "test": 0.5}
    for bad, message in (("0.8,0.3", "three numbers"), ({"train": 0.9}, "sum to 1"), ({"tran": 1.0}, "unknown split")):
        with pytest.raises(ValueError, match=message):
            resolve_fractions(bad)
    whole = split_indices(quasars, resolve_fractions("all"))
    assert whole["train"].tolist() == list(range(50)) and whole["test"].size == 0
    halves = split_indices(quasars, resolve_fractions("0.5,0,0.5"))
    assert halves["train"].size + halves["test"].size == 50 and 15 < halves["test"].size < 35


def test_train_and_test_files_become_one_evaluation_set(quasars):
    train, test = quasars.subset(np.arange(30)), quasars.subset(np.arange(30, 50))
    test.labels = {"redshift": test.labels["redshift"], "extra": np.arange(20)}
    data, splits = train_test_union(train, test)
    assert splits["train"].tolist() == list(range(30)) and splits["test"].tolist() == list(range(30, 50))
    assert splits["val"].size == 0 and data.object_id.tolist() == quasars.object_id.tolist()
    np.testing.assert_array_equal(data.image, quasars.image)
    assert data.labels["extra"][:30].tolist() == [-1] * 30 and data.labels["extra"][30:].tolist() == list(range(20))
    assert np.isnan(data.labels["mag_u"][30:]).all()  # a label only the train file has is missing in the test part
    with pytest.raises(DataError, match=r"1 object id\(s\) are in both files"):
        train_test_union(train, quasars.subset(np.arange(29, 40)))
