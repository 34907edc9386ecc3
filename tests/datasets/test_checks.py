"""Data checks: duplicated images (within a file and across train / test), impossible labels and
uncertainties, empty or constant bands, missing metadata; --strict turns warnings into a failure."""

from __future__ import annotations

import numpy as np
import pytest

from astrobench.datasets.checks import DataCheckError, enforce, run_checks
from astrobench.datasets.hdf5 import HDF5Source
from astrobench.datasets.splits import train_test_union


@pytest.fixture(scope="module")
def quasars(test_data):
    path = test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"
    return HDF5Source(str(path), preset="sdss_quasars").load()


def _by_check(findings):
    return {f.check: f for f in findings}


def test_duplicates_planted_across_train_and_test_are_named(quasars):
    train, test = quasars.subset(np.arange(30)), quasars.subset(np.arange(30, 50))
    test.image = test.image.copy()
    test.image[4] = train.image[7]  # the same cutout under another id, with another redshift
    data, splits = train_test_union(train, test)
    found = _by_check(run_checks(data, splits))
    leak = found["train-test-leakage"]
    assert leak.level == "warning" and "1 test object(s)" in leak.message
    ids = (str(train.object_id[7]), str(test.object_id[4]))
    assert f"{ids[0]!r} = {ids[1]!r}" in leak.message
    assert f"redshift {min(train.labels['redshift'][7], test.labels['redshift'][4]):.4g} vs" in leak.message
    assert "1 group(s) of byte-identical images (2 objects)" in found["duplicate-images"].message
    assert "train-test-leakage" not in _by_check(run_checks(quasars.subset(np.arange(50))))  # no splits: no leakage check


def test_impossible_labels_and_uncertainties(quasars):
    data = quasars.subset(np.arange(50))
    data.labels = dict(data.labels, specz_err=np.full(50, 0.01), flux_fraction=np.full(50, 0.5))
    data.labels["specz_err"][[1, 2]] = [-6.0, 102.0]
    data.labels["flux_fraction"][5] = 1.3
    found = _by_check(run_checks(data))
    assert found["label-error"].message == ("label 'specz_err' holds impossible uncertainties: 1 negative (e.g. -6), "
                                            "1 larger than the physical range of 'specz' (15.01; e.g. 102)")
    assert "label 'flux_fraction': 0 value(s) below 0 and 1 above 1" in found["label-range"].message


def test_empty_and_constant_bands_and_missing_metadata(quasars):
    data = quasars.subset(np.arange(10))
    data.mask = data.mask.copy()
    data.image = data.image.copy()
    data.mask[2, 0] = True  # u band: no valid pixel
    data.image[3, 4] = 7.0  # z band: one value everywhere
    data.ebv = np.zeros(10, np.float32)
    data.ebv[:5] = np.nan
    found = _by_check(run_checks(data))
    assert found["empty-band"].message == f"band 'u': 1 of 10 object(s) have no valid pixel (first {str(data.object_id[2])!r})"
    assert found["constant-band"].message.startswith("band 'z': 1 of 10 object(s) have a single value")
    messages = [f.message for f in run_checks(data) if f.check == "missing-metadata"]
    assert "ebv is missing for 50.0% of objects (5 of 10)" in messages


def test_strict_fails_on_warnings_and_prints_them(quasars):
    data = quasars.subset(np.arange(10))
    data.mask = data.mask.copy()
    data.mask[0, 1] = True
    findings = run_checks(data)
    printed = []
    enforce(findings, strict=False, log=printed.append, where="q.h5")
    assert any("q.h5: warning: [empty-band]" in line for line in printed)
    with pytest.raises(DataCheckError, match="empty-band"):
        enforce(findings, strict=True, log=None)
    notes_only = [f for f in findings if f.level == "note"]
    enforce(notes_only, strict=True, log=None)  # notes never fail


def test_a_clean_file_has_no_warning(quasars):
    data = quasars.subset(np.arange(50))
    data.ebv, data.ra, data.dec = np.zeros(50, np.float32), np.zeros(50), np.zeros(50)
    data.labels = {"redshift": data.labels["redshift"]}
    assert [f for f in run_checks(data) if f.level == "warning"] == []
