"""The pure batched functions: geometry, blur kernels, reddening, noise levels, patch masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from astrobench.augment import functional as AF


def gaussian_source(size: int, sigma_pix: float, flux: float = 1000.0, centre: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """(size, size) circular Gaussian of total ``flux`` at ``centre`` = (dx, dy) px from the image centre."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(offsets - centre[1], offsets - centre[0], indexing="ij")
    profile = torch.exp(-(xx**2 + yy**2) / (2 * sigma_pix**2))
    return (flux * profile / profile.sum()).to(torch.float32)


def second_moment_sigma(image: torch.Tensor) -> torch.Tensor:
    """sqrt of the mean of the x and y second central moments, per image: (..., H, W) -> (...)."""
    image = image.to(torch.float64)
    size_y, size_x = image.shape[-2:]
    ys = torch.arange(size_y, dtype=torch.float64).view(-1, 1)
    xs = torch.arange(size_x, dtype=torch.float64).view(1, -1)
    total = image.sum(dim=(-2, -1), keepdim=True)
    cx = (image * xs).sum(dim=(-2, -1), keepdim=True) / total
    cy = (image * ys).sum(dim=(-2, -1), keepdim=True) / total
    var_x = (image * (xs - cx) ** 2).sum(dim=(-2, -1)) / total.squeeze(-1).squeeze(-1)
    var_y = (image * (ys - cy) ** 2).sum(dim=(-2, -1)) / total.squeeze(-1).squeeze(-1)
    return torch.sqrt((var_x + var_y) / 2)


# -- geometry ------------------------------------------------------------------------------------
def test_identity_matrix_returns_the_input_up_to_coordinate_rounding():
    image = torch.randn(3, 5, 16, 16)
    out, mask, ivar = AF.affine_resample(image, torch.zeros(3), torch.zeros(3, 2), torch.zeros(3, dtype=torch.bool), 16)
    assert torch.allclose(out, image, atol=1e-4)
    assert not mask.any()
    assert ivar is None


def test_quarter_turns_and_mirror_permute_pixels_exactly():
    image = torch.randn(3, 2, 12, 12)
    angle = torch.tensor([90.0, 180.0, 0.0])
    flip = torch.tensor([False, False, True])
    out, mask, _ = AF.affine_resample(image, angle, torch.zeros(3, 2), flip, 12)
    # counter-clockwise in (column, row) coordinates moves (x, y) to (-y, x): torch.rot90 with k=-1
    assert torch.allclose(out[0], torch.rot90(image[0], k=-1, dims=(-2, -1)), atol=1e-4)
    assert torch.allclose(out[1], torch.rot90(image[1], k=2, dims=(-2, -1)), atol=1e-4)
    assert torch.allclose(out[2], image[2].flip(-1), atol=1e-4)
    assert not mask.any(), "pixel-aligned maps must not flag neighbours with a rounding-level weight"


def test_rotation_moves_an_offset_point_counter_clockwise():
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 15] = 1.0  # x = +5, y = 0 from the centre (10, 10)
    out, _, _ = AF.affine_resample(image, torch.tensor([90.0]), torch.zeros(1, 2), torch.zeros(1, dtype=torch.bool), 21)
    row, col = divmod(int(out[0, 0].argmax()), 21)
    assert (row, col) == (15, 10)  # (x, y) = (0, +5)


def test_integer_shift_reads_shifted_pixels_and_masks_what_comes_from_outside():
    image = torch.randn(1, 2, 10, 10)
    out, mask, _ = AF.affine_resample(image, torch.zeros(1), torch.tensor([[3.0, -2.0]]), torch.zeros(1, dtype=torch.bool), 10)
    # output (r, c) reads input (r - 2, c + 3)
    assert torch.allclose(out[0, :, 2:, :7], image[0, :, :8, 3:], atol=1e-5)
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[:2, :] = True
    expected[:, 7:] = True
    assert torch.equal(mask[0, 0], expected) and torch.equal(mask[0, 1], expected)
    assert (out[0][:, expected] == 0).all()


