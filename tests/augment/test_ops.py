"""Each registered augmentation, tested statistically on batches with known content."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from astrobench.augment import functional as AF
from astrobench.augment import ops
from astrobench.photometry import extinction_coefficients
from astrobench.registry import AUGMENTATIONS

BANDS = ("u", "g", "r", "i", "z")


def make_batch(size: int = 8, side: int = 32, noise: float = 0.1, seed: int = 0, with_ivar: bool = True, pixel_scale: float = 0.396) -> dict:
    """Noise plus a compact asymmetric source per image, in flux units, with every schema field."""
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(side, dtype=torch.float32) - (side - 1) / 2
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    source = torch.exp(-((xx - 1.5) ** 2 / 8 + yy**2 / 3))  # off-centre and elongated: no symmetry
    image = 50.0 * source.expand(size, len(BANDS), side, side) + noise * torch.randn(size, len(BANDS), side, side, generator=generator)
    batch = {
        "image": image.contiguous(),
        "mask": torch.zeros(size, len(BANDS), side, side, dtype=torch.bool),
        "psf_fwhm": torch.full((size, len(BANDS)), 1.2),
        "ebv": torch.rand(size, generator=generator) * 0.1,
        "pixel_scale": torch.full((size,), pixel_scale),
        "bands": BANDS,
    }
    if with_ivar and noise > 0:
        batch["ivar"] = torch.full_like(image, 1.0 / noise**2)
    return batch


def binomial_tolerance(p: float, n: int, z: float = 4.0) -> float:
    return z * math.sqrt(max(p * (1 - p), 1e-12) / n)


# -- registry ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code, cls",
    [
        ("RR", ops.RandomRotation),
        ("JC", ops.JitterCrop),
        ("GN", ops.GaussianNoise),
        ("GR", ops.GalacticReddening),
        ("PS", ops.PSFSmoothing),
        ("FL", ops.RandomFlip),
        ("MK", ops.RandomMask),
    ],
)
def test_each_op_is_registered_under_its_code(code, cls):
    assert AUGMENTATIONS.get(code) is cls
    assert cls.code == code and cls.registered_name == code


def test_geometric_and_flux_flags():
    assert {code for code in ("RR", "JC", "FL", "GN", "GR", "PS", "MK") if AUGMENTATIONS.get(code).geometric} == {"RR", "JC", "FL"}
    assert {code for code in ("RR", "JC", "FL", "GN", "GR", "PS", "MK") if AUGMENTATIONS.get(code).needs_flux} == {"GR", "PS"}


def test_default_probabilities_are_the_documented_ones():
    expected = {"RR": 1.0, "JC": 1.0, "GN": 0.8, "GR": 0.8, "PS": 0.5, "FL": 0.5, "MK": 0.5}
    assert {code: AUGMENTATIONS.get(code)().p for code in expected} == expected


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="probability"):
        ops.GaussianNoise(p=1.5)
    with pytest.raises(ValueError, match="factor"):
        ops.GaussianNoise(min_factor=3.0, max_factor=1.0)
    with pytest.raises(ValueError, match="max_shift"):
        ops.JitterCrop(max_shift_pix=-1)
    with pytest.raises(ValueError, match="fraction"):
        ops.RandomMask(fraction=2.0)


def test_params_are_the_constructor_arguments():
    assert ops.GalacticReddening(p=0.3, ebv_max=0.2, survey="sdss").params() == {"p": 0.3, "ebv_max": 0.2, "survey": "sdss"}
    assert ops.JitterCrop(out_size=24).params() == {"p": 1.0, "max_shift_pix": 7.0, "out_size": 24}


# -- apply probability ---------------------------------------------------------------------------
def changed_images(code: str, p: float, size: int, seed: int) -> torch.Tensor:
    """(B,) bool: which images the op touched, detected from its output with settings that make
    every applied draw visible."""
    settings = {
        "RR": {},
        "JC": {},
        "FL": {},
        "GN": {"min_factor": 2.0, "max_factor": 2.0},
        "GR": {},
        "PS": {"fwhm_arcsec_min": 1.0, "fwhm_arcsec_max": 1.0},
        "MK": {"fraction": 1.0},
    }[code]
    op = AUGMENTATIONS.get(code)(p=p, **settings)
    batch = make_batch(size=size, side=12, seed=seed)
    out = op(batch, torch.Generator().manual_seed(seed))
    if code == "GR":
        return out["ebv"] != batch["ebv"]
    # geometric ops that skip an image still resample it through the identity (rounding ~1e-5)
    return ((out["image"] - batch["image"]).abs() > 1e-3).flatten(1).any(dim=1)


@pytest.mark.parametrize("code", ["RR", "JC", "FL", "GN", "GR", "PS", "MK"])
def test_probability_one_always_applies_and_zero_never(code):
    assert changed_images(code, 1.0, 300, seed=1).all(), f"{code} with p=1 skipped images (inverted keep-probability?)"
    assert not changed_images(code, 0.0, 300, seed=2).any(), f"{code} with p=0 touched images"


@pytest.mark.parametrize("code", ["RR", "JC", "FL", "GN", "GR", "PS", "MK"])
@pytest.mark.parametrize("p", [0.25, 0.8])
def test_empirical_apply_rate_matches_p(code, p):
    n = 2000
    rate = float(changed_images(code, p, n, seed=3).double().mean())
    assert rate == pytest.approx(p, abs=binomial_tolerance(p, n))


def test_ops_do_not_modify_their_input_batch():
    batch = make_batch()
    snapshot = {k: v.clone() for k, v in batch.items() if torch.is_tensor(v)}
    for code in ("RR", "JC", "FL", "GN", "GR", "PS", "MK"):
        AUGMENTATIONS.get(code)(p=1.0)(batch, torch.Generator().manual_seed(0))
        for key, value in snapshot.items():
            assert torch.equal(batch[key], value), f"{code} modified batch[{key!r}]"


@pytest.mark.parametrize("code", ["RR", "JC", "FL", "GN", "GR", "PS", "MK"])
def test_same_generator_seed_gives_the_same_view(code):
    batch = make_batch()
    op = AUGMENTATIONS.get(code)()
    first = op(batch, torch.Generator().manual_seed(7))
    second = op(batch, torch.Generator().manual_seed(7))
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["mask"], second["mask"])


# -- rotation and jitter -------------------------------------------------------------------------
def central_source_batch(size: int, side: int) -> dict:
    batch = make_batch(size=size, side=side, noise=0.0)
    offsets = torch.arange(side, dtype=torch.float32) - (side - 1) / 2
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    source = torch.exp(-((xx - 1.0) ** 2 + yy**2) / (2 * 2.0**2))
    batch["image"] = (source / source.sum() * 500.0).expand(size, len(BANDS), side, side).contiguous()
    return batch


@pytest.mark.parametrize("code", ["RR", "JC", "FL"])
def test_rotation_and_jitter_conserve_flux_away_from_the_borders(code):
    batch = central_source_batch(64, 64)
    out = AUGMENTATIONS.get(code)(p=1.0)(batch, torch.Generator().manual_seed(11))
    flux = out["image"].sum(dim=(2, 3))
    assert torch.allclose(flux, torch.full_like(flux, 500.0), rtol=2e-3)
    assert not out["mask"][:, :, 20:44, 20:44].any(), "the centre never reads from outside"
    assert out["image"].shape == batch["image"].shape


def test_rotation_draws_uniform_angles():
    # a single bright pixel 10 px right of the centre ends at angle theta from the x axis
    side = 41
    batch = make_batch(size=400, side=side, noise=0.0)
    batch["image"] = torch.zeros(400, 5, side, side)
    batch["image"][:, :, 20, 30] = 1.0
    out = ops.RandomRotation(p=1.0, flip=False)(batch, torch.Generator().manual_seed(12))
    weights = out["image"][:, 0]
    offsets = torch.arange(side, dtype=torch.float32) - 20
    x = (weights * offsets).sum(dim=(1, 2)) / weights.sum(dim=(1, 2))
    y = (weights * offsets.view(-1, 1)).sum(dim=(1, 2)) / weights.sum(dim=(1, 2))
    angles = torch.rad2deg(torch.atan2(y, x)) % 360
    assert stats.kstest(angles.numpy() / 360.0, "uniform").pvalue > 1e-3


def handedness(image: torch.Tensor) -> torch.Tensor:
    """Sign of the cross product (outer point) x (inner point) about the centre, per image: a
    rotation keeps it, a mirror flips it. Points within 6 px of the centre count as inner."""
    side = image.shape[-1]
    offsets = torch.arange(side, dtype=torch.float32) - (side - 1) / 2
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    inner = (xx**2 + yy**2) < 36

    def centroid(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = weights.sum(dim=(1, 2))
        return (weights * xx).sum(dim=(1, 2)) / total, (weights * yy).sum(dim=(1, 2)) / total

    ax, ay = centroid(image * ~inner)
    bx, by = centroid(image * inner)
    return torch.sign(ax * by - ay * bx)


def test_rotation_mirrors_half_of_the_images():
    side, size = 21, 2000
    batch = make_batch(size=size, side=side, noise=0.0)
    image = torch.zeros(side, side)
    image[10, 18] = 1.0  # outer point at (x, y) = (+8, 0)
    image[14, 10] = 1.0  # inner point at (0, +4): positive handedness
    batch["image"] = image.expand(size, 5, side, side).contiguous()
    assert bool((handedness(batch["image"][:, 0]) > 0).all())
    out = ops.RandomRotation(p=1.0, flip=True)(batch, torch.Generator().manual_seed(13))
    mirrored = handedness(out["image"][:, 0]) < 0
    assert float(mirrored.double().mean()) == pytest.approx(0.5, abs=binomial_tolerance(0.5, size))
    unmirrored = ops.RandomRotation(p=1.0, flip=False)(batch, torch.Generator().manual_seed(13))
    assert not bool((handedness(unmirrored["image"][:, 0]) < 0).any())


def test_jitter_shifts_are_uniform_within_the_limit():
    side = 41
    batch = central_source_batch(1000, side)
    out = ops.JitterCrop(p=1.0, max_shift_pix=7.0)(batch, torch.Generator().manual_seed(14))
    w = out["image"][:, 0]
    offsets = torch.arange(side, dtype=torch.float32) - 20
    x = (w * offsets).sum(dim=(1, 2)) / w.sum(dim=(1, 2))
    y = (w * offsets.view(-1, 1)).sum(dim=(1, 2)) / w.sum(dim=(1, 2))
    shift_x = 1.0 - x  # the source sits at x = +1 and moves by -shift
    shift_y = -y
    for shift in (shift_x, shift_y):
        assert float(shift.abs().max()) <= 7.0 + 1e-3
        assert stats.kstest((shift.numpy() + 7.0) / 14.0, "uniform").pvalue > 1e-3


def test_jitter_crop_produces_the_requested_size():
    batch = make_batch(size=4, side=40)
    out = ops.JitterCrop(out_size=26)(batch, torch.Generator().manual_seed(0))
    assert out["image"].shape == (4, 5, 26, 26) and out["mask"].shape == (4, 5, 26, 26)
    assert out["ivar"].shape == (4, 5, 26, 26)
    assert not out["mask"].any(), "a 26 px crop jittered by 7 px stays inside 40 px"


def test_rotation_masks_the_corners_and_carries_ivar():
    batch = make_batch(size=4, side=32)
    out = ops.RandomRotation(p=1.0)(batch, torch.Generator().manual_seed(0))
    corners = out["mask"][:, :, 0, 0]
    assert corners.float().mean() > 0.5  # most angles are not multiples of 90 degrees
    assert (out["image"][out["mask"]] == 0).all() and (out["ivar"][out["mask"]] == 0).all()


# -- reddening -----------------------------------------------------------------------------------
@pytest.mark.parametrize("survey, bands", [(None, BANDS), ("decals", ("g", "r", "z"))])
def test_reddening_shifts_each_band_by_r_times_delta_ebv(survey, bands):
    batch = make_batch(size=200)
    batch["image"] = batch["image"][:, : len(bands)].abs() + 1.0
    batch["ivar"] = batch["ivar"][:, : len(bands)]
    batch["mask"] = batch["mask"][:, : len(bands)]
    batch["bands"] = bands
    out = ops.GalacticReddening(p=1.0, survey=survey)(batch, torch.Generator().manual_seed(21))
    coeffs = torch.tensor(extinction_coefficients(bands, survey))
    delta = out["ebv"] - batch["ebv"]
    magnitude_shift = -2.5 * torch.log10(out["image"] / batch["image"])
    expected = (coeffs.view(1, -1) * delta.view(-1, 1)).view(200, -1, 1, 1).expand_as(magnitude_shift)
    assert torch.allclose(magnitude_shift, expected, atol=2e-5)
    # ivar follows the flux: the signal-to-noise ratio is unchanged
    assert torch.allclose(out["image"] * out["ivar"].sqrt(), batch["image"] * batch["ivar"].sqrt(), rtol=1e-5)


def test_reddening_draws_the_new_ebv_uniformly_up_to_the_maximum():
    batch = make_batch(size=2000, side=4)
    out = ops.GalacticReddening(p=1.0, ebv_max=0.5)(batch, torch.Generator().manual_seed(22))
    assert stats.kstest(out["ebv"].numpy() / 0.5, "uniform").pvalue > 1e-3


def test_sdss_coefficients_match_design():
    assert ops.GalacticReddening().coefficients(BANDS).tolist() == pytest.approx([4.239, 3.303, 2.285, 1.698, 1.263])


def test_unknown_ebv_is_taken_as_zero():
    batch = make_batch(size=4)
    batch["image"] = batch["image"].abs() + 1.0
    batch["ebv"] = torch.full((4,), float("nan"))
    out = ops.GalacticReddening(p=1.0)(batch, torch.Generator().manual_seed(23))
    shift = -2.5 * torch.log10(out["image"] / batch["image"])[:, :, 0, 0]
    assert torch.allclose(shift, out["ebv"].view(-1, 1) * torch.tensor([4.239, 3.303, 2.285, 1.698, 1.263]), atol=2e-5)


def test_reddening_without_a_coefficient_for_a_band_names_it():
    batch = make_batch(size=2)
    batch["bands"] = ("u", "g", "r", "i", "Y9")
    with pytest.raises(KeyError, match="Y9"):
        ops.GalacticReddening(p=1.0)(batch)


# -- PSF smoothing -------------------------------------------------------------------------------
@pytest.mark.parametrize("pixel_scale", [0.262, 0.396])
def test_psf_smoothing_widens_a_point_source_by_the_requested_arcsec_in_quadrature(pixel_scale):
    side, size = 61, 3
    fwhm_in_arcsec, extra_arcsec = 1.2, 1.0
    batch = make_batch(size=size, side=side, noise=0.0, pixel_scale=pixel_scale)
    sigma_pix = fwhm_in_arcsec / pixel_scale / AF.FWHM_PER_SIGMA
    offsets = torch.arange(side, dtype=torch.float64) - 30
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    star = torch.exp(-(xx**2 + yy**2) / (2 * sigma_pix**2))
    batch["image"] = (star / star.sum()).to(torch.float32).expand(size, 5, side, side).contiguous()
    out = ops.PSFSmoothing(p=1.0, fwhm_arcsec_min=extra_arcsec, fwhm_arcsec_max=extra_arcsec)(batch, torch.Generator().manual_seed(31))
    measured_arcsec = second_moment_fwhm_pix(out["image"]) * pixel_scale
    expected = math.hypot(fwhm_in_arcsec, extra_arcsec)
    assert torch.allclose(measured_arcsec, torch.full_like(measured_arcsec, expected), rtol=2e-3)
    assert torch.allclose(out["psf_fwhm"], torch.full((size, 5), expected), rtol=1e-5)
    # the pitfall (the arcsec FWHM taken as a sigma in pixels) lies well outside the tolerance
    wrong = math.hypot(fwhm_in_arcsec, extra_arcsec * AF.FWHM_PER_SIGMA * pixel_scale)
    assert abs(wrong / expected - 1) > 10 * 2e-3


def second_moment_fwhm_pix(image: torch.Tensor) -> torch.Tensor:
    image = image.to(torch.float64)
    side = image.shape[-1]
    offsets = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    total = image.sum(dim=(-2, -1))
    var_x = (image * offsets**2).sum(dim=(-2, -1)) / total
    var_y = (image * offsets.view(-1, 1) ** 2).sum(dim=(-2, -1)) / total
    return torch.sqrt((var_x + var_y) / 2) * AF.FWHM_PER_SIGMA


def test_psf_smoothing_draws_widths_in_the_range_and_records_them_per_image():
    side, size = 41, 300
    batch = make_batch(size=size, side=side, noise=0.0, pixel_scale=0.3)
    batch["image"] = torch.zeros(size, 5, side, side)
    batch["image"][:, :, 20, 20] = 1.0
    batch["psf_fwhm"] = torch.zeros(size, 5)  # a point source: the recorded FWHM is the blur alone
    out = ops.PSFSmoothing(p=1.0, fwhm_arcsec_min=0.2, fwhm_arcsec_max=1.5)(batch, torch.Generator().manual_seed(32))
    measured_arcsec = second_moment_fwhm_pix(out["image"][:, 0]) * 0.3
    assert torch.allclose(measured_arcsec, out["psf_fwhm"][:, 0].double(), atol=2e-3)
    assert stats.kstest((out["psf_fwhm"][:, 0].numpy() - 0.2) / 1.3, "uniform").pvalue > 1e-3


def test_psf_smoothing_updates_ivar_and_keeps_invalid_pixels_zero():
    batch = make_batch(size=4, side=32)
    batch["mask"][:, :, 5, 5] = True
    batch["image"] = batch["image"].masked_fill(batch["mask"], 0.0)
    out = ops.PSFSmoothing(p=1.0, fwhm_arcsec_min=1.0, fwhm_arcsec_max=1.0)(batch, torch.Generator().manual_seed(33))
    assert (out["image"][batch["mask"]] == 0).all() and torch.equal(out["mask"], batch["mask"])
    radius = AF.blur_radius(1.0 / 0.396 / AF.FWHM_PER_SIGMA)
    factor = float(AF.blur_variance_factor(torch.tensor([1.0 / 0.396]), radius)[0])
    assert torch.allclose(out["ivar"], batch["ivar"] / factor)


# -- noise ---------------------------------------------------------------------------------------
def pure_noise_batch(size: int, sigma: torch.Tensor, side: int = 64, seed: int = 0, with_ivar: bool = True) -> dict:
    """Zero-signal images whose noise level per (image, band) is ``sigma`` (B, C)."""
    batch = make_batch(size=size, side=side, seed=seed, with_ivar=False)
    generator = torch.Generator().manual_seed(seed + 1000)
    batch["image"] = torch.randn(size, 5, side, side, generator=generator) * sigma.view(size, 5, 1, 1)
    if with_ivar:
        batch["ivar"] = (1.0 / sigma**2).view(size, 5, 1, 1).expand(size, 5, side, side).contiguous()
    return batch


@pytest.mark.parametrize("with_ivar", [True, False])
def test_noise_reaches_the_requested_total_level(with_ivar):
    size, side = 64, 64
    sigma = torch.tensor([0.5, 1.0, 2.0, 1.0, 0.25]).expand(size, 5)
    batch = pure_noise_batch(size, sigma, side, with_ivar=with_ivar)
    op = ops.GaussianNoise(p=1.0, min_factor=2.0, max_factor=2.0)
    out = op(batch, torch.Generator().manual_seed(41))
    added = (out["image"] - batch["image"]).transpose(0, 1).reshape(5, -1).std(dim=1)
    expected = math.sqrt(3.0) * sigma[0]  # total 2 sigma = sqrt(sigma^2 + added^2)
    n = size * side * side
    # with ivar the level is exact: only the sample std's error sigma / sqrt(2 n); without, the MAD of
    # 1024 pixels per image (3.7% each) averages over 64 images to ~0.5%
    tolerance = 5 / math.sqrt(2 * n) if with_ivar else 0.03
    assert torch.allclose(added, expected, rtol=tolerance)
    if with_ivar:
        assert torch.allclose(out["ivar"], batch["ivar"] / 4.0, rtol=1e-5)


def test_noise_factor_is_uniform_between_its_limits():
    size = 256
    sigma = torch.full((size, 5), 0.3)
    batch = pure_noise_batch(size, sigma)
    out = ops.GaussianNoise(p=1.0, min_factor=1.0, max_factor=3.0)(batch, torch.Generator().manual_seed(42))
    added = (out["image"] - batch["image"]).flatten(2).std(dim=2)  # (B, C), 1.1% error each
    factor = torch.sqrt(1.0 + (added / 0.3) ** 2)
    assert stats.kstest((factor.flatten().numpy() - 1.0) / 2.0, "uniform").pvalue > 1e-3
    # the recorded ivar is the measured total variance
    total = 1.0 / out["ivar"][:, :, 0, 0].sqrt()
    assert torch.allclose(total, out["image"].flatten(2).std(dim=2), rtol=0.05)


def test_noise_reference_comes_from_the_batch_distribution():
    # two depths in one batch; with factor 1 a shallow image never gains noise, a deep one gains the
    # difference in quadrature when it draws a shallow reference (half the time)
    size = 400
    depth = torch.tensor([0.5, 2.0]).repeat(size // 2)
    sigma = depth.view(-1, 1).expand(size, 5)
    batch = pure_noise_batch(size, sigma, side=32)
    out = ops.GaussianNoise(p=1.0, min_factor=1.0, max_factor=1.0)(batch, torch.Generator().manual_seed(43))
    added = (out["image"] - batch["image"]).flatten(2).std(dim=2)
    shallow, deep = added[depth == 2.0], added[depth == 0.5]
    assert (shallow == 0).all()
    gained = deep[:, 0] > 0
    assert torch.all(deep[gained] / math.sqrt(2.0**2 - 0.5**2) > 0.9)
    assert (deep[gained].std(dim=1) / deep[gained].mean(dim=1) < 0.1).all(), "one reference image for all bands"
    assert float(gained.double().mean()) == pytest.approx(0.5, abs=binomial_tolerance(0.5, size // 2))


def test_noise_from_own_level_only():
    size, side = 100, 32
    depth = torch.tensor([0.5, 2.0]).repeat(size // 2)
    batch = pure_noise_batch(size, depth.view(-1, 1).expand(size, 5), side=side)
    out = ops.GaussianNoise(p=1.0, min_factor=2.0, max_factor=2.0, reference_from_batch=False)(batch, torch.Generator().manual_seed(44))
    added = out["image"] - batch["image"]
    for level in (0.5, 2.0):
        pooled = added[depth == level].transpose(0, 1).reshape(5, -1)
        n = pooled.shape[1]
        assert torch.allclose(pooled.std(dim=1), torch.full((5,), math.sqrt(3.0) * level), rtol=5 / math.sqrt(2 * n))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the CPU kernel; the torch path
def test_noise_without_its_ivar_update_draws_the_same_image(dtype):
    # a pipeline that drops ivar after GN says so with keep_ivar=False: GN returns no ivar and the
    # very same image (the update never changes the draws)
    batch = pure_noise_batch(8, torch.full((8, 5), 0.4), side=16)
    batch["image"], batch["ivar"] = batch["image"].to(dtype), batch["ivar"].to(dtype)
    op = ops.GaussianNoise(p=0.8)
    updated = op(batch, torch.Generator().manual_seed(46))
    skipped = op({**batch, "keep_ivar": False}, torch.Generator().manual_seed(46))
    assert "ivar" in updated and "ivar" not in skipped
    assert torch.equal(updated["image"], skipped["image"]) and not torch.equal(updated["image"], batch["image"])

def test_noise_keeps_invalid_pixels_zero():
    batch = pure_noise_batch(4, torch.full((4, 5), 1.0), side=16)
    batch["mask"][:, :, :4] = True
    batch["image"] = batch["image"].masked_fill(batch["mask"], 0.0)
    out = ops.GaussianNoise(p=1.0, min_factor=3.0, max_factor=3.0)(batch, torch.Generator().manual_seed(45))
    assert (out["image"][batch["mask"]] == 0).all()


# -- masking -------------------------------------------------------------------------------------
def test_random_mask_hides_the_requested_fraction_in_all_bands():
    batch = make_batch(size=400, side=32)
    out = ops.RandomMask(p=1.0, fraction=0.2, patch_size=8)(batch, torch.Generator().manual_seed(51))
    hidden = out["mask"]
    assert torch.equal(hidden, hidden[:, :1].expand_as(hidden)), "patches cover every band"
    n = 400 * 16
    assert float(hidden.double().mean()) == pytest.approx(0.2, abs=binomial_tolerance(0.2, n))
    assert (out["image"][hidden] == 0).all() and (out["ivar"][hidden] == 0).all()
    assert torch.equal(out["image"][~hidden], batch["image"][~hidden])


def test_random_mask_keeps_existing_invalid_pixels():
    batch = make_batch(size=2, side=16)
    batch["mask"][:, 0, 0, 0] = True
    out = ops.RandomMask(p=1.0, fraction=0.0)(batch)
    assert torch.equal(out["mask"], batch["mask"])
