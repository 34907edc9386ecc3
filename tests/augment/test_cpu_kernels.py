"""The compiled CPU kernels against their definitions: the torch implementations (which other
devices run) and the statistics of the distributions they draw from."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from astrobench.augment import cpu_kernels as K
from astrobench.augment import functional as AF
from astrobench.datasets.normalize import Normalizer, fast_asinh


# -- Gaussian noise ------------------------------------------------------------------------------
def test_noise_is_standard_normal_including_the_tails():
    image = torch.zeros(64, 4, 64, 64)
    noisy, _ = K.add_gaussian_noise(image, torch.ones(64, 4), torch.arange(64) * 7919 + 3)
    z = noisy.double().flatten()
    n = z.numel()  # 1,048,576 draws
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert float(z.std()) == pytest.approx(1.0, abs=5 / math.sqrt(2 * n))
    assert stats.kstest(z[:200_000].numpy(), "norm").pvalue > 1e-3
    for edge in (2.0, 3.0, 4.0):  # the tails' mass is the normal's
        expected = 2 * stats.norm.sf(edge)
        measured = float((z.abs() > edge).double().mean())
        assert measured == pytest.approx(expected, abs=5 * math.sqrt(expected / n))
    kurtosis = float(((z - z.mean()) ** 4).mean() / z.var() ** 2)
    assert kurtosis == pytest.approx(3.0, abs=0.03)
    assert float(z.abs().max()) <= K.NOISE_TAIL_LIMIT
    # the two normals of a pair (pixels j and j + 2048 of a plane) are independent
    planes = z.view(-1, 4096)
    assert abs(float(torch.corrcoef(torch.stack([planes[:, :2048].flatten(), planes[:, 2048:].flatten()]))[0, 1])) < 5 / math.sqrt(n / 2)
    assert abs(float(torch.corrcoef(torch.stack([planes[:, :2048].flatten() ** 2, planes[:, 2048:].flatten() ** 2]))[0, 1])) < 5 / math.sqrt(n / 2)


def _lowbias32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_noise_is_box_muller_of_the_keyed_hashes_to_float32_precision():
    """A float64 NumPy Box-Muller of the same hashed Weyl sequence: the kernel's polynomial
    logarithm, sine and cosine are exact to a few float32 roundings. Pins the documented stream, so
    that a change shows (and needs a new pretraining cache version)."""
    seed, channel = 123456789, 2
    image = torch.zeros(1, 3, 8, 9)  # 72 pixels: 36 pairs
    noisy, _ = K.add_gaussian_noise(image, torch.ones(1, 3), torch.tensor([seed]))
    odd, _ = K.add_gaussian_noise(torch.zeros(1, 3, 7, 9), torch.ones(1, 3), torch.tensor([seed]))
    plane_seed = seed ^ ((channel + 1) * 0xD1B54A32D192ED03 & (2**64 - 1))
    z = (plane_seed + 0x9E3779B97F4A7C15) & (2**64 - 1)  # splitmix64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    keys = z ^ (z >> 31)
    weyl_start, weyl_step = keys & 0xFFFFFFFF, (keys >> 32) | 1
    points = [(weyl_start + n * weyl_step) & 0xFFFFFFFF for n in range(72)]
    hashes = _lowbias32(np.array(points, dtype=np.uint64))
    u1 = ((hashes[0::2] >> 8).astype(np.float64) + 1) / 2**24
    angle_bits = hashes[1::2] >> 8  # 24 bits: quadrant, then 22 within it
    theta = (angle_bits >> 22) * (math.pi / 2) + ((angle_bits & (2**22 - 1)) + 0.5) / 2**22 * (math.pi / 2) - math.pi / 4
    radius = np.sqrt(-2 * np.log(u1))
    expected = np.concatenate([radius * np.cos(theta), radius * np.sin(theta)])
    measured = noisy[0, channel].flatten().double().numpy()
    np.testing.assert_allclose(measured, expected, rtol=0, atol=1e-6)
    # an odd plane (63 pixels): pairs 0-30 fill pixels j and j + 31, pair 31's first normal the last
    odd_plane = odd[0, channel].flatten().double().numpy()
    odd_expected = np.concatenate([radius[:31] * np.cos(theta[:31]), radius[:31] * np.sin(theta[:31]), radius[31:32] * np.cos(theta[31:32])])
    np.testing.assert_allclose(odd_plane, odd_expected, rtol=0, atol=1e-6)
    assert noisy[0, 0].flatten().double().numpy()[:4].tolist() != measured[:4].tolist()  # bands differ


def test_noise_scales_per_plane_and_depends_only_on_the_seeds():
    image = torch.full((6, 3, 32, 32), 2.0)
    sigma = torch.tensor([0.5, 0.0, 3.0]).repeat(6, 1)
    seeds = torch.tensor([11, 12, 13, 14, 15, 11])
    first, _ = K.add_gaussian_noise(image, sigma, seeds)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single_thread, _ = K.add_gaussian_noise(image, sigma, seeds)
    finally:
        numba.set_num_threads(threads)
    assert torch.equal(first, single_thread)  # the same numbers whatever the thread count
    assert torch.equal(first[0], first[5])  # the same seed, the same noise
    assert not torch.equal(first[0], first[1])
    assert torch.equal(first[:, 1], image[:, 1])  # sigma 0: copied
    residual = (first - 2.0).transpose(0, 1).reshape(3, -1)
    assert float(residual[0].std()) == pytest.approx(0.5, rel=0.05)
    assert float(residual[2].std()) == pytest.approx(3.0, rel=0.05)
    # bands draw from different streams of the same seed
    assert abs(float(torch.corrcoef(torch.stack([residual[0], residual[2]]))[0, 1])) < 0.05


def test_noise_zeroes_invalid_pixels_and_updates_ivar_as_the_torch_rule():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 2, 8, 8, generator=generator)
    mask = torch.rand(3, 2, 8, 8, generator=generator) < 0.2
    ivar = torch.rand(3, 2, 8, 8, generator=generator) * 4
    ivar[0, 0, 0, :3] = torch.tensor([0.0, -1.0, float("nan")])
    sigma = torch.tensor([[0.5, 0.0], [1.0, 2.0], [0.0, 0.0]])
    noisy, new_ivar = K.add_gaussian_noise(image, sigma, torch.tensor([1, 2, 3]), mask, ivar)
    assert bool((noisy[mask] == 0).all())
    assert torch.equal(noisy[2][~mask[2]], image[2][~mask[2]])
    assert torch.allclose(new_ivar, AF.add_variance_to_ivar(ivar, sigma**2), rtol=1e-6)
    assert new_ivar[0, 0, 0, :3].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["cpu-kernel", "torch"])
def test_both_noise_paths_add_the_requested_level_and_keep_the_input(dtype):
    """float32 on CPU runs the kernel; float64 the torch path that other devices run."""
    image = torch.ones(8, 2, 64, 64, dtype=dtype)
    sigma = torch.tensor([[0.0, 0.0]] + [[0.5, 2.0]] * 7)
    noisy, new_ivar = AF.add_gaussian_noise(image, sigma, torch.Generator().manual_seed(3), None, torch.full_like(image, 4.0))
    assert torch.equal(image, torch.ones_like(image)) and noisy.dtype == dtype
    assert torch.equal(noisy[0], image[0])
    measured = (noisy[1:] - 1).transpose(0, 1).reshape(2, -1).std(dim=1)
    assert torch.allclose(measured.double(), torch.tensor([0.5, 2.0], dtype=torch.float64), rtol=0.02)
    assert torch.allclose(new_ivar[1:, 1].double(), torch.tensor(4.0 / (1 + 4.0 * 4.0), dtype=torch.float64))


def test_noise_rejects_what_it_cannot_run():
    with pytest.raises(ValueError, match="float32 CPU"):
        K.add_gaussian_noise(torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.ones(1, 1), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ValueError, match="sigma_add must be"):
        K.add_gaussian_noise(torch.zeros(2, 1, 2, 2), torch.ones(1, 1), torch.zeros(2, dtype=torch.int64))


# -- medians -------------------------------------------------------------------------------------
def torch_masked_median(values, valid=None, positive_only=False):
    usable = ~torch.isnan(values)
    if valid is not None:
        usable &= valid
    if positive_only:
        usable &= values > 0
    return torch.where(usable, values, torch.nan).nanmedian(dim=-1).values


@pytest.mark.parametrize("length", [1, 2, 7, 256, 1023])
def test_masked_median_is_torch_nanmedian_of_the_kept_values(length):
    generator = torch.Generator().manual_seed(length)
    values = torch.randn(40, length, generator=generator) * torch.logspace(-3, 3, 40).view(-1, 1)
    values[torch.rand(40, length, generator=generator) < 0.2] = float("nan")
    values[0] = float("nan")  # a row with nothing to keep: NaN
    ties = torch.randint(-2, 3, (40, length), generator=generator).float()  # ties, zeros, negatives
    valid = torch.rand(40, length, generator=generator) < 0.7
    for data in (values, ties):
        for keep, positive in ((None, False), (valid, False), (valid, True), (None, True)):
            expected = torch_masked_median(data, keep, positive)
            assert torch.equal(K.masked_median(data, keep, positive).nan_to_num(99.0), expected.nan_to_num(99.0))



def test_masked_median_of_long_rows_whose_sample_misleads():
    # rows of >= 512 kept values are first bracketed with an evenly spaced sample of 128; these rows
    # put the sample far from the median (or make it useless), so the full selection must answer
    generator = torch.Generator().manual_seed(9)
    length = 2048
    base = torch.randn(length, generator=generator)
    sampled = (torch.arange(128) * length) // 128  # the positions the kernel samples
    rows = [base.sort().values, base.sort(descending=True).values, torch.zeros(length), base.round().clamp(-1, 1)]
    outliers = base.clone()
    outliers[sampled] = float("inf")  # every sampled key is the largest
    rows.append(outliers)
    lows = base.clone()
    lows[sampled] = -1e30
    rows.append(lows)
    clustered = base.abs() + 1e3  # a cluster far from the sampled keys' spread
    clustered[: length // 2 + 1] = 0.5
    rows.append(clustered)
    values = torch.stack(rows)
    for keep in (None, torch.rand(values.shape, generator=generator) < 0.8):
        assert torch.equal(K.masked_median(values, keep), torch_masked_median(values, keep, False))

def test_masked_median_orders_signed_zeros_and_infinities_as_torch():
    values = torch.tensor([[-0.0, 0.0, 0.0], [0.0, -0.0, -0.0], [float("inf"), -float("inf"), 1.0], [-float("inf")] * 3])
    assert torch.equal(K.masked_median(values), values.nanmedian(dim=-1).values)
    with pytest.raises(ValueError, match="float32 CPU"):
        K.masked_median(values.double())


# -- resampling ----------------------------------------------------------------------------------
def random_matrices(size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    angle = torch.rand(size, generator=generator) * 360
    shift = (torch.rand(size, 2, generator=generator) - 0.5) * 14
    flip = torch.rand(size, generator=generator) < 0.5
    # pixel-aligned maps, where the mask tolerance decides
    angle[:6] = torch.tensor([0.0, 90.0, 180.0, 270.0, 0.0, 90.0])
    shift[:6] = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, -2.0], [0.5, 0.0], [3.0, 3.0]])
    return AF.sampling_matrix(angle, shift, flip)


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_ivar", [False, True])
@pytest.mark.parametrize("out_size", [(32, 32), (24, 28), (40, 36)])
def test_resample_kernel_is_grid_sample_with_the_same_mask_rule(with_mask, with_ivar, out_size):
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(24, 3, 32, 32, generator=generator)
    mask = torch.rand(24, 3, 32, 32, generator=generator) < 0.03 if with_mask else None
    ivar = torch.rand(24, 3, 32, 32, generator=generator) + 0.5 if with_ivar else None
    matrix = random_matrices(24, seed=2)
    got = K.resample(image, matrix, out_size, mask, ivar, AF.RESAMPLE_WEIGHT_TOLERANCE)
    want = AF.resample_grid_sample(image, matrix, out_size, mask, ivar)
    assert torch.equal(got[1], want[1])
    assert torch.allclose(got[0], want[0], atol=1e-4)  # grid_sample rounds its normalised coordinates
    assert (got[2] is None) == (ivar is None)
    if ivar is not None:
        assert torch.allclose(got[2], want[2], atol=1e-4)
    assert bool(got[1].any())  # the corners of rotated images are outside: the test sees both cases


def test_resample_dispatches_cpu_batches_to_the_kernel_and_keeps_the_contract():
    image = torch.randn(8, 2, 16, 16)
    matrix = random_matrices(8, seed=5)
    out, mask, ivar = AF.resample(image, matrix, (16, 16))
    assert torch.equal(out, K.resample(image, matrix, (16, 16), None, None, AF.RESAMPLE_WEIGHT_TOLERANCE)[0])
    assert ivar is None and bool((out[mask] == 0).all())


# -- blur ----------------------------------------------------------------------------------------
def conv_reference(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable zero-padded convolution with a kernel per (image, band), by grouped conv2d."""
    batch, channels, height, width = image.shape
    taps = kernels.shape[-1]
    flat = image.double().reshape(1, batch * channels, height, width)
    weights = kernels.double().reshape(-1, taps)
    flat = F.conv2d(flat, weights.view(-1, 1, 1, taps), padding=(0, taps // 2), groups=batch * channels)
    flat = F.conv2d(flat, weights.view(-1, 1, taps, 1), padding=(taps // 2, 0), groups=batch * channels)
    return flat.view(batch, channels, height, width)


def test_blur_kernel_is_the_separable_convolution_and_copies_the_rest():
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(6, 3, 20, 24, generator=generator)
    sigma = torch.rand(6, 3, generator=generator) * 2
    kernels = AF.gaussian_kernels_1d(sigma.reshape(-1), 6).view(6, 3, -1)
    blur = torch.rand(6, 3, generator=generator) < 0.6
    out = K.gaussian_blur(image, kernels, blur)
    expected = torch.where(blur.view(6, 3, 1, 1), conv_reference(image, kernels), image.double())
    assert torch.allclose(out.double(), expected, atol=1e-5)
    assert torch.equal(out[~blur], image[~blur])
    with pytest.raises(ValueError, match="odd length"):
        K.gaussian_blur(image, kernels[..., :-1], blur)


@pytest.mark.parametrize("per_band", [False, True])
def test_both_blur_paths_agree(per_band):
    """float32 on CPU runs the kernel; float64 the banded-matrix products other devices run."""
    generator = torch.Generator().manual_seed(4)
    image = torch.randn(5, 3, 24, 20, generator=generator)
    fwhm = torch.rand(5, 3, generator=generator) * 4 if per_band else torch.tensor([0.0, 0.5, 2.0, 3.5, 5.0])
    kernel_path = AF.gaussian_blur_fwhm(image, fwhm)
    torch_path = AF.gaussian_blur_fwhm(image.double(), fwhm)
    assert kernel_path.dtype == torch.float32 and torch_path.dtype == torch.float64
    assert torch.allclose(kernel_path.double(), torch_path, atol=1e-5)
    if not per_band:
        assert torch.equal(kernel_path[0], image[0])  # FWHM 0: copied


# -- normaliser ----------------------------------------------------------------------------------
def test_scaled_asinh_is_correctly_rounded_over_the_float32_range():
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(40, 3, 16, 16, generator=generator) * torch.logspace(-30, 30, 40).view(-1, 1, 1, 1)
    scales = (0.05, 1.0, 7.0)
    exact = torch.asinh(image.double() / torch.tensor(scales, dtype=torch.float64).view(1, 3, 1, 1))
    got = K.scaled_asinh(image, scales)
    relative = ((got.double() - exact).abs() / exact.abs().clamp_min(1e-300)).max()
    assert float(relative) <= 2**-24 * 1.01  # half a float32 ulp: correctly rounded
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 3e38, -3e38, 1e-40]).view(1, 1, 1, 8)
    got_special, want_special = K.scaled_asinh(special, (1.0,)), torch.asinh(special)
    assert torch.allclose(got_special, want_special, equal_nan=True, rtol=1e-7, atol=1e-45)
    assert torch.equal(torch.signbit(got_special), torch.signbit(want_special))


def test_normaliser_kernel_matches_the_torch_path_and_masks():
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(4, 2, 8, 8, generator=generator) * 50
    mask = torch.rand(4, 2, 8, 8, generator=generator) < 0.3
    normalizer = Normalizer(("g", "r"), (0.5, 2.0))
    kernel_path = normalizer(image, mask)  # float32 on CPU: the kernel
    torch_path = normalizer(image.double(), mask)  # float64: fast_asinh in torch
    assert torch.allclose(kernel_path.double(), torch_path, rtol=1e-6, atol=1e-7)
    assert bool((kernel_path[mask] == 0).all())
    assert torch.allclose(fast_asinh(image / 0.5).double(), torch.asinh(image.double() / 0.5), rtol=1e-6, atol=2e-7)


# -- allocator -----------------------------------------------------------------------------------
PLACEMENT_PROBE = textwrap.dedent(
    """
    import sys, torch
    from astrobench.allocator import reuse_freed_memory
    if sys.argv[1] == "reuse":
        assert reuse_freed_memory()
    def heap():
        for line in open("/proc/self/maps"):
            if line.rstrip().endswith("[heap]"):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                return start, end
        return 0, 0
    block = torch.ones(256, 5, 64, 64)  # the process's first batch-sized tensor
    start, end = heap()
    placed = "heap" if start <= block.data_ptr() < end else "mapping"
    del block
    start, after = heap()
    print(placed, (end - after) // 2**20)  # where it went, and how many MiB the heap gave back on free
    """
)

VIEW_PROBE = textwrap.dedent(
    """
    import resource, torch
    from astrobench.allocator import reuse_freed_memory
    from astrobench.augment.pipeline import ViewPipeline
    from astrobench.datasets.normalize import Normalizer
    assert reuse_freed_memory()
    size = 256
    batch = {
        "image": torch.randn(size, 5, 64, 64), "ivar": torch.full((size, 5, 64, 64), 400.0),
        "mask": torch.zeros(size, 5, 64, 64, dtype=torch.bool), "psf_fwhm": torch.full((size, 5), 1.4),
        "ebv": torch.zeros(size), "pixel_scale": torch.full((size,), 0.396), "bands": tuple("ugriz"),
    }
    views = ViewPipeline(["RR", "JC", "GN", "GR", "PS"], None, Normalizer(tuple("ugriz"), (0.05,) * 5), 64)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        views(batch, generator)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        views(batch, generator)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
    """
)
PAGES_PER_BATCH_TENSOR = 256 * 5 * 64 * 64 * 4 // 4096  # 5,120 pages of 4 kB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_reusing_freed_memory_keeps_batch_sized_blocks_in_the_heap():
    # glibc maps a process's first blocks over 128 kB with mmap and unmaps them on free (later ones
    # too once its adaptive thresholds trim the heap): each batch then faults its pages in again.
    # With reuse they come from the heap, which keeps them when they are freed.
    def run(mode: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", PLACEMENT_PROBE, mode], capture_output=True, text=True, check=True).stdout.split()

    assert run("default")[0] == "mapping"
    assert run("reuse") == ["heap", "0"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_views_with_reused_memory_map_no_batch_sized_block_per_batch():
    # without reuse the views took 15,000-27,000 faults a batch on the development VM (how many
    # depends on glibc's heuristics and the order of the allocations)
    faults = int(subprocess.run([sys.executable, "-c", VIEW_PROBE], capture_output=True, text=True, check=True).stdout)
    assert faults < PAGES_PER_BATCH_TENSOR, faults  # measured: 0-1,024