def test_half_pixel_shift_averages_neighbours_and_masks_any_invalid_footprint():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 1, 2] = True
    image = image.masked_fill(mask, 0.0)
    out, out_mask, _ = AF.resample(image, AF.translation_matrix(torch.tensor([[0.5, 0.0]])), (4, 4), mask=mask)
    # output column c reads between input columns c and c + 1
    assert out[0, 0, 0, 0] == pytest.approx((image[0, 0, 0, 0] + image[0, 0, 0, 1]) / 2)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:, 3] = True  # reads column 4, outside
    expected[1, 1] = expected[1, 2] = True  # footprints touching the invalid pixel (1, 2)
    assert torch.equal(out_mask[0, 0], expected)
    assert (out[0, 0][expected] == 0).all()


def test_masks_are_resampled_per_band():
    image = torch.ones(1, 3, 8, 8)
    mask = torch.zeros(1, 3, 8, 8, dtype=torch.bool)
    mask[0, 1, 4, 4] = True
    image = image.masked_fill(mask, 0.0)
    out, out_mask, _ = AF.affine_resample(image, torch.tensor([180.0]), torch.zeros(1, 2), torch.zeros(1, dtype=torch.bool), 8, mask=mask)
    assert out_mask[0, 1, 3, 3] and out_mask[0, 1].sum() == 1  # 180 degrees: (4, 4) -> (3, 3)
    assert not out_mask[0, 0].any() and not out_mask[0, 2].any()


def test_corners_of_a_rotated_image_are_zero_and_invalid():
    image = torch.ones(1, 1, 32, 32)
    ivar = torch.full((1, 1, 32, 32), 4.0)
    out, mask, out_ivar = AF.affine_resample(image, torch.tensor([45.0]), torch.zeros(1, 2), torch.zeros(1, dtype=torch.bool), 32, ivar=ivar)
    assert mask[0, 0, 0, 0] and mask[0, 0, -1, -1] and not mask[0, 0, 16, 16]
    assert out[0, 0, 0, 0] == 0 and out_ivar[0, 0, 0, 0] == 0
    assert torch.allclose(out[0, 0][~mask[0, 0]], torch.ones(()), atol=1e-5)
    assert torch.allclose(out_ivar[0, 0][~mask[0, 0]], torch.full((), 4.0), atol=1e-4)
    # a disc of radius 16 survives any rotation; the corners outside it are lost
    assert 0.15 < mask.float().mean() < 0.25


@pytest.mark.parametrize("out_size", [64, 48])
def test_rotation_and_jitter_conserve_the_flux_of_a_compact_central_source(out_size):
    generator = torch.Generator().manual_seed(1)
    count = 32
    image = gaussian_source(64, 2.0).expand(count, 1, 64, 64).contiguous()
    angle = torch.rand(count, generator=generator) * 360
    shift = torch.rand(count, 2, generator=generator) * 14 - 7
    flip = torch.rand(count, generator=generator) < 0.5
    out, mask, _ = AF.affine_resample(image, angle, shift, flip, out_size)
    flux = out.sum(dim=(1, 2, 3))
    assert torch.allclose(flux, torch.full_like(flux, 1000.0), rtol=2e-3)
    # the source moved by -shift (jitter), rotated about the centre
    centroid = torch.stack([(out[:, 0] * (torch.arange(out_size) - (out_size - 1) / 2)).sum(dim=(1, 2)) / flux, (out[:, 0] * (torch.arange(out_size) - (out_size - 1) / 2).view(-1, 1)).sum(dim=(1, 2)) / flux], dim=1)
    assert torch.allclose(centroid.norm(dim=1), shift.norm(dim=1), atol=0.02)


