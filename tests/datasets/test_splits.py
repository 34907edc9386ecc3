"""split_indices: deterministic by object id, and grouped by HEALPix pixel on request."""

from __future__ import annotations

import numpy as np
import pytest

from astrobench.datasets.schema import SurveyData
from astrobench.datasets.splits import healpix_nested, split_indices


def _data(n, ra=None, dec=None, prefix="obj"):
    c, s = 1, 2
    return SurveyData(
        object_id=np.array([f"{prefix}{i}" for i in range(n)]),
        image=np.zeros((n, c, s, s), np.float32),
        mask=np.zeros((n, c, s, s), bool),
        bands=("r",),
        pixel_scale=np.full(n, 0.2, np.float32),
        psf_fwhm=np.full((n, c), np.nan, np.float32),
        ebv=np.full(n, np.nan, np.float32),
        ra=np.full(n, np.nan) if ra is None else np.asarray(ra, np.float64),
        dec=np.full(n, np.nan) if dec is None else np.asarray(dec, np.float64),
    )


def test_deterministic_partition_independent_of_order():
    data = _data(2000)
    splits = split_indices(data)
    together = np.sort(np.concatenate(list(splits.values())))
    np.testing.assert_array_equal(together, np.arange(2000))
    assert len(splits["train"]) == pytest.approx(1400, abs=80) and len(splits["test"]) == pytest.approx(400, abs=60)
    order = np.random.default_rng(0).permutation(2000)
    shuffled = split_indices(data.subset(order))
    for name in splits:
        assert set(data.object_id[splits[name]]) == set(data.object_id[order][shuffled[name]])
    other = split_indices(data, salt="another")
    assert not np.array_equal(other["train"], splits["train"])
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(data, {"train": 0.5, "test": 0.2})


def test_healpix_grouping_keeps_a_pixel_in_one_split():
    rng = np.random.default_rng(1)
    # 60 tight clusters of 20 objects (within ~1 arcsec), spread over the sky
    centres_ra = rng.uniform(0, 360, 60)
    centres_dec = np.degrees(np.arcsin(rng.uniform(-0.9, 0.9, 60)))
    ra = np.repeat(centres_ra, 20) + rng.normal(0, 1e-4, 1200)
    dec = np.repeat(centres_dec, 20) + rng.normal(0, 1e-4, 1200)
    data = _data(1200, ra, dec)
    nside = 64
    pixels = healpix_nested(ra, dec, nside)
    splits = split_indices(data, group_by_healpix_nside=nside)
    which = np.empty(1200, dtype=object)
    for name, index in splits.items():
        which[index] = name
    for pixel in np.unique(pixels):
        assert len(set(which[pixels == pixel])) == 1
    # without grouping, clusters straddle splits
    ungrouped = split_indices(data)
    which_u = np.empty(1200, dtype=object)
    for name, index in ungrouped.items():
        which_u[index] = name
    assert sum(len(set(which_u[pixels == p])) > 1 for p in np.unique(pixels)) > 30


def test_unknown_positions_fall_back_to_ids():
    ra = np.full(300, np.nan)
    ra[:10] = 30.0
    data = _data(300, ra, np.zeros(300))
    grouped = split_indices(data, group_by_healpix_nside=16)
    plain = split_indices(data)
    for name in grouped:  # objects without a position go where their id sends them
        np.testing.assert_array_equal(grouped[name][grouped[name] >= 10], plain[name][plain[name] >= 10])
    assert sum(len(v) for v in grouped.values()) == 300
    assert sum(bool(set(range(10)) & set(v.tolist())) for v in grouped.values()) == 1  # the 10 placed share one


def test_healpix_nested_known_pixels():
    # nside 1: the 12 base pixels; equator at RA 0 is face 4, north pole face 0..3, south 8..11
    np.testing.assert_array_equal(healpix_nested(np.array([45.0, 0.0, 10.0, 135.0]), np.array([90.0, -90.0, 20.0, 60.0]), 1), [0, 8, 4, 1])
    assert healpix_nested(np.array([10.0]), np.array([20.0]), 2)[0] // 4 == 4  # nested: parent pixel kept
    rng = np.random.default_rng(2)
    ra = rng.uniform(0, 360, 120000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 120000)))
    counts = np.bincount(healpix_nested(ra, dec, 4), minlength=192)
    assert counts.shape == (192,) and counts.min() > 0.8 * 625 and counts.max() < 1.2 * 625  # equal area
    # nesting: the pixel at nside 2n lies inside its parent at nside n
    np.testing.assert_array_equal(healpix_nested(ra, dec, 32) // 4, healpix_nested(ra, dec, 16))
    with pytest.raises(ValueError, match="power of two"):
        healpix_nested(ra, dec, 12)
