"""NpzSource on the real HSC blend scene: bit-mask polarity, variance -> ivar, bands, PSF width."""

from __future__ import annotations

import numpy as np
import pytest

from astrobench.datasets.npz import HSC_DEFECT_BITS, NpzSource
from astrobench.datasets.schema import DataError
from astrobench.registry import DATASETS


@pytest.fixture(scope="module")
def scene(test_data):
    return test_data / "hsc_blend" / "hsc_cosmos_35.npz"


def test_hsc_scene_with_every_set_bit_flagged(scene):
    data = NpzSource(str(scene), pixel_scale=0.168).load()
    raw = np.load(scene)
    assert list(data.object_id) == ["hsc_cosmos_35"]
    assert data.bands == ("g", "r", "i", "z", "y")
    assert data.image.shape == (1, 5, 58, 48)
    # polarity: a set bit means flagged, so mask True exactly where the bit mask is non-zero
    np.testing.assert_array_equal(data.mask[0], raw["mask"] != 0)
    assert data.mask.mean() == pytest.approx(0.87248563, abs=1e-7)
    np.testing.assert_allclose(data.mask[0].mean(axis=(1, 2)), [0.97737069, 0.7183908, 0.92277299, 0.77083333, 0.97306034], atol=1e-7)
    clean = raw["mask"][0] == 0
    np.testing.assert_allclose(data.image[0, 0][clean], raw["images"][0][clean])
    np.testing.assert_allclose(data.ivar[0, 0][clean], 1.0 / raw["variance"][0][clean], rtol=1e-6)
    assert (data.image[data.mask] == 0).all() and (data.ivar[data.mask] == 0).all()
    np.testing.assert_allclose(data.psf_fwhm[0], [0.721, 0.491, 0.555, 0.499, 0.609], atol=0.01)


def test_hsc_defect_planes_only(scene):
    data = NpzSource(str(scene), pixel_scale=0.168, mask_bits=list(HSC_DEFECT_BITS)).load()
    raw = np.load(scene)["mask"]
    np.testing.assert_array_equal(data.mask[0], (raw & 0b110011111) != 0)
    # only INTRP|CR (bits 2, 3) are set among the defect planes here: 4.1% of pixels
    assert data.mask.mean() == pytest.approx(0.04116379, abs=1e-7)
    # DETECTED (bit 5) covers the sources, so it must not count as a defect
    assert ((raw & 32) != 0).mean() == pytest.approx(0.79382184, abs=1e-7)


def test_mask_conventions_and_errors(tmp_path):
    image = np.ones((2, 2, 4, 4), np.float32)
    good = np.ones((2, 2, 4, 4), bool)
    good[0, 1, 2, 3] = False
    np.savez(tmp_path / "stack.npz", images=image, mask=good, filters=np.array(["g", "r"]))
    data = NpzSource(str(tmp_path / "stack.npz"), mask_convention="valid", pixel_scale=0.2).load()
    assert list(data.object_id) == ["stack_0", "stack_1"]
    assert data.mask.sum() == 1 and data.mask[0, 1, 2, 3]
    with pytest.raises(DataError, match="needs an integer mask"):
        NpzSource(str(tmp_path / "stack.npz")).load()
    with pytest.raises(DataError, match=r"3 bands .* 2 image planes"):
        NpzSource(str(tmp_path / "stack.npz"), mask_convention="valid", bands=["g", "r", "i"]).load()
    with pytest.raises(DataError, match="mask_convention must be"):
        NpzSource(str(tmp_path / "stack.npz"), mask_convention="guess")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"broken\.npz: not a readable"):
        NpzSource(str(tmp_path / "broken.npz")).load()
    assert DATASETS.get("npz") is NpzSource