def test_composed_sampling_matrix_applies_the_shift_after_the_rotation():
    matrix = AF.sampling_matrix(torch.tensor([90.0]), torch.tensor([[2.0, 0.0]]), torch.tensor([False]))
    # the crop centre moves +2 px along x of the rotated image: it reads input R(-90) (2, 0) = (0, -2)
    read = matrix[0] @ torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(read[:2], torch.tensor([0.0, -2.0]), atol=1e-6)


# -- PSF smoothing -------------------------------------------------------------------------------
def test_blur_kernels_of_a_batch_are_each_widths_own_kernel():
    # a batch mixes identities, discrete (narrow) and sampled kernels: each row as if computed alone
    sigma = torch.tensor([0.0, 0.4, 2.0, 0.0, 0.99, 1.0, 3.1, 0.05])
    batch = AF.gaussian_kernels_1d(sigma, 13)
    for row, width in enumerate(sigma):
        assert torch.equal(batch[row], AF.gaussian_kernels_1d(width.view(1), 13)[0])
    assert torch.equal(batch[0], torch.nn.functional.one_hot(torch.tensor(13), 27).float())


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.3, 0.6, 0.95, 1.0, 1.7, 3.2])
def test_blur_kernels_are_normalised_with_variance_sigma_squared(sigma):
    radius = AF.blur_radius(sigma)
    kernel = AF.gaussian_kernels_1d(torch.tensor([sigma]), radius)[0].to(torch.float64)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    assert bool((kernel >= 0).all()) and torch.allclose(kernel, kernel.flip(0))
    assert float((kernel * taps**2).sum()) == pytest.approx(sigma**2, rel=1e-3, abs=1e-7)


def test_blur_widens_a_point_source_by_the_requested_fwhm_per_image():
    point = torch.zeros(4, 2, 41, 41)
    point[:, :, 20, 20] = 1.0
    fwhm = torch.tensor([0.0, 1.0, 2.5, 6.0])
    out = AF.gaussian_blur_fwhm(point, fwhm)
    measured = second_moment_sigma(out) * AF.FWHM_PER_SIGMA  # (4, 2)
    assert torch.allclose(measured, fwhm.view(-1, 1).expand(4, 2).double(), atol=2e-3)
    assert torch.allclose(out.sum(dim=(2, 3)), torch.ones(4, 2), atol=1e-5)


def test_blur_accepts_one_width_per_band():
    point = torch.zeros(1, 2, 31, 31)
    point[..., 15, 15] = 1.0
    out = AF.gaussian_blur_fwhm(point, torch.tensor([[2.0, 4.0]]))
    measured = second_moment_sigma(out)[0] * AF.FWHM_PER_SIGMA
    assert torch.allclose(measured, torch.tensor([2.0, 4.0], dtype=torch.float64), atol=2e-3)


def test_blur_variance_factor_is_the_noise_variance_after_blurring():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 1, 256, 256, generator=generator)
    fwhm = torch.tensor([3.0])
    radius = AF.blur_radius(3.0 / AF.FWHM_PER_SIGMA)
    blurred = AF.gaussian_blur_fwhm(noise, fwhm, radius)[..., radius:-radius, radius:-radius]
    factor = float(AF.blur_variance_factor(fwhm, radius)[0])
    # the variance of correlated noise from (256 - 2r)^2 pixels: ~2% at this width
    assert float(blurred.var()) == pytest.approx(factor, rel=0.1)


def test_fwhm_adds_in_quadrature():
    assert torch.allclose(AF.add_fwhm_in_quadrature(torch.tensor([3.0]), torch.tensor([4.0])), torch.tensor([5.0]))


# -- reddening -----------------------------------------------------------------------------------
def test_reddening_dims_each_band_by_r_times_delta_ebv_magnitudes():
    image = torch.rand(3, 5, 4, 4) + 0.5
    coeffs = torch.tensor([4.239, 3.303, 2.285, 1.698, 1.263])
    delta = torch.tensor([0.1, -0.2, 0.0])
    out = AF.redden(image, delta, coeffs)
    magnitude_shift = -2.5 * torch.log10(out / image)
    expected = (coeffs.view(1, -1) * delta.view(-1, 1)).view(3, 5, 1, 1).expand_as(image)
    assert torch.allclose(magnitude_shift, expected, atol=1e-5)


