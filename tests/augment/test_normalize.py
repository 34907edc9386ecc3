"""Normalizer: per-band asinh with MAD scale, masked pixels ignored and zeroed, band check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrobench.augment.normalize import Normalizer
from astrobench.datasets.schema import DataError, SurveyData


def _data(image, mask, bands=("g", "r"), is_flux=True):
    n, c = image.shape[:2]
    return SurveyData(
        object_id=np.array([f"o{i}" for i in range(n)]), image=image.astype(np.float32), mask=mask, bands=bands,
        pixel_scale=np.full(n, 0.262, np.float32), psf_fwhm=np.full((n, c), np.nan, np.float32),
        ebv=np.full(n, np.nan, np.float32), ra=np.full(n, np.nan), dec=np.full(n, np.nan), image_is_flux=is_flux,
    )  # fmt: skip


def test_scale_is_the_per_band_noise_and_ignores_masked_pixels():
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(0, 0.5, (200, 32, 32)), rng.normal(0, 3.0, (200, 32, 32))], axis=1)
    mask = np.zeros(image.shape, bool)
    mask[:, :, :4] = True
    image[mask] = 1e6  # garbage under the mask must not move the scale
    norm = Normalizer.fit(_data(image, mask), max_images=200)
    assert norm.bands == ("g", "r")
    assert norm.scales[0] == pytest.approx(0.5, rel=0.02) and norm.scales[1] == pytest.approx(3.0, rel=0.02)


def test_transform_values_and_mask_zeroing():
    norm = Normalizer(("g", "r"), (2.0, 0.5))
    image = torch.tensor([[[[2.0, -4.0]], [[0.5, 10.0]]]])
    mask = torch.tensor([[[[False, True]], [[False, False]]]])
    out = norm(image, mask)
    expected = torch.tensor([[[[np.arcsinh(1.0), 0.0]], [[np.arcsinh(1.0), np.arcsinh(20.0)]]]], dtype=torch.float32)
    torch.testing.assert_close(out, expected)


def test_rgb_is_not_rescaled_and_round_trip():
    image = np.random.default_rng(1).uniform(0, 1, (4, 3, 8, 8))
    norm = Normalizer.fit(_data(image, np.zeros(image.shape, bool), bands=("R", "G", "B"), is_flux=False))
    assert norm.scales == (1.0, 1.0, 1.0) and not norm.is_flux
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(norm(x), x)
    assert Normalizer.from_dict(norm.to_dict()) == norm


def test_band_check_and_empty_band():
    norm = Normalizer(("u", "g", "r", "i", "z"), (1.0,) * 5)
    norm.check_bands(["u", "g", "r", "i", "z"], "here")
    with pytest.raises(DataError, match=r"bands \['g', 'r', 'z'\] differ .* \['u', 'g', 'r', 'i', 'z'\]"):
        norm.check_bands(["g", "r", "z"], "decals")
    image = np.ones((2, 2, 4, 4))
    mask = np.zeros(image.shape, bool)
    mask[:, 1] = True
    with pytest.raises(DataError, match=r"band 'r' has no valid pixel"):
        Normalizer.fit(_data(image, mask))


def test_fast_asinh_matches_torch_asinh_over_the_float32_range():
    import torch

    from astrobench.augment.normalize import fast_asinh

    x = torch.cat([torch.linspace(-5, 5, 10001), torch.logspace(-8, 38, 200), -torch.logspace(-8, 38, 200),
                   torch.tensor([0.0, -0.0, 3.4e38])])
    expected = torch.asinh(x.double())
    got = fast_asinh(x).double()
    assert torch.isfinite(got).all()
    assert ((got - expected).abs() <= 2e-6 + 2.4e-7 * expected.abs()).all()  # float32 rounding
    assert torch.equal(torch.signbit(fast_asinh(torch.tensor([0.0, -0.0]))), torch.tensor([False, True]))


def test_fast_asinh_equals_torch_asinh_on_zeros_negatives_large_values_and_in_place():
    from astrobench.augment.normalize import fast_asinh

    x = torch.cat([torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-8, -3.0, 3.0]), torch.randn(50_000) * 100,
                   torch.logspace(-8, 38, 100), -torch.logspace(-8, 38, 100)])
    expected = torch.asinh(x)
    torch.testing.assert_close(fast_asinh(x), expected, atol=1e-6, rtol=2.4e-7)  # float32 rounding
    y = x.clone()
    assert fast_asinh(y, out=y) is y
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=2.4e-7)
    assert torch.equal(fast_asinh(torch.tensor([float("inf"), -float("inf")])), torch.tensor([float("inf"), -float("inf")]))


def test_transform_equals_asinh_of_scaled_flux_and_zeroes_masked_pixels_even_nan():
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(3, 2, 8, 8, generator=generator) * 50
    mask = torch.rand(3, 2, 8, 8, generator=generator) < 0.2
    image[mask] = float("nan")  # garbage under the mask
    norm = Normalizer(("g", "r"), (2.0, 0.5))
    out = norm(image, mask)
    expected = torch.asinh(image / torch.tensor([2.0, 0.5]).view(1, 2, 1, 1)).masked_fill(mask, 0.0)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=2.4e-7)
    assert (out[mask] == 0).all()
    clean = image.nan_to_num(0.0)
    torch.testing.assert_close(norm(clean), torch.asinh(clean / torch.tensor([2.0, 0.5]).view(1, 2, 1, 1)), atol=1e-6, rtol=2.4e-7)


def test_invert_returns_the_flux_of_valid_pixels_and_zero_under_the_mask():
    norm = Normalizer(("g", "r"), (0.5, 3.0))
    flux = torch.tensor([[[[-2.0, 0.0], [0.7, 40.0]], [[1e3, -5.0], [0.0, 3.0]]]])
    mask = torch.zeros_like(flux, dtype=torch.bool)
    mask[0, 1, 0, 0] = True
    back = norm.invert(norm(flux, mask))
    expected = flux.clone()
    expected[0, 1, 0, 0] = 0.0
    torch.testing.assert_close(back, expected, rtol=1e-5, atol=1e-6)
    rgb = Normalizer(("r", "g", "b"), (2.0, 2.0, 2.0), is_flux=False)
    assert torch.equal(rgb.invert(torch.full((1, 3, 1, 1), 0.25)), torch.full((1, 3, 1, 1), 0.5))
