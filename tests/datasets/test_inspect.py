"""source_for_path guesses the right source; inspect_source / format_inspection summarise it."""

from __future__ import annotations

import numpy as np
import pytest

from astrobench.datasets.fits import FitsSource
from astrobench.datasets.hdf5 import HDF5Source
from astrobench.datasets.images import ImageFolderSource
from astrobench.datasets.inspect import SavedDataset, format_inspection, inspect_source, source_for_path
from astrobench.datasets.npz import NpzSource
from astrobench.datasets.schema import DataError
from astrobench.datasets.storage import save_survey


def test_guesses(test_data, tmp_path):
    quasars = source_for_path(str(test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"))
    assert isinstance(quasars, HDF5Source) and quasars.preset == "sdss_quasars"
    assert isinstance(source_for_path(str(test_data / "decals_fits")), FitsSource)
    assert isinstance(source_for_path(str(test_data / "decals_fits" / "example_bad_pix.fits")), FitsSource)
    assert isinstance(source_for_path(str(test_data / "gz_rings_16")), ImageFolderSource)
    assert isinstance(source_for_path(str(test_data / "hsc_blend" / "hsc_cosmos_35.npz")), NpzSource)
    with pytest.raises(DataError, match="does not exist"):
        source_for_path(str(tmp_path / "nothing"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unknown kind of file"):
        source_for_path(str(tmp_path / "notes.txt"))


def test_inspect_sdss_quasars(real_data):
    info = inspect_source(source_for_path(str(real_data / "sdss_quasars" / "sdss_quasars_ugriz64.h5")))
    assert info["count"] == 300 and info["bands"] == list("ugriz") and info["image_shape"] == [5, 64, 64]
    assert info["pixel_scale"] == {"min": pytest.approx(0.396), "median": pytest.approx(0.396), "max": pytest.approx(0.396)}
    assert info["invalid_fraction"] == 0.0
    assert info["labels"]["redshift"]["coverage"] == 1.0
    assert info["labels"]["mag_r"]["coverage"] == pytest.approx(231 / 300)
    assert 2.75 < info["labels"]["redshift"]["min"] < info["labels"]["redshift"]["max"] < 7.1
    text = format_inspection(info)
    assert "objects:      300" in text and "u g r i z (5 x 64 x 64, flux)" in text
    assert '0.396"/px' in text and "label redshift: float64, 100% present, range 2.77 to 7.019" in text


def test_inspect_decals_masked_fraction(test_data):
    info = inspect_source(FitsSource(str(test_data / "decals_fits" / "example_bad_pix.fits")))
    assert info["invalid_fraction_per_band"] == pytest.approx({"g": 0.75707547, "r": 0.72760546, "z": 0.0})
    assert info["invalid_fraction"] == pytest.approx((0.75707547 + 0.72760546) / 3)
    assert "invalid px:   49.49% (g 75.7%, r 72.8%, z 0.0%)" in format_inspection(info)


def test_inspect_saved_folder_and_int_labels(test_data, tmp_path):
    data = NpzSource(str(test_data / "hsc_blend" / "hsc_cosmos_35.npz"), pixel_scale=0.168).load()
    data.labels["blend_size"] = np.array([7])
    save_survey(data, tmp_path / "saved")
    source = source_for_path(str(tmp_path / "saved"))
    assert isinstance(source, SavedDataset)
    info = inspect_source(source)
    assert info["count"] == 1 and info["has_ivar"] and info["labels"]["blend_size"]["counts"] == {"7": 1}
    assert info["invalid_fraction"] == pytest.approx(0.87248563, abs=1e-7)
    assert "label blend_size: int64, 100% present, range 7 to 7, counts 7:1" in format_inspection(info)