# -- noise ---------------------------------------------------------------------------------------
def test_noise_level_from_ivar_is_its_median_inverse_sqrt_over_valid_pixels():
    ivar = torch.full((2, 2, 16, 16), 25.0)
    ivar[0, 0, :4] = 1.0  # a quarter of the pixels differ: the median ignores them
    mask = torch.zeros(2, 2, 16, 16, dtype=torch.bool)
    ivar[1, 1, :12] = 1e6
    mask[1, 1, :12] = True  # invalid pixels do not count
    sigma = AF.noise_sigma(torch.zeros(2, 2, 16, 16), mask, ivar)
    assert torch.allclose(sigma, torch.full((2, 2), 0.2))


def test_noise_level_without_ivar_is_the_mad_of_valid_pixels():
    generator = torch.Generator().manual_seed(3)
    image = 0.7 * torch.randn(8, 3, 64, 64, generator=generator)
    image[:, :, 30:34, 30:34] += 100.0  # a bright compact galaxy barely moves the MAD
    sigma = AF.noise_sigma(image)
    # 1024 sampled pixels: the MAD's relative standard error is 1.17 / sqrt(1024) ~ 3.7%
    assert torch.allclose(sigma, torch.full_like(sigma, 0.7), rtol=4 * 0.037)
    assert float(sigma.mean()) == pytest.approx(0.7, rel=4 * 0.037 / math.sqrt(24))


def test_noise_level_falls_back_to_mad_where_a_band_has_no_ivar():
    generator = torch.Generator().manual_seed(4)
    image = 2.0 * torch.randn(1, 2, 64, 64, generator=generator)
    ivar = torch.full((1, 2, 64, 64), 4.0)
    ivar[0, 1] = 0.0
    sigma = AF.noise_sigma(image, None, ivar)
    assert float(sigma[0, 0]) == pytest.approx(0.5)
    assert float(sigma[0, 1]) == pytest.approx(2.0, rel=0.15)


def test_added_noise_has_the_requested_standard_deviation_and_spares_invalid_pixels():
    generator = torch.Generator().manual_seed(5)
    image = torch.zeros(4, 2, 64, 64)
    mask = torch.zeros_like(image, dtype=torch.bool)
    mask[:, :, :8] = True
    sigma_add = torch.tensor([[0.5, 2.0]]).expand(4, 2)
    out, _ = AF.add_gaussian_noise(image, sigma_add, generator, mask)
    assert (out[mask] == 0).all()
    n = 4 * 56 * 64
    measured = out[:, :, 8:].transpose(0, 1).reshape(2, -1).std(dim=1)
    # standard error of a sample std: sigma / sqrt(2 n)
    assert torch.allclose(measured, torch.tensor([0.5, 2.0]), rtol=5 / math.sqrt(2 * n))


def test_quadrature_difference_and_ivar_update():
    assert torch.allclose(AF.quadrature_difference(torch.tensor([5.0, 1.0]), torch.tensor([3.0, 2.0])), torch.tensor([4.0, 0.0]))
    ivar = torch.tensor([[[[4.0, 0.0]]]])
    out = AF.add_variance_to_ivar(ivar, torch.tensor([[0.75]]))
    assert torch.allclose(out, torch.tensor([[[[1.0, 0.0]]]]))  # 1 / (0.25 + 0.75)


# -- masking -------------------------------------------------------------------------------------
def test_patch_mask_hides_whole_patches_at_the_requested_rate():
    generator = torch.Generator().manual_seed(6)
    hidden = AF.random_patch_mask(200, 64, 64, 8, 0.3, generator, "cpu")
    patches = hidden.view(200, 8, 8, 8, 8)  # (B, rows, 8, cols, 8)
    per_patch = patches.float().mean(dim=(2, 4))
    assert bool(((per_patch == 0) | (per_patch == 1)).all())
    n = 200 * 64
    assert float(per_patch.mean()) == pytest.approx(0.3, abs=4 * math.sqrt(0.3 * 0.7 / n))


