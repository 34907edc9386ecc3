"""HDF5Source on the real SDSS quasar file and on a small synthetic Galaxy10 DECaLS layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from astrobench.datasets.hdf5 import HDF5Source, detect_preset
from astrobench.datasets.schema import DataError
from astrobench.photometry import extinction_coefficients
from astrobench.registry import DATASETS


@pytest.fixture(scope="module")
def quasars(real_data):
    path = real_data / "sdss_quasars" / "sdss_quasars_ugriz64.h5"
    return path, HDF5Source(str(path), preset="sdss_quasars").load()


def test_sdss_quasars_preset_reads_the_real_file(quasars):
    path, data = quasars
    assert detect_preset(path) == "sdss_quasars"
    assert len(data) == 300
    assert data.bands == ("u", "g", "r", "i", "z")
    assert data.image.shape == (300, 5, 64, 64) and data.image.dtype == np.float32
    assert np.allclose(data.pixel_scale, 0.396)
    assert data.image_is_flux
    assert not data.mask.any()  # no NaN pixels, and SDSS zeros are data (zero_is_invalid off)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(data.image[:3], f["images"][:3])
        expected_ebv = f["extinction_r"][:] / extinction_coefficients(["r"], "sdss")[0]
        assert data.object_id[0] == str(f["specobjid"][0])
    np.testing.assert_allclose(data.ebv, expected_ebv, rtol=1e-6, equal_nan=True)
    assert data.manifest["source"] == "hdf5" and data.manifest["options"]["preset"] == "sdss_quasars"
    assert data.origin == str(path)


def test_sdss_quasars_labels_and_missing_values(quasars):
    _, data = quasars
    z = data.labels["redshift"]
    assert z.min() > 2.75 and z.max() < 7.1 and np.isfinite(z).all()
    assert set(data.labels) == {"redshift", "mag_u", "mag_g", "mag_r", "mag_i", "mag_z"}
    # 69 quasars have no catalogue match: NaN positions, magnitudes and E(B-V), never made up
    assert np.isnan(data.ra).sum() == 69 and np.isnan(data.labels["mag_r"]).sum() == 69
    assert np.isnan(data.ebv).sum() == 69
    assert 0 < np.nanmin(data.ebv) < 0.01 and np.nanmax(data.ebv) == pytest.approx(3.044048 / 2.285, rel=1e-5)
    assert np.nanmin(data.ra) >= 0 and np.nanmax(data.ra) < 360


def test_max_objects_and_chunked_reading_agree(test_data):
    path = test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"
    head = HDF5Source(str(path), preset="sdss_quasars", max_objects=7).load()
    assert len(head) == 7
    whole = HDF5Source(str(path), preset="sdss_quasars").load()
    np.testing.assert_array_equal(head.image, whole.image[:7])


def test_committed_quasar_subset_keeps_the_real_files_gaps(test_data):
    """The first 50 rows of the shared file (tests/data/README.md): 15 have no catalogue match."""
    path = test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"
    assert detect_preset(path) == "sdss_quasars"
    data = HDF5Source(str(path), preset="sdss_quasars").load()
    assert len(data) == 50 and data.image.shape == (50, 5, 64, 64) and data.bands == tuple("ugriz")
    z = data.labels["redshift"]
    assert np.isfinite(z).all() and 2.75 < z.min() and z.max() < 7.1
    assert np.isnan(data.ra).sum() == 15 and np.isnan(data.labels["mag_r"]).sum() == 15 and np.isnan(data.ebv).sum() == 15


def _galaxy10(path, n=12, with_nan_redshift=True, ans=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["ans"] = np.arange(n, dtype=np.uint8) % 10 if ans is None else ans
        redshift = rng.uniform(0, 0.3, n).astype(np.float32)
        if with_nan_redshift:
            redshift[1] = np.nan
        f["redshift"] = redshift
        f["ra"] = rng.uniform(0, 360, n)
        f["dec"] = rng.uniform(-10, 10, n)
    return images


def test_galaxy10_preset_on_synthetic_layout(tmp_path):
    path = tmp_path / "Galaxy10_DECals.h5"
    images = _galaxy10(path)
    assert detect_preset(path) == "galaxy10_decals"
    data = HDF5Source(str(path), preset="galaxy10_decals").load(tmp_path / "cache")
    assert data.image.shape == (12, 3, 32, 32)
    assert not data.image_is_flux and data.bands == ("R", "G", "B")
    np.testing.assert_allclose(data.image[2, 1], images[2, :, :, 1] / 255.0, rtol=1e-6)
    assert data.labels["galaxy10"].dtype == np.int64
    np.testing.assert_array_equal(data.labels["galaxy10"], np.arange(12) % 10)
    assert np.isnan(data.labels["redshift"][1])
    assert np.allclose(data.pixel_scale, 0.262)
    assert data.object_id[0] == "row000000"


def test_galaxy10_class_out_of_range_is_an_error(tmp_path):
    path = tmp_path / "g10.h5"
    _galaxy10(path, n=4, ans=np.array([0, 3, 12, 9], dtype=np.uint8))
    with pytest.raises(DataError, match=r"galaxy10.*12.*range"):
        HDF5Source(str(path), preset="galaxy10_decals").load()


def test_channels_guess_and_explicit_keys(tmp_path):
    path = tmp_path / "cut.h5"
    image = np.random.default_rng(1).normal(size=(4, 64, 64, 2)).astype(np.float32)
    image[0, 5, 6, 1] = np.nan
    with h5py.File(path, "w") as f:
        f["cutouts"] = image
        f["name"] = np.array([b"a", b"b", b"c", b"d"])
        f["z"] = np.array([0.1, 0.2, 0.3, 0.4])
        f.attrs["pixel_scale"] = 0.2
    data = HDF5Source(str(path), image_key="cutouts", id_key="name", label_keys={"redshift": "z"}, bands=["g", "r"]).load()
    assert data.image.shape == (4, 2, 64, 64)
    assert data.mask[0, 1, 5, 6] and data.mask.sum() == 1 and data.image[0, 1, 5, 6] == 0  # NaN -> masked, 0
    assert list(data.object_id) == ["a", "b", "c", "d"]
    assert np.isnan(data.ra).all()


def test_wrong_band_count_missing_key_and_duplicate_ids(tmp_path, test_data):
    path = test_data / "sdss_quasars" / "sdss_quasars_ugriz64_first50.h5"
    with pytest.raises(DataError, match=r"3 bands .* 5 channels"):
        HDF5Source(str(path), preset="sdss_quasars", bands=["g", "r", "i"]).load()
    with pytest.raises(DataError, match=r"no dataset 'cutouts'"):
        HDF5Source(str(path), preset="sdss_quasars", image_key="cutouts").load()
    dup = tmp_path / "dup.h5"
    with h5py.File(dup, "w") as f:
        f["images"] = np.zeros((2, 1, 8, 8), np.float32)
        f["id"] = np.array([7, 7])
    with pytest.raises(DataError, match=r"object id '7' appears 2 times"):
        HDF5Source(str(dup), id_key="id", bands=["r"], pixel_scale=0.2).load()
    with pytest.raises(DataError, match="unknown HDF5 preset"):
        HDF5Source(str(path), preset="nope")


def test_not_hdf5_and_empty(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match=r"bad\.h5.*not a readable HDF5"):
        HDF5Source(str(bad)).load()
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f["images"] = np.zeros((0, 1, 8, 8), np.float32)
    with pytest.raises(DataError, match="no images"):
        HDF5Source(str(empty), bands=["r"], pixel_scale=0.2).load()


def test_registered_as_hdf5():
    assert DATASETS.get("hdf5") is HDF5Source
