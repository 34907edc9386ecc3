"""Pure batched tensor functions behind the augmentations; every parameter is per image.

Conventions, shared by every function here:

- images are ``(B, C, H, W)`` flux on any device; masks are bool with **True = invalid**;
- pixel coordinates are offsets from the image centre in pixels, ``x`` along columns (last axis),
  ``y`` along rows; the centre of an ``H x W`` image lies at index ``((W - 1) / 2, (H - 1) / 2)``;
- angles are in degrees, widths (FWHM, sigma) in pixels unless a name says ``arcsec``;
- random numbers come from an optional ``torch.Generator``; see :func:`uniform`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548: FWHM of a Gaussian / its sigma
MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian / its median absolute deviation
# A resampled pixel is invalid when more than this share of its bilinear weight comes from invalid
# or outside pixels; a tolerance (not 0) so that pixel-aligned maps (flips, 90 degrees, integer
# shifts) do not flag neighbours that carry a rounding-level weight.
RESAMPLE_WEIGHT_TOLERANCE = 1e-3
# Below this width (px) a sampled Gaussian's variance falls short of sigma^2 (the error grows like
# exp(-2 pi^2 sigma^2)), so kernels switch to the discrete Gaussian, exact for any width.
SMALL_SIGMA_PIX = 1.0
BLUR_RADIUS_SIGMAS, MIN_BLUR_RADIUS = 4.0, 5  # blur kernels reach 4 sigma, and at least 5 px (blur_radius)


# -- random numbers ------------------------------------------------------------------------------
def uniform(
    shape: tuple[int, ...],
    low: float | torch.Tensor,
    high: float | torch.Tensor,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> torch.Tensor:
    """U[low, high) samples on ``device``, drawn on the generator's device, or on ``device`` from
    its default generator when none is given.

    A generator on another device than the batch (a CPU generator for a GPU batch) reproduces the
    same parameters whatever device the batch is on, at the cost of a copy; without one nothing
    crosses devices (a training step draws from the default generators, seeded per step).
    """
    device = torch.device(device)
    if generator is None or generator.device == device:
        u = torch.rand(shape, generator=generator, device=device)
    else:
        u = torch.rand(shape, generator=generator, device=generator.device).to(device, non_blocking=True)
    return low + (high - low) * u


def standard_normal(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str
) -> torch.Tensor:
    """N(0, 1) samples of an image-sized tensor, drawn directly on ``device`` when possible.

    Without a generator, or with one on ``device``, nothing crosses devices; a generator on another
    device gives the same numbers at the cost of a copy (pass one on the batch's device for speed).
    """
    device = torch.device(device)
    if generator is None or generator.device == device:
        return torch.randn(shape, generator=generator, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


# -- geometry ------------------------------------------------------------------------------------
def rotation_flip_matrix(angle_deg: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) sampling matrices that mirror (x -> -x where ``flip``) and then rotate by ``angle``.

    A *sampling* matrix maps an output pixel offset ``u`` to the input offset it reads from,
    ``x = S u``. Rotating the content counter-clockwise by ``angle`` in (x, y) = (column, row)
    coordinates reads from ``R(-angle) u``; the mirror is applied first, so it reads ``M R(-angle) u``.
    """
    angle = torch.deg2rad(angle_deg.to(torch.float32))
    cos, sin = torch.cos(angle), torch.sin(angle)
    mirror = 1.0 - 2.0 * flip.to(angle.dtype)  # -1 where flipped
    matrix = torch.zeros(angle.shape[0], 3, 3, dtype=angle.dtype, device=angle.device)
    # M R(-a) = [[m cos, m sin], [-sin, cos]] with M = diag(m, 1)
    matrix[:, 0, 0] = mirror * cos
    matrix[:, 0, 1] = mirror * sin
    matrix[:, 1, 0] = -sin
    matrix[:, 1, 1] = cos
    matrix[:, 2, 2] = 1.0
    return matrix


def translation_matrix(shift_pix: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) sampling matrices of a crop whose centre moves by ``shift_pix`` (B, 2) = (dx, dy).

    The content moves by ``-shift``: output pixel ``u`` reads input offset ``u + shift``.
    """
    batch = shift_pix.shape[0]
    matrix = torch.eye(3, dtype=torch.float32, device=shift_pix.device).repeat(batch, 1, 1)
    matrix[:, :2, 2] = shift_pix.to(torch.float32)
    return matrix


def sampling_matrix(angle_deg: torch.Tensor, shift_pix: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror, rotate, then jitter-crop, composed into one (B, 3, 3) sampling matrix.

    Ops applied in the order A then B read ``x = S_A (S_B u)``: sampling matrices compose by
    right-multiplication in the order the ops are applied.
    """
    return rotation_flip_matrix(angle_deg, flip) @ translation_matrix(shift_pix)


def may_be_true(flags: torch.Tensor) -> bool:
    """False only when ``flags`` (bool) is known to hold no True: the caller may then skip work.

    On a CPU the answer is exact (reading memory is all it costs). On a GPU it is True without
    looking: reading the answer would make the host wait for the device at every call, which costs
    more than the work it could skip (that work gives the same result on all-False flags).
    """
    if flags.device.type == "cpu":
        return bool(flags.numpy().any())
    return True


def _pack_invalid_bits(mask: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) bool -> (B, H, W) int32 whose bit ``b`` is set where band ``b`` is invalid."""
    bits = torch.bitwise_left_shift(torch.ones(mask.shape[1], dtype=torch.int32, device=mask.device), torch.arange(mask.shape[1], dtype=torch.int32, device=mask.device))
    return (mask.to(torch.int32) * bits.view(1, -1, 1, 1)).sum(dim=1, dtype=torch.int32)


def _any_invalid_neighbours(words: torch.Tensor) -> torch.Tensor:
    """(4, B, H * W) int32: the invalid bits OR-ed over the 1x1, 1x2 (x, x+1), 2x1 (y, y+1) and 2x2
    windows that start at each pixel; windows reaching past the last row/column OR with nothing
    (reading outside the image is handled by the in-bounds test)."""
    right = torch.zeros_like(words)
    right[..., :-1] = words[..., 1:]
    wide = words | right  # (x, x+1)
    below = torch.zeros_like(words)
    below[:, :-1] = words[:, 1:]
    tall = words | below  # (y, y+1)
    below_wide = torch.zeros_like(wide)
    below_wide[:, :-1] = wide[:, 1:]
    square = wide | below_wide
    batch = words.shape[0]
    return torch.stack([words, wide, tall, square]).view(4, batch, -1)


def resample(
    image: torch.Tensor,
    matrix: torch.Tensor,
    out_size: tuple[int, int],
    mask: torch.Tensor | None = None,
    ivar: torch.Tensor | None = None,
    extra: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Bilinear resampling of a batch through per-image sampling matrices, in one pass.

    ``matrix`` (B, 3, 3) maps output offsets to input offsets in pixels (see :func:`sampling_matrix`);
    ``out_size`` is (height, width) of the output, centred like the input. Image and ``ivar``
    travel through a single ``grid_sample`` call (:func:`resample_grid_sample`). The mask uses the *any-invalid* rule: an
    output pixel is invalid in band ``b`` when a row or column of its bilinear footprint that
    carries more than ``RESAMPLE_WEIGHT_TOLERANCE`` of the weight lies outside the image or holds
    a pixel invalid in ``b``. Invalid output pixels hold 0 in image and ivar. ``ivar`` is
    interpolated bilinearly (an approximation: interpolation also averages noise down). ``extra``
    is an optional (B, 2) offset in output pixels added to ``u`` before the matrix (a crop window
    that is not centred). ``scale`` (B, C), optional, multiplies each output plane (and divides its
    ivar by the square): a per-plane flux factor applied in the same pass. Returns ``(image,
    mask, ivar)``, ``ivar`` None when none was given.
    """
    out_h, out_w = int(out_size[0]), int(out_size[1])
    if scale is not None and tuple(scale.shape) != tuple(image.shape[:2]):
        raise ValueError(f"resample: scale must be (batch, bands) = {tuple(image.shape[:2])}, got {tuple(scale.shape)}")
    matrix = matrix.to(device=image.device, dtype=torch.float32)
    if extra is not None:
        matrix = matrix @ translation_matrix(extra.to(image.device))
    if mask is not None and not may_be_true(mask):
        mask = None  # nothing invalid inside (the usual case): only the borders matter
    out_image, out_mask, out_ivar = resample_grid_sample(image, matrix, (out_h, out_w), mask, ivar)
    if scale is not None:  # the outputs are new tensors: scaled in place
        factors = scale.to(device=image.device, dtype=image.dtype).view(*scale.shape, 1, 1)
        out_image.mul_(factors)
        if out_ivar is not None:
            out_ivar.div_(factors.square())
    return out_image, out_mask, out_ivar


def resample_grid_sample(
    image: torch.Tensor,
    matrix: torch.Tensor,
    out_size: tuple[int, int],
    mask: torch.Tensor | None = None,
    ivar: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`resample` with ``grid_sample``, on any device (the CPU kernel is tested against it);
    ``matrix`` includes any extra offset, ``mask`` is None or holds an invalid pixel."""
    batch, channels, height, width = image.shape
    out_h, out_w = out_size
    # grid_sample works in normalised coordinates (align_corners=False): g = 2 x / W for inputs and
    # u = v * W_out / 2 for outputs, so theta = diag(2/W, 2/H) S diag(W_out/2, H_out/2).
    # scalars, not small tensors: a tensor made from host numbers is a copy the host waits for
    in_x, in_y, out_x, out_y = 2.0 / width, 2.0 / height, out_w / 2.0, out_h / 2.0
    linear = torch.stack([matrix[:, 0, :2] * in_x, matrix[:, 1, :2] * in_y], dim=1)
    linear = torch.stack([linear[:, :, 0] * out_x, linear[:, :, 1] * out_y], dim=2)  # (B, 2, 2)
    offset = torch.stack([matrix[:, 0, 2] * in_x, matrix[:, 1, 2] * in_y], dim=1)  # (B, 2)
    # affine_grid's grid, theta [v_x, v_y, 1], built as a sum of a per-column and a per-row term:
    # on CPU its batched matrix product costs several times this broadcast add
    v_x = (torch.arange(out_w, device=image.device) * 2 + 1 - out_w) / out_w  # pixel centres in [-1, 1]
    v_y = (torch.arange(out_h, device=image.device) * 2 + 1 - out_h) / out_h
    columns = v_x.view(1, 1, -1, 1) * linear[:, :, 0].view(batch, 1, 1, 2)
    rows = v_y.view(1, -1, 1, 1) * linear[:, :, 1].view(batch, 1, 1, 2) + offset.view(batch, 1, 1, 2)
    grid = columns + rows  # (B, H_out, W_out, 2)

    stacked = image if ivar is None else torch.cat([image, ivar.to(image.dtype)], dim=1)
    sampled = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # A sample reads outside when px = (g + 1) W / 2 - 1/2 leaves [-tol, W - 1 + tol], i.e. when
    # |g| > (W - 1 + 2 tol) / W (the same test on the grid, without building px and py).
    tol = RESAMPLE_WEIGHT_TOLERANCE
    outside = (grid[..., 0].abs() > (width - 1 + 2 * tol) / width) | (grid[..., 1].abs() > (height - 1 + 2 * tol) / height)
    if mask is None:
        out_mask = outside.unsqueeze(1).expand(batch, channels, out_h, out_w)
    else:
        if channels > 31:
            raise ValueError(f"resample packs band masks into 32-bit words: at most 31 bands, got {channels}")
        # The footprint of a sample at input position (px, py) is columns floor(px) and floor(px) + 1
        # (only the first when the second's weight is within the tolerance), rows likewise.
        px = (grid[..., 0] + 1.0) * (width / 2.0) - 0.5
        py = (grid[..., 1] + 1.0) * (height / 2.0) - 0.5
        # snap to the nearest column/row when the footprint's far side carries no weight
        x0 = torch.floor(px + tol)
        y0 = torch.floor(py + tol)
        two_columns = (px - x0) > tol
        two_rows = (py - y0) > tol
        window = two_columns.to(torch.int64) + 2 * two_rows.to(torch.int64)  # 0: 1x1, 1: 1x2, 2: 2x1, 3: 2x2
        flat = y0.clamp(0, height - 1).to(torch.int64) * width + x0.clamp(0, width - 1).to(torch.int64)
        index = (window * (height * width) + flat).view(batch, -1)
        windows = _any_invalid_neighbours(_pack_invalid_bits(mask))  # (4, B, H*W)
        table = windows.permute(1, 0, 2).reshape(batch, -1)
        invalid_bits = table.gather(1, index).view(batch, 1, out_h, out_w)
        bits = torch.bitwise_left_shift(torch.ones(channels, dtype=torch.int32, device=image.device), torch.arange(channels, dtype=torch.int32, device=image.device))
        out_mask = ((invalid_bits & bits.view(1, -1, 1, 1)) != 0) | outside.unsqueeze(1)

    # sampled is ours: zero the invalid pixels in place
    out_image = sampled[:, :channels].masked_fill_(out_mask, 0.0)
    out_ivar = None if ivar is None else sampled[:, channels:].clamp_min_(0.0).masked_fill_(out_mask, 0.0)
    return out_image, out_mask, out_ivar


def affine_resample(
    image: torch.Tensor,
    angle_deg: torch.Tensor,
    shift_pix: torch.Tensor,
    flip: torch.Tensor,
    out_size: int | tuple[int, int],
    mask: torch.Tensor | None = None,
    ivar: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mirror (where ``flip``), rotate by ``angle_deg`` and crop ``out_size`` around the centre moved
    by ``shift_pix`` (B, 2) px, as one bilinear resampling; see :func:`resample` for the mask rule."""
    size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    return resample(image, sampling_matrix(angle_deg, shift_pix, flip), size, mask=mask, ivar=ivar)


# -- PSF smoothing -------------------------------------------------------------------------------
def gaussian_kernels_1d(sigma_pix: torch.Tensor, radius: int) -> torch.Tensor:
    """(N, 2 radius + 1) normalised, symmetric 1-D kernels whose variance is ``sigma_pix**2`` (px^2).

    For sigma >= 1 px the sampled Gaussian (its variance equals sigma^2 to ~1e-8); below, the
    discrete Gaussian ``exp(-t) I_n(t)`` with ``t = sigma^2`` (Lindeberg 1990), whose variance is
    exactly ``t`` for any width: a sampled Gaussian of sigma 0.3 px has only a tenth of that
    variance. sigma = 0 gives the identity kernel. Each kernel is cut at its own
    :func:`blur_radius` (or at ``radius`` where that is smaller), renormalised, and 0 beyond: a
    batch's narrow kernels do not carry the widest one's length (the CPU blur skips the zeros).
    """
    sigma = sigma_pix.to(torch.float64).clamp_min(0.0)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64, device=sigma.device)
    safe_sigma = sigma.clamp_min(1e-6).unsqueeze(1)
    kernels = torch.exp(-0.5 * (taps / safe_sigma) ** 2)  # sampled
    own_radius = torch.ceil(BLUR_RADIUS_SIGMAS * sigma).clamp_min(MIN_BLUR_RADIUS)  # blur_radius, per kernel

    # exp(-t) I_n(t) = sum_k (t/2)^(2k+n) / (k! (k+n)!) * exp(-t), summed in log space; t < 1 needs
    # few terms (the k-th term shrinks like (t/2)^(2k) / k!^2). Used for the narrow kernels (at
    # sigma = 0 both forms are exactly the identity); computed for all, selected without a sync.
    narrow = (sigma > 0) & (sigma < SMALL_SIGMA_PIX)
    t = (sigma.clamp_max(SMALL_SIGMA_PIX) ** 2).view(-1, 1, 1)
    order = taps.abs().view(1, -1, 1)
    k = torch.arange(16, dtype=torch.float64, device=sigma.device).view(1, 1, -1)
    log_terms = torch.xlogy(2 * k + order, t / 2) - torch.lgamma(k + 1) - torch.lgamma(k + order + 1) - t
    kernels = torch.where(narrow.view(-1, 1), torch.exp(log_terms).sum(dim=-1), kernels)

    kernels = torch.where(taps.abs().view(1, -1) <= own_radius.view(-1, 1), kernels, torch.zeros((), dtype=kernels.dtype, device=kernels.device))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    return kernels.to(torch.float32)


def blur_radius(sigma_pix_max: float) -> int:
    """Kernel half-width (px): 4 sigma, at least 5.

    A Gaussian cut at 4 sigma keeps all but 6e-5 of its flux and 1e-3 of its variance; kernels of
    sigma < 1 px (discrete Gaussians) need the floor of 5 taps: their tails are heavier than sigma
    suggests (the n = 2 tap of sigma = 0.3 carries 8% of the variance, n >= 5 of sigma = 0.9 0.3%).
    """
    return max(MIN_BLUR_RADIUS, int(math.ceil(BLUR_RADIUS_SIGMAS * sigma_pix_max)))


def gaussian_blur_fwhm(image: torch.Tensor, fwhm_pix: torch.Tensor, radius: int | None = None) -> torch.Tensor:
    """A new batch with each image convolved with a circular Gaussian of FWHM ``fwhm_pix`` (pixels).

    ``fwhm_pix`` is (B,) (one width per image) or (B, C) (per band); planes with a FWHM of 0 are
    copied unchanged. Separable, with zero padding (sky-subtracted images have a sky level of 0),
    so flux within ``radius`` of the border partly leaves the image. Each axis is a batched
    matrix product with a banded (Toeplitz) matrix holding the 1-D kernel, ``T_H x T_W^T``, which
    for stamps runs several times faster than a grouped convolution with a kernel per plane.
    ``radius`` defaults to :func:`blur_radius` of the widest kernel (one host sync).
    """
    batch, channels, height, width = image.shape
    fwhm = fwhm_pix.to(device=image.device, dtype=torch.float32)
    sigma = (fwhm.view(batch, 1) if fwhm.dim() == 1 else fwhm) / FWHM_PER_SIGMA  # (B, 1) or (B, C)
    if radius is None:
        radius = blur_radius(float(sigma.max()) if sigma.numel() else 0.0)
    # one kernel per distinct width: per image when the bands share it
    kernels = gaussian_kernels_1d(sigma.reshape(-1), radius).view(batch, sigma.shape[1], -1).expand(batch, channels, -1)
    sigma = sigma.expand(batch, channels)
    # every plane, the unblurred ones through the identity kernel (exact): choosing the blurred
    # images first would make the host wait for the device
    kernels = kernels.to(image.dtype)
    return _banded(kernels, height, radius) @ image @ _banded(kernels, width, radius).transpose(-1, -2)


def _banded(kernels: torch.Tensor, size: int, radius: int) -> torch.Tensor:
    """(..., size, size) matrices ``T[i, j] = k[j - i + radius]`` (0 beyond the kernel): ``T @ v`` is
    the zero-padded correlation of ``v`` with ``k`` (a convolution, for symmetric kernels)."""
    offset = torch.arange(size, device=kernels.device)
    taps = offset.view(1, -1) - offset.view(-1, 1) + radius  # j - i + radius
    inside = (taps >= 0) & (taps <= 2 * radius)
    band = kernels[..., taps.clamp(0, 2 * radius)]  # (..., size, size)
    return band.masked_fill_(~inside, 0.0)


def blur_variance_factor(fwhm_pix: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum of the squared 2-D kernel weights: the factor by which blurring white noise scales its
    per-pixel variance (same shape as ``fwhm_pix``)."""
    sigma = (fwhm_pix.to(torch.float32) / FWHM_PER_SIGMA).reshape(-1)
    kernels = gaussian_kernels_1d(sigma, radius)
    return ((kernels**2).sum(dim=1) ** 2).view(fwhm_pix.shape)


def add_fwhm_in_quadrature(psf_fwhm: torch.Tensor, extra_fwhm: torch.Tensor) -> torch.Tensor:
    """FWHM after convolving a Gaussian PSF of ``psf_fwhm`` with one of ``extra_fwhm`` (same units)."""
    return torch.sqrt(psf_fwhm**2 + extra_fwhm**2)


# -- reddening -----------------------------------------------------------------------------------
def reddening_factor(delta_ebv: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """(B, C) flux factors ``10**(-0.4 R_b dE)`` for a change of E(B-V) ``delta_ebv`` (B,) mag and
    extinction coefficients ``coeffs`` (C,) = A_b / E(B-V)."""
    coeffs = coeffs.to(device=delta_ebv.device, dtype=torch.float32)
    return torch.pow(10.0, -0.4 * coeffs.view(1, -1) * delta_ebv.to(torch.float32).view(-1, 1))


def redden(image: torch.Tensor, delta_ebv: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Change the foreground extinction of each image by ``delta_ebv`` (B,): each band ``b`` dims by
    ``R_b * delta_ebv`` magnitudes (brightens where ``delta_ebv < 0``)."""
    factor = reddening_factor(delta_ebv, coeffs).to(image.dtype)
    return image * factor.view(*factor.shape, 1, 1)


# -- noise ---------------------------------------------------------------------------------------
def noise_sigma(
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    ivar: torch.Tensor | None = None,
    stride: int = 4,
) -> torch.Tensor:
    """(B, C) per-image, per-band pixel noise level in flux units.

    With ``ivar``: ``1 / sqrt(median ivar)`` over valid pixels with ``ivar > 0`` (the median of
    ``1/sqrt(ivar)``, since the map is monotonic). Without it, or in a band with no such pixel:
    ``1.4826 * MAD`` of the valid pixels (robust to the galaxy, which covers few pixels). Medians
    use every ``stride``-th pixel: 1/4 of a 64x64 image estimates a level to ~4% at 1/4 the cost.
    Medians are lower medians (``torch.nanmedian``'s). A band with no valid pixel at all gets 0.
    """
    batch, channels = image.shape[:2]
    if mask is not None and not may_be_true(mask):
        mask = None  # the usual case: no validity test per pixel
    valid = None if mask is None else ~mask.reshape(batch, channels, -1)[..., ::stride]
    if ivar is not None:
        median_ivar = masked_median(ivar.reshape(batch, channels, -1)[..., ::stride], valid, positive_only=True)
        sigma = torch.rsqrt(median_ivar)  # NaN where a band has no usable ivar
        if not may_be_true(~torch.isfinite(sigma)):  # the common case: no MAD needed
            return sigma
    values = image.reshape(batch, channels, -1)[..., ::stride]
    centre = masked_median(values, valid).unsqueeze(-1)
    mad_sigma = MAD_TO_SIGMA * masked_median((values - centre).abs(), valid)
    if ivar is not None:
        mad_sigma = torch.where(torch.isfinite(sigma), sigma, mad_sigma)
    return torch.nan_to_num(mad_sigma, nan=0.0)


def masked_median(values: torch.Tensor, valid: torch.Tensor | None = None, positive_only: bool = False) -> torch.Tensor:
    """Lower median along the last axis over the values that are not NaN, are ``valid`` (when
    given) and, with ``positive_only``, are > 0; NaN where none is (``torch.nanmedian``)."""
    usable = ~torch.isnan(values)
    if valid is not None:
        usable &= valid
    if positive_only:
        usable &= values > 0
    return torch.where(usable, values, torch.full((), float("nan"), dtype=values.dtype, device=values.device)).nanmedian(dim=-1).values


def quadrature_difference(target_sigma: torch.Tensor, current_sigma: torch.Tensor) -> torch.Tensor:
    """Noise to add so that the total reaches ``target_sigma``: ``sqrt(max(target^2 - current^2, 0))``."""
    return torch.sqrt((target_sigma**2 - current_sigma**2).clamp_min(0.0))


def add_gaussian_noise(
    image: torch.Tensor,
    sigma_add: torch.Tensor,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    ivar: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """New ``image + N(0, sigma_add[b, c]**2)`` per pixel and, when ``ivar`` is given, the new
    inverse variance (:func:`add_variance_to_ivar`). ``sigma_add`` is (B, C); planes where it is 0
    keep their pixels. Invalid pixels (``mask`` True) become 0.

    The noise is ``torch.randn`` from ``generator`` (see :func:`standard_normal`).
    """
    if mask is not None and not may_be_true(mask):
        mask = None
    sigma = sigma_add.to(device=image.device, dtype=image.dtype)
    # noise for every plane (times 0 where none is added: the pixels stay exact): choosing the
    # noisy images first would make the host wait for the device
    noise = standard_normal(tuple(image.shape), generator, image.device).to(image.dtype)
    out = noise.mul_(sigma.view(*sigma.shape, 1, 1)).add_(image)  # the fresh tensor holds the result
    if mask is not None:
        out.masked_fill_(mask, 0.0)
    return out, (None if ivar is None else add_variance_to_ivar(ivar, sigma_add**2))


def add_variance_to_ivar(ivar: torch.Tensor, extra_variance: torch.Tensor) -> torch.Tensor:
    """Inverse variance after adding independent noise of variance ``extra_variance`` (B, C);
    pixels with ``ivar == 0`` (invalid, unknown) stay 0, negative or NaN ``ivar`` become 0."""
    extra = extra_variance.to(ivar.dtype).view(*extra_variance.shape, 1, 1)
    out = torch.mul(ivar, extra).add_(1.0)
    torch.div(ivar, out, out=out)  # ivar / (1 + ivar * extra), in the temporary's memory
    if may_be_true(~(ivar >= 0)):  # a negative or NaN ivar
        out = torch.where(ivar > 0, out, torch.zeros_like(out))
    return out


# -- masking -------------------------------------------------------------------------------------
def random_patch_mask(
    batch_size: int,
    height: int,
    width: int,
    patch_size: int,
    fraction: float | torch.Tensor,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> torch.Tensor:
    """(B, H, W) bool: a grid of ``patch_size`` squares, each hidden independently with probability
    ``fraction`` (a float or (B,) per image), so the expected hidden area is ``fraction``."""
    rows, cols = math.ceil(height / patch_size), math.ceil(width / patch_size)
    fraction = torch.as_tensor(fraction, dtype=torch.float32, device=device).reshape(-1, 1, 1)
    hidden = uniform((batch_size, rows, cols), 0.0, 1.0, generator, device) < fraction
    full = hidden.repeat_interleave(patch_size, dim=1).repeat_interleave(patch_size, dim=2)
    return full[:, :height, :width]