def test_patch_mask_handles_sizes_that_are_not_multiples_of_the_patch():
    hidden = AF.random_patch_mask(2, 10, 13, 4, torch.tensor([1.0, 0.0]), None, "cpu")
    assert hidden.shape == (2, 10, 13) and hidden[0].all() and not hidden[1].any()


# -- fast paths ----------------------------------------------------------------------------------
def test_may_be_true_is_exact_on_cpu_for_empty_expanded_and_strided_masks():
    mask = torch.zeros(3, 1, 5, 5, dtype=torch.bool)
    assert not AF.may_be_true(mask) and not AF.may_be_true(mask[:0]) and not AF.may_be_true(mask.expand(3, 4, 5, 5))
    mask[2, 0, 4, 4] = True
    assert AF.may_be_true(mask.expand(3, 4, 5, 5)) and AF.may_be_true(mask[..., ::2, ::2]) and not AF.may_be_true(mask[:2])


def test_resample_equals_affine_grid_and_grid_sample_with_the_pixel_mask_rule():
    generator = torch.Generator().manual_seed(3)
    image = torch.randn(4, 2, 20, 24, generator=generator)
    angle = torch.tensor([0.0, 33.0, 90.0, 217.0])
    matrix = AF.sampling_matrix(angle, torch.tensor([[0.0, 0.0], [1.5, -2.0], [3.0, 0.0], [-0.25, 0.5]]), torch.tensor([False, True, False, True]))
    out, mask, _ = AF.resample(image, matrix, (16, 18))
    # the reference: theta in normalised coordinates, affine_grid, grid_sample, then the border rule
    theta = matrix[:, :2, :].clone()
    theta[:, :, :2] *= torch.tensor([2.0 / 24, 2.0 / 20]).view(1, 2, 1) * torch.tensor([18 / 2.0, 16 / 2.0]).view(1, 1, 2)
    theta[:, :, 2] *= torch.tensor([2.0 / 24, 2.0 / 20])
    grid = F.affine_grid(theta, [4, 1, 16, 18], align_corners=False)
    px, py = (grid[..., 0] + 1) * 12 - 0.5, (grid[..., 1] + 1) * 10 - 0.5
    tol = AF.RESAMPLE_WEIGHT_TOLERANCE
    outside = ~((px >= -tol) & (px <= 23 + tol) & (py >= -tol) & (py <= 19 + tol))
    assert torch.equal(mask, outside.unsqueeze(1).expand_as(mask))
    expected = F.grid_sample(image, grid, align_corners=False).masked_fill(mask, 0.0)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_ivar_update_zeroes_negative_and_nan_ivar_like_zero_ivar():
    ivar = torch.tensor([4.0, 0.0, -3.0, float("nan"), 1e30]).view(1, 1, 1, 5).repeat(1, 2, 1, 1)
    extra = torch.tensor([[0.75, 0.0]])
    expected = torch.where(ivar > 0, ivar / (1.0 + ivar * extra.view(1, 2, 1, 1)), 0.0)
    assert torch.equal(AF.add_variance_to_ivar(ivar, extra), expected)
    assert torch.equal(AF.add_variance_to_ivar(ivar.clamp_min(0).nan_to_num(0.0), extra), expected)


def test_added_noise_leaves_the_input_untouched():
    image = torch.ones(2, 1, 4, 4)
    out, _ = AF.add_gaussian_noise(image, torch.ones(2, 1), torch.Generator().manual_seed(0), torch.zeros_like(image, dtype=torch.bool))
    assert torch.equal(image, torch.ones(2, 1, 4, 4)) and not torch.equal(out, image)
