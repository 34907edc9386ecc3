"""ImageFolderSource on the real Galaxy Zoo ring sample and on small PNG folders in tmp_path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from astrobench.datasets.images import ImageFolderSource
from astrobench.datasets.schema import DataError
from astrobench.registry import DATASETS

FRACTIONS = ["smooth-or-featured_featured-or-disk_fraction", "disk-edge-on_no_fraction", "has-spiral-arms_no_fraction"]


@pytest.fixture(scope="module")
def rings(real_data):
    return ImageFolderSource(str(real_data / "gz_rings"), size=32).load()


def test_gz_rings_resampled(rings, real_data):
    data = rings
    assert len(data) == 100 and data.image.shape == (100, 3, 32, 32)
    assert data.bands == ("R", "G", "B") and not data.image_is_flux
    assert not data.mask.any()
    assert 0.0 <= data.image.min() and data.image.max() <= 1.0
    assert np.allclose(data.pixel_scale, 0.262 * 424 / 32)
    catalog = pd.read_csv(real_data / "gz_rings" / "catalog.csv")
    assert list(data.object_id) == catalog["iauname"].tolist()
    # area averaging: an output pixel is the mean of the 13.25 x 13.25 input pixels it covers
    first = np.asarray(Image.open(real_data / "gz_rings" / catalog["file"][0]), dtype=np.float64) / 255.0
    assert data.image[0].mean(axis=(1, 2)) == pytest.approx(first.mean(axis=(0, 1)), rel=1e-5)


def test_gz_rings_labels(rings):
    ring = rings.labels["ring"]
    assert ring.dtype == np.int64 and set(np.unique(ring)) == {0, 1} and ring.sum() == 49
    for name in FRACTIONS:
        values = rings.labels[name]
        assert values.dtype == np.float64 and 0.5 <= values.min() and values.max() <= 0.99
    assert rings.labels[FRACTIONS[0]].min() == pytest.approx(0.6000675431272259)
    assert set(rings.labels) == {"ring", *FRACTIONS}
    # positions from the IAU names: J143738.75+062639.5
    assert rings.ra[0] == pytest.approx(15 * (14 + 37 / 60 + 38.75 / 3600))
    assert rings.dec[0] == pytest.approx(6 + 26 / 60 + 39.5 / 3600)
    assert np.isfinite(rings.ra).all()


def test_committed_ring_subset(test_data):
    """tests/data/gz_rings_16: 8 ring and 8 non-ring galaxies of the shared sample, its catalogue rows."""
    folder = test_data / "gz_rings_16"
    data = ImageFolderSource(str(folder), size=32).load()
    catalog = pd.read_csv(folder / "catalog.csv")
    assert data.image.shape == (16, 3, 32, 32) and list(data.object_id) == catalog["iauname"].tolist()
    assert data.labels["ring"].sum() == 8 and set(data.labels) == {"ring", *FRACTIONS}
    assert np.allclose(data.pixel_scale, 0.262 * 424 / 32) and not data.mask.any()
    first = np.asarray(Image.open(folder / catalog["file"][0]), dtype=np.float64) / 255.0
    assert data.image[0].mean(axis=(1, 2)) == pytest.approx(first.mean(axis=(0, 1)), rel=1e-5)


def _folder(tmp_path, rows, size=8, mode="RGB"):
    (tmp_path / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for row in rows:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        pixels = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
        if mode == "RGBA":
            pixels[..., 3] = 255
            pixels[0, 0, 3] = 0
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(tmp_path / row["file"])
    pd.DataFrame(rows).to_csv(tmp_path / "catalog.csv", index=False)


def test_full_size_values_alpha_and_grayscale(tmp_path):
    _folder(tmp_path, [{"object_id": "a", "file": "images/a.png", "ring": 1}], mode="RGBA")
    data = ImageFolderSource(str(tmp_path)).load()
    expected = np.asarray(Image.open(tmp_path / "images/a.png"), dtype=np.float32)[..., :3] / 255.0
    assert data.mask[0, :, 0, 0].all() and data.mask.sum() == 3  # alpha 0 -> invalid in every band
    np.testing.assert_allclose(data.image[0, :, 1, 1], expected[1, 1])
    with pytest.raises(DataError, match=r"a\.png: image has 3 channel\(s\) \(RGBA\) but bands=\['L'\]"):
        ImageFolderSource(str(tmp_path), bands=("L",)).load()


def test_bad_inputs(tmp_path):
    rows = [{"object_id": "a", "file": "images/a.png", "gz_bar_fraction": 0.2},
            {"object_id": "b", "file": "images/b.png", "gz_bar_fraction": 1.7}]  # fmt: skip
    _folder(tmp_path, rows)
    with pytest.raises(DataError, match=r"'gz_bar_fraction' has value 1\.7 outside its range"):
        ImageFolderSource(str(tmp_path)).load()
    (tmp_path / "images" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"b\.png: not a readable image"):
        ImageFolderSource(str(tmp_path), label_columns=[]).load()
    (tmp_path / "catalog.csv").write_text("object_id,file\n")
    with pytest.raises(DataError, match=r"catalog\.csv is empty"):
        ImageFolderSource(str(tmp_path)).load()
    (tmp_path / "catalog.csv").write_text("object_id,file\na,images/zzz.png\n")
    with pytest.raises(DataError, match=r"row 0: image file .*zzz\.png does not exist"):
        ImageFolderSource(str(tmp_path)).load()


def test_different_sizes_need_size(tmp_path):
    _folder(tmp_path, [{"object_id": "a", "file": "images/a.png"}], size=8)
    _folder(tmp_path, [{"object_id": "b", "file": "images/b.png"}], size=12)
    pd.DataFrame({"object_id": ["a", "b"], "file": ["images/a.png", "images/b.png"]}).to_csv(tmp_path / "catalog.csv", index=False)
    with pytest.raises(DataError, match=r"b\.png is \(12, 12\) .*set size="):
        ImageFolderSource(str(tmp_path)).load()
    data = ImageFolderSource(str(tmp_path), size=4).load()
    np.testing.assert_allclose(data.pixel_scale, [0.262 * 2, 0.262 * 3])
    assert DATASETS.get("images") is ImageFolderSource


def test_area_resample_exact_and_masked():
    from astrobench.datasets._source_utils import area_resample

    x = np.random.default_rng(4).uniform(size=(1, 5, 5))
    out, invalid = area_resample(x, np.zeros(x.shape, bool), 3)  # 5 -> 3: each output covers 5/3 px
    fine = np.repeat(np.repeat(x[0], 3, 0), 3, 1)  # 15 x 15 sub-pixels, 5 x 5 per output pixel
    np.testing.assert_allclose(out[0], fine.reshape(3, 5, 3, 5).mean(axis=(1, 3)), rtol=1e-6)
    assert not invalid.any()
    mask = np.zeros((1, 4, 4), bool)
    mask[0, :2, :2] = True  # the top-left output pixel of a 4 -> 2 resample is fully invalid
    mask[0, 2, 2] = True  # a quarter of the bottom-right one: still valid, mean of the rest
    values = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    out, invalid = area_resample(values, mask, 2)
    np.testing.assert_array_equal(invalid[0], [[True, False], [False, False]])
    assert out[0, 0, 0] == 0 and out[0, 1, 1] == pytest.approx((11 + 14 + 15) / 3)
