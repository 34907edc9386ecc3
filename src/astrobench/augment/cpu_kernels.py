"""Compiled CPU kernels (numba) for the view pipeline's heavy steps, each one pass over the batch.

Eager torch on a CPU spends most of an augmented batch on work these kernels skip: fresh
temporaries for every elementwise op, index_select/index_copy of the images an op touches, a
sampling grid in memory, sorts for medians, and a single-threaded Mersenne Twister for noise.

- :func:`add_gaussian_noise`: Box-Muller normals from a hashed Weyl sequence per (image, band),
  keyed from the batch's generator, added in the same pass, with the inverse-variance update;
  parallel over planes, and the numbers depend only on the seeds, not on the thread count. Every
  step is branch-free arithmetic that vectorises: ~1.6-2 ns a sample on one core here, against
  ~3.9-5 ns for the ziggurat it replaced (scalar: table lookups and rejections) and ~6 ns for
  ``torch.randn``.
- :func:`masked_median`: lower medians of the kept values per row: a sample brackets the median,
  then radix selection among the keys in the bracket.
- :func:`resample`: bilinear resampling through per-image matrices with the any-invalid mask rule,
  without a grid (``functional.resample_grid_sample`` is the reference): per output image a table
  of corners and weights built row by row in loops that vectorise, then one gather loop per band
  over a copy of the band in L1; optionally a per-plane factor in the same pass.
- :func:`gaussian_blur`: the separable PSF blur, both passes per plane in cache, each tap a long
  vector loop over the whole plane; the zero taps at the ends of a narrow kernel are skipped.
- :func:`scaled_asinh`: the normaliser, correctly rounded, with a vectorisable logarithm.

numba turns these into a few dozen lines each instead of a C++ extension to build. The kernels
compile on first use (seconds) and are cached on disk (``cache=True``). Other devices, and dtypes
other than float32, run the torch implementations in ``functional`` and ``datasets.normalize``,
which define the results: tests compare the two. The kernels use numba's OpenMP threading layer,
which (with GNU OpenMP) must not be used in a child forked after the parent ran a kernel: start
data-loading workers with ``spawn`` (astrobench itself never forks).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

__all__ = ["add_gaussian_noise", "gaussian_blur", "masked_median", "resample", "scaled_asinh", "NOISE_TAIL_LIMIT"]

# fast-math without nnan/ninf: NaN and inf keep their meaning
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _array(tensor: torch.Tensor | None, dtype: torch.dtype, ndim: int = 4) -> np.ndarray:
    """``tensor`` as a contiguous array of ``dtype``, or a one-element stand-in when it is None: a
    kernel takes every optional input as an array (with a flag saying whether it is real). An output
    passed through here must already be contiguous with ``dtype``, so the array shares its memory."""
    if tensor is None:
        return np.zeros((1,) * ndim, dtype=torch.empty((), dtype=dtype).numpy().dtype)
    return tensor.to(device="cpu", dtype=dtype).contiguous().numpy()



@numba.njit(inline="always")
def _splitmix64(z):
    # Steele, Lea & Flood (2014): splitmix64's output function, to turn a plane's seed into its keys
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _mix32(x):
    # lowbias32 (C. Wellons' hash prospector): a 32-bit bijection with a low avalanche bias. numba
    # widens uint32 arithmetic to 64 bits, so every step truncates back: LLVM then multiplies 32-bit
    # lanes (64-bit vector multiplies cost ~5x more here)
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x7FEB352D))
    x = np.uint32(x ^ (x >> np.uint32(15)))
    x = np.uint32(x * np.uint32(0x846CA68B))
    return np.uint32(x ^ (x >> np.uint32(16)))


# Box-Muller takes u1 = (k + 1) / 2^24 from the top 24 bits k of a hash (float32 holds every such
# u1 exactly), so |z| <= sqrt(48 ln 2) = 5.77: the normal puts 8e-9 of its mass beyond
_RADIUS_BITS = 24
NOISE_TAIL_LIMIT = math.sqrt(2.0 * _RADIUS_BITS * math.log(2.0))
_ANGLE_BITS = 24  # the angle's top bits of its hash: 2 for the quadrant, 22 within it
_QUADRANT_STEPS = 1 << (_ANGLE_BITS - 2)
_QUARTER = math.pi / 2
_CHUNK = 512  # pairs per pass: the scratch arrays stay in L1


# Box-Muller in four loops, each its own function over scratch arrays, so that each vectorises
# (in one function LLVM left some scalar). No libm calls and no branches; error_model="numpy" drops
# numba's zero test before each division, which also kept loops scalar.
@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _hash_pairs(weyl_start, weyl_step, pair_offset, count, radius, angle):
    """Pair j's 24 bits for the radius (2^24 u1, in ``radius``) and 24 for the angle (in
    ``angle``), as floats that hold them exactly: the hashes of points 2 (pair_offset + j) and
    2 (pair_offset + j) + 1 of the plane's Weyl sequence ``weyl_start + n * weyl_step`` (mod 2^32;
    the step is odd and differs between planes, so no plane's points are another's shifted)."""
    for j in range(count):
        position = np.uint32(np.uint32(pair_offset + j) * np.uint32(2))
        point = np.uint32(weyl_start + position * weyl_step)
        bits_radius = _mix32(point)
        bits_angle = _mix32(np.uint32(point + weyl_step))
        radius[j] = np.float32(np.int32(bits_radius >> np.uint32(32 - _RADIUS_BITS)) + np.int32(1))
        angle[j] = np.float32(np.int32(bits_angle >> np.uint32(32 - _ANGLE_BITS)))


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _split_float(count, radius, exponent):
    """radius -> its mantissa in [0.71, 1.41] (in place) and the exponent of u1 = radius / 2^24."""
    radius_bits = radius.view(np.int32)
    for j in range(count):
        bits = radius_bits[j]
        mantissa = (bits & 0x007FFFFF) | 0x3F800000  # the same mantissa with exponent 0: [1, 2)
        high = mantissa > 0x3FB504F3  # > sqrt 2: halve it
        exponent[j] = np.float32((bits >> 23) - 127 - _RADIUS_BITS + (1 if high else 0))
        radius_bits[j] = mantissa - 0x00800000 if high else mantissa


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _radii(count, scale, radius, exponent):
    """radius <- scale * sqrt(-2 ln u1), from the mantissa m and exponent e: ln u1 = e ln 2 + ln m."""
    for j in range(count):
        m = radius[j]
        s = (m - np.float32(1.0)) / (m + np.float32(1.0))  # |s| <= 0.172: ln m = 2 atanh s, to s^9
        s2 = s * s
        log_m = np.float32(2.0) * s * (np.float32(1.0) + s2 * (np.float32(1.0 / 3.0) + s2 * (np.float32(1.0 / 5.0) + s2 * (np.float32(1.0 / 7.0) + s2 * np.float32(1.0 / 9.0)))))
        log_u = exponent[j] * np.float32(math.log(2.0)) + log_m  # <= 0 up to rounding
        radius[j] = math.sqrt(max(np.float32(-2.0) * log_u, np.float32(0.0))) * scale


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _rotate_and_add(first, count, step, source, target, radius, angle):
    """target[first + j], target[first + j + step] = source + radius * (cos, sin) of pair j's
    angle: the quadrant q (its top 2 bits), then x uniform in [-pi/4, pi/4), where five terms of
    each series are exact to float32 (the normals are within 4e-7 of float64 Box-Muller's)."""
    for j in range(count):
        a = angle[j]
        q = np.int32(a * np.float32(1.0 / _QUADRANT_STEPS))
        x = (a - np.float32(q) * np.float32(_QUADRANT_STEPS) + np.float32(0.5)) * np.float32(_QUARTER / _QUADRANT_STEPS) - np.float32(_QUARTER / 2)
        x2 = x * x
        sine = x * (np.float32(1.0) + x2 * (np.float32(-1.0 / 6.0) + x2 * (np.float32(1.0 / 120.0) + x2 * (np.float32(-1.0 / 5040.0) + x2 * np.float32(1.0 / 362880.0)))))
        cosine = np.float32(1.0) + x2 * (np.float32(-0.5) + x2 * (np.float32(1.0 / 24.0) + x2 * (np.float32(-1.0 / 720.0) + x2 * np.float32(1.0 / 40320.0))))
        odd = (q & 1) == 1  # (cos, sin) of x + q pi/2
        cos_total = sine if odd else cosine
        sin_total = cosine if odd else sine
        cos_total = -cos_total if (q == 1 or q == 2) else cos_total
        sin_total = -sin_total if q >= 2 else sin_total
        r = radius[j]
        # unsigned indices: a signed one's wraparound test would stop vectorising
        pixel = np.uint64(first) + np.uint64(j)
        second = pixel + np.uint64(step)
        target[pixel] = source[pixel] + r * cos_total
        target[second] = source[second] + r * sin_total


@numba.njit(cache=True)
def _noisy_pairs(weyl_start, weyl_step, scale, first, count, step, source, target, radius, angle, exponent):
    """target[first + j] and target[first + j + step] = source + scale * (z1, z2) for j < count:
    the two normals of Box-Muller's pair ``first + j``."""
    _hash_pairs(weyl_start, weyl_step, first, count, radius, angle)
    _split_float(count, radius, exponent)
    _radii(count, scale, radius, exponent)
    _rotate_and_add(first, count, step, source, target, radius, angle)


@numba.njit(cache=True)
def _noisy_plane(seed, scale, source, target):
    """target = source + scale * N(0, 1) per pixel, from the Weyl sequence that ``seed`` keys:
    pair j's two normals go to pixels j and j + size // 2, so that both stores are contiguous."""
    keys = _splitmix64(seed)
    weyl_start = np.uint32(keys & np.uint64(0xFFFFFFFF))
    weyl_step = np.uint32(np.uint32(keys >> np.uint64(32)) | np.uint32(1))  # odd: the sequence visits 2^32 values
    size = source.size
    half = size // 2
    radius = np.empty(_CHUNK, np.float32)
    angle = np.empty(_CHUNK, np.float32)
    exponent = np.empty(_CHUNK, np.float32)
    scale32 = np.float32(scale)
    for start in range(0, half, _CHUNK):
        count = min(_CHUNK, half - start)
        _noisy_pairs(weyl_start, weyl_step, scale32, start, count, half, source, target, radius, angle, exponent)
    if size & 1:  # an odd plane's last pixel takes the first normal of one more pair
        pair = np.zeros(half + 2, np.float32)
        _noisy_pairs(weyl_start, weyl_step, scale32, half, 1, 1, np.zeros(half + 2, np.float32), pair, radius, angle, exponent)
        target[size - 1] = source[size - 1] + pair[half]


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _add_noise_kernel(image, sigma, seeds, invalid, has_mask, ivar, has_ivar, out, out_ivar):
    batch, channels, height, width = image.shape
    size = height * width
    for plane in numba.prange(batch * channels):
        b = plane // channels
        c = plane - b * channels
        scale = sigma[b, c]
        source = image[b, c].reshape(size)
        target = out[b, c].reshape(size)
        if scale > 0.0:
            # one stream per (image, band): the image's seed, decorrelated per band by a second constant
            _noisy_plane(seeds[b] ^ (np.uint64(c + 1) * np.uint64(0xD1B54A32D192ED03)), scale, source, target)
        else:
            target[:] = source
        if has_mask:
            flags = invalid[b, c].reshape(size)
            for i in range(size):
                if flags[i]:
                    target[i] = 0.0
        if has_ivar:
            # ivar / (1 + ivar sigma^2): the inverse of 1/ivar + sigma^2; 0 (unknown) stays 0, a
            # negative or NaN ivar becomes 0
            weights = ivar[b, c].reshape(size)
            weights_out = out_ivar[b, c].reshape(size)
            variance = scale * scale
            for i in range(size):
                w = weights[i]
                weights_out[i] = w / (1.0 + w * variance) if w > 0.0 else 0.0


def add_gaussian_noise(
    image: torch.Tensor,
    sigma_add: torch.Tensor,
    seeds: torch.Tensor,
    mask: torch.Tensor | None = None,
    ivar: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``image + N(0, sigma_add[b, c]**2)`` per pixel for a CPU (B, C, H, W) float32 tensor, and
    the matching inverse variance ``ivar / (1 + ivar sigma_add**2)`` when ``ivar`` is given.

    ``seeds`` (B,) int64 seed each image's streams; planes with ``sigma_add == 0`` are copied and
    draw nothing. Invalid pixels (``mask`` True) become 0. Returns new tensors ``(image, ivar)``.
    """
    if image.device.type != "cpu" or image.dim() != 4 or image.dtype != torch.float32:
        raise ValueError(
            f"add_gaussian_noise needs a (B, C, H, W) float32 CPU tensor, got {tuple(image.shape)} {image.dtype} on {image.device}"
        )
    batch, channels = image.shape[:2]
    if tuple(sigma_add.shape) != (batch, channels) or tuple(seeds.shape) != (batch,):
        raise ValueError(
            f"add_gaussian_noise: sigma_add must be {(batch, channels)} and seeds {(batch,)}, "
            f"got {tuple(sigma_add.shape)} and {tuple(seeds.shape)}"
        )
    out = torch.empty_like(image, memory_format=torch.contiguous_format)
    out_ivar = torch.empty_like(out) if ivar is not None else None
    _add_noise_kernel(
        _array(image, torch.float32),
        _array(sigma_add.detach(), torch.float64, 2),
        _array(seeds, torch.int64, 1).view(np.uint64),
        _array(mask, torch.bool),
        mask is not None,
        _array(ivar, torch.float32),
        ivar is not None,
        out.numpy(),
        _array(out_ivar, torch.float32),
    )
    return out, out_ivar


@numba.njit(parallel=True, cache=True)
def _masked_median_kernel(values, bits, valid, has_valid, positive_only, out):
    # bits: the same float32 values as uint32 bit patterns, for the radix selection
    rows, length = values.shape
    sign = np.uint32(0x80000000)
    for row in numba.prange(rows):
        # (numba hoists these allocations out of the loop: once per thread's share of the rows)
        keys = np.empty(length, np.uint32)
        window = np.empty(length, np.uint32)
        sample = np.empty(_SAMPLE, np.uint32)
        count = 0
        for i in range(length):
            v = values[row, i]
            if np.isnan(v) or (has_valid and not valid[row, i]) or (positive_only and not v > 0):
                continue
            # a uint32 whose unsigned order is the float order: set the sign bit of positives,
            # flip every bit of negatives
            pattern = bits[row, i]
            keys[count] = ~pattern if pattern & sign else pattern | sign
            count += 1
        if count == 0:
            out[row] = np.nan
            continue
        key = _select_key(keys, count, (count - 1) // 2, window, sample)  # the lower median, as torch.nanmedian
        result = np.empty(1, np.uint32)
        result[0] = key ^ sign if key & sign else ~key
        out[row] = result.view(np.float32)[0]


_SAMPLE = 128  # keys sampled to bracket a rank before the full pass


@numba.njit(cache=True)
def _select_key(keys, count, rank, window, sample):
    """The ``rank``-th smallest of ``keys[:count]``. Large rows first bracket it between two keys
    of an evenly spaced sample (ranks +-2 standard errors from the target's), then copy the keys in
    between to ``window`` in one pass and select among those; when the target falls outside the
    bracket (4% of the benchmark batch's image rows) the whole row is selected. ``sample`` holds
    ``_SAMPLE`` keys."""
    if count >= 4 * _SAMPLE:
        for j in range(_SAMPLE):
            sample[j] = keys[j * count // _SAMPLE]
        centre = rank * _SAMPLE // count
        margin = 12  # 2.1 standard errors of a sample median's rank
        low = _radix_select(sample, _SAMPLE, max(centre - margin, 0))
        high = _radix_select(sample, _SAMPLE, min(centre + margin, _SAMPLE - 1))
        below = inside = 0
        for i in range(count):  # branch-free: the bracket's tests mispredict on real data
            key = keys[i]
            window[inside] = key
            inside += (key >= low) & (key <= high)
            below += key < low
        if below <= rank < below + inside:
            return _radix_select(window, inside, rank - below)
    return _radix_select(keys, count, rank)


@numba.njit(cache=True)
def _radix_select(keys, count, rank):
    """The ``rank``-th smallest of ``keys[:count]`` (reordered in place) by radix selection: the
    bits above the highest one where the smallest and largest keys differ are the answer's; below,
    8-bit digits, each an histogram of the remaining candidates and then a compaction to those
    with the chosen digit. (Quickselect was ~4x slower on real data: its branches mispredict.)"""
    low = high = keys[0]
    for i in range(1, count):
        low = min(low, keys[i])
        high = max(high, keys[i])
    top = -1  # the highest differing bit
    while (low ^ high) >> np.uint32(top + 1):
        top += 1
    if top < 0:
        return low
    histogram = np.empty(256, np.int64)
    answer = low >> np.uint32(top) >> np.uint32(1) << np.uint32(1) << np.uint32(top)  # the shared bits
    while True:
        shift = np.uint32(max(top - 7, 0))
        digit_mask = np.uint32((1 << (top - shift + 1)) - 1)
        histogram[:] = 0
        for i in range(count):
            histogram[(keys[i] >> shift) & digit_mask] += 1
        digit = 0
        while rank >= histogram[digit]:
            rank -= histogram[digit]
            digit += 1
        answer |= np.uint32(digit) << shift
        if shift == 0:
            return answer
        kept = 0
        for i in range(count):  # branch-free: a branch here mispredicts on real data
            key = keys[i]
            keys[kept] = key
            kept += ((key >> shift) & digit_mask) == digit
        count = kept
        top = shift - 1


def masked_median(values: torch.Tensor, valid: torch.Tensor | None = None, positive_only: bool = False) -> torch.Tensor:
    """The lower median along the last axis of a CPU float tensor over the values that are not NaN,
    are ``valid`` (same shape; all when None) and, with ``positive_only``, are > 0; NaN where none
    is. ``torch.nanmedian`` of the masked values, by selection instead of a sort, in one pass."""
    if values.device.type != "cpu" or values.dtype != torch.float32:
        raise ValueError(f"masked_median runs on float32 CPU tensors, got {values.dtype} on {values.device}")
    length = values.shape[-1]
    flat = values.reshape(-1, length)  # strided rows (noise levels read every 4th pixel) as they are:
    # a contiguous copy would cost more than the kernel's strided reads
    keep = None if valid is None else valid.reshape(-1, length)
    out = torch.empty(flat.shape[0], dtype=values.dtype)
    bits = flat.view(torch.int32).numpy().view(np.uint32)
    _masked_median_kernel(flat.numpy(), bits, _array(keep, torch.bool, 2), valid is not None, bool(positive_only), out.numpy())
    return out.view(values.shape[:-1])



@numba.njit(inline="always")
def _sample_point(s00, s10, base_x, base_y, ux, last_x, last_y, tol):
    """The input point (px, py) read by an output pixel at column offset ``ux`` of a row, and
    whether it lies inside the image (within ``tol``); a point outside becomes (0, 0), inside, so
    that the tables built from it stay valid (the pixel's result is zeroed)."""
    px = s00 * ux + base_x
    py = s10 * ux + base_y
    inside = (px >= -tol) & (px <= last_x + tol) & (py >= -tol) & (py <= last_y + tol)
    return (px if inside else 0.0), (py if inside else 0.0), inside


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _resample_table_row(s00, s10, base_x, base_y, out_cx, width, height, tol, out_w, first, corners, weights, away):
    """The table of output pixels ``first .. first + out_w`` (one row): the four bilinear corners
    of each (flat indices clamped to the image, 4 per pixel) with their weights (0 for a corner
    outside: zero padding, grid_sample's padding_mode="zeros"), and whether the pixel is ``away``
    (its point lies outside the image by more than ``tol``). Branch-free and with unsigned indices,
    so that it vectorises."""
    last_x, last_y = np.float64(width - 1), np.float64(height - 1)
    for ox in range(out_w):
        k = np.uint64(first) + np.uint64(ox)
        px, py, inside = _sample_point(s00, s10, base_x, base_y, ox - out_cx, last_x, last_y, tol)
        away[k] = not inside
        x0f, y0f = np.floor(px), np.floor(py)
        fx, fy = px - x0f, py - y0f
        x0, y0 = np.int32(x0f), np.int32(y0f)
        x1, y1 = x0 + np.int32(1), y0 + np.int32(1)
        in_x0, in_y0, in_x1, in_y1 = x0 >= 0, y0 >= 0, x1 < width, y1 < height
        q = k * np.uint64(4)
        weights[q] = (1.0 - fx) * (1.0 - fy) if (in_x0 & in_y0) else 0.0
        weights[q + np.uint64(1)] = fx * (1.0 - fy) if (in_x1 & in_y0) else 0.0
        weights[q + np.uint64(2)] = (1.0 - fx) * fy if (in_x0 & in_y1) else 0.0
        weights[q + np.uint64(3)] = fx * fy if (in_x1 & in_y1) else 0.0
        cx0, cx1 = max(x0, np.int32(0)), min(x1, np.int32(width - 1))
        cy0, cy1 = max(y0, np.int32(0)), min(y1, np.int32(height - 1))
        corners[q] = np.uint32(cy0 * width + cx0)
        corners[q + np.uint64(1)] = np.uint32(cy0 * width + cx1)
        corners[q + np.uint64(2)] = np.uint32(cy1 * width + cx0)
        corners[q + np.uint64(3)] = np.uint32(cy1 * width + cx1)


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _resample_footprint_row(s00, s10, base_x, base_y, out_cx, width, height, tol, out_w, first, footprints):
    """The mask footprint of one row of output pixels, 4 flat indices each (the rule of
    ``functional.resample``): column floor(px + tol) and the next one unless it carries <= tol of
    the weight; rows likewise. Away pixels get any footprint inside: their result is invalid anyway."""
    last_x, last_y = np.float64(width - 1), np.float64(height - 1)
    for ox in range(out_w):
        k = np.uint64(first) + np.uint64(ox)
        px, py, _ = _sample_point(s00, s10, base_x, base_y, ox - out_cx, last_x, last_y, tol)
        sx0f, sy0f = np.floor(px + tol), np.floor(py + tol)
        sx0 = min(max(np.int32(sx0f), np.int32(0)), np.int32(width - 1))
        sy0 = min(max(np.int32(sy0f), np.int32(0)), np.int32(height - 1))
        sx1 = min(sx0 + np.int32(1), np.int32(width - 1)) if (px - sx0f) > tol else sx0
        sy1 = min(sy0 + np.int32(1), np.int32(height - 1)) if (py - sy0f) > tol else sy0
        q = k * np.uint64(4)
        footprints[q] = np.uint32(sy0 * width + sx0)
        footprints[q + np.uint64(1)] = np.uint32(sy0 * width + sx1)
        footprints[q + np.uint64(2)] = np.uint32(sy1 * width + sx0)
        footprints[q + np.uint64(3)] = np.uint32(sy1 * width + sx1)


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _gather(plane, corners, weights, pixels, values):
    """values[k] = the bilinear sum of pixel k's four weighted corners of ``plane``."""
    for k in range(pixels):
        q = np.uint64(k) * np.uint64(4)
        values[k] = (
            weights[q] * plane[corners[q]]
            + weights[q + np.uint64(1)] * plane[corners[q + np.uint64(1)]]
            + weights[q + np.uint64(2)] * plane[corners[q + np.uint64(2)]]
            + weights[q + np.uint64(3)] * plane[corners[q + np.uint64(3)]]
        )


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _resample_kernel(image, ivar, has_ivar, invalid, has_mask, matrix, tol, scale, has_scale, out_image, out_ivar, out_invalid, outside, groups):
    batch, channels, height, width = image.shape
    out_h, out_w = out_image.shape[2], out_image.shape[3]
    pixels, in_pixels = out_h * out_w, height * width
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    out_cx, out_cy = (out_w - 1) / 2.0, (out_h - 1) / 2.0
    # scratch per group of images, allocated once before the parallel loop (allocated inside it, the
    # kernel measured several times slower here). Per output image: a table of corners, weights
    # (in the image's dtype) and mask footprints, 4 per pixel side by side, built row by row in
    # loops that vectorise; then one gather loop per band reads through it.
    corner_table = np.empty((groups, 4 * pixels), np.uint32)
    weight_table = np.empty((groups, 4 * pixels), image.dtype)
    footprint_table = np.empty((groups, 4 * pixels), np.uint32)
    value_rows = np.empty((groups, pixels), image.dtype)
    plane_copies = np.empty((groups, in_pixels), image.dtype)
    flag_copies = np.empty((groups, in_pixels), np.bool_)
    for group in numba.prange(groups):
        corners, weights, footprints = corner_table[group], weight_table[group], footprint_table[group]
        values, plane, flags = value_rows[group], plane_copies[group], flag_copies[group]
        for b in range(group * batch // groups, (group + 1) * batch // groups):
            s00, s01, s02 = np.float64(matrix[b, 0, 0]), np.float64(matrix[b, 0, 1]), np.float64(matrix[b, 0, 2])
            s10, s11, s12 = np.float64(matrix[b, 1, 0]), np.float64(matrix[b, 1, 1]), np.float64(matrix[b, 1, 2])
            away = outside[b].reshape(pixels)
            for oy in range(out_h):
                uy = oy - out_cy
                # px = s00 ux + s01 uy + s02 + centre_x: the terms without ux once a row
                base_x, base_y = s01 * uy + s02 + centre_x, s11 * uy + s12 + centre_y
                _resample_table_row(s00, s10, base_x, base_y, out_cx, width, height, tol, out_w, oy * out_w, corners, weights, away)
                if has_mask:
                    _resample_footprint_row(s00, s10, base_x, base_y, out_cx, width, height, tol, out_w, oy * out_w, footprints)
            for c in range(channels):
                # each plane is copied first: the sequential read brings it into L1, where the
                # rotated (diagonal) reads below would otherwise miss on most cache lines (2.4x here)
                plane[:] = image[b, c].reshape(in_pixels)
                if has_mask:
                    flags[:] = invalid[b, c].reshape(in_pixels)
                    bad = out_invalid[b, c].reshape(pixels)
                    for k in range(pixels):
                        q = 4 * k
                        bad[k] = away[k] or flags[footprints[q]] or flags[footprints[q + 1]] or flags[footprints[q + 2]] or flags[footprints[q + 3]]
                else:
                    bad = away
                target = out_image[b, c].reshape(pixels)
                _gather(plane, corners, weights, pixels, values)
                factor = scale[b, c] if has_scale else np.float32(1.0)  # x 1 is exact; the scale's dtype otherwise
                for k in range(pixels):
                    target[k] = 0.0 if bad[k] else values[k] * factor
                if has_ivar:
                    plane[:] = ivar[b, c].reshape(in_pixels)
                    _gather(plane, corners, weights, pixels, values)
                    weights_out = out_ivar[b, c].reshape(pixels)
                    inverse_square = 1.0 / (factor * factor)
                    for k in range(pixels):
                        weights_out[k] = 0.0 if bad[k] else max(values[k], 0.0) * inverse_square


def resample(
    image: torch.Tensor,
    matrix: torch.Tensor,
    out_size: tuple[int, int],
    mask: torch.Tensor | None,
    ivar: torch.Tensor | None,
    tolerance: float,
    scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``functional.resample`` for CPU float tensors in one pass: bilinear values (zero padding),
    the any-invalid mask rule and the outside test, without a sampling grid in memory.

    ``matrix`` (B, 3, 3) already includes any extra offset; ``mask`` is None when nothing is invalid;
    ``scale`` (B, C) multiplies each output plane (and divides ivar by its square) when given.
    """
    batch, channels, height, width = image.shape
    out_h, out_w = int(out_size[0]), int(out_size[1])
    out_image = torch.empty((batch, channels, out_h, out_w), dtype=image.dtype)
    outside = torch.empty((batch, out_h, out_w), dtype=torch.bool)
    has_ivar, has_mask = ivar is not None, mask is not None
    out_ivar = torch.empty_like(out_image) if has_ivar else None
    out_invalid = torch.empty((batch, channels, out_h, out_w), dtype=torch.bool) if has_mask else None
    _resample_kernel(
        _array(image, image.dtype),
        _array(ivar, image.dtype),
        has_ivar,
        _array(mask, torch.bool),
        has_mask,
        _array(matrix.detach(), torch.float32, 3),
        float(tolerance),
        _array(None if scale is None else scale.detach(), image.dtype, 2),
        scale is not None,
        out_image.numpy(),
        _array(out_ivar, image.dtype),
        _array(out_invalid, torch.bool),
        outside.numpy(),
        min(batch, 4 * numba.get_num_threads()),  # groups of images, each with its own scratch
    )
    if has_mask:
        out_mask = out_invalid | outside.unsqueeze(1)
    else:
        out_mask = outside.unsqueeze(1).expand(batch, channels, out_h, out_w)
    return out_image, out_mask, out_ivar


@numba.njit(cache=True, fastmath=_FAST - {"reassoc"})  # contract, but keep the order of the additions
def _taps(accumulated, source, kernel, step):
    """``accumulated[i] += kernel[t] * source[i + t * step]`` for each tap ``t`` in order. Four taps
    per sweep keep the sum in a register (a quarter of the loads and stores of one sweep per tap);
    without ``reassoc`` the additions stay in the order of one tap at a time, so the bits do too."""
    n = accumulated.size
    taps = kernel.size
    t = 0
    while t + 4 <= taps:
        w0, w1, w2, w3 = kernel[t], kernel[t + 1], kernel[t + 2], kernel[t + 3]
        s0 = source[t * step : t * step + n]
        s1 = source[(t + 1) * step : (t + 1) * step + n]
        s2 = source[(t + 2) * step : (t + 2) * step + n]
        s3 = source[(t + 3) * step : (t + 3) * step + n]
        for i in range(n):
            accumulated[i] = accumulated[i] + w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
        t += 4
    while t < taps:
        w = kernel[t]
        s = source[t * step : t * step + n]
        for i in range(n):
            accumulated[i] = accumulated[i] + w * s[i]
        t += 1


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _blur_kernel(image, kernels, blur, out, groups):
    batch, channels, height, width = image.shape
    taps = kernels.shape[2]
    radius = taps // 2
    planes = batch * channels
    # Both passes run over whole planes flattened with the padded row stride, so each tap is one
    # long vector loop (the short per-row loops cost more in setup than in arithmetic); the columns
    # past ``width`` are computed and dropped. Scratch per group of planes; the zero padding is set
    # once and never written again. Taps are summed in order, from the first nonzero one, for every pixel.
    stride = width + 2 * radius
    padded_rows = height + 2 * radius
    padded_copies = np.zeros((groups, padded_rows * stride + taps), np.float32)
    row_passes = np.zeros((groups, padded_rows * stride), np.float32)
    column_passes = np.empty((groups, height * stride), np.float32)
    for group in numba.prange(groups):
        padded, rows, columns = padded_copies[group], row_passes[group], column_passes[group]
        for plane in range(group * planes // groups, (group + 1) * planes // groups):
            b = plane // channels
            c = plane - b * channels
            source_plane = image[b, c]
            target = out[b, c]
            if not blur[b, c]:
                for y in range(height):
                    target[y, :] = source_plane[y, :]
                continue
            # a narrow kernel in a batch of wider ones has zeros at both ends: skipped
            first = 0
            while first < radius and kernels[b, c, first] == 0.0 and kernels[b, c, taps - 1 - first] == 0.0:
                first += 1
            kernel = kernels[b, c, first : taps - first]
            for y in range(height):
                start = (radius + y) * stride + radius
                padded[start : start + width] = source_plane[y, :]
            inside = rows[radius * stride : (radius + height) * stride]  # the padding rows stay 0
            inside[:] = 0.0
            _taps(inside, padded[radius * stride + first :], kernel, 1)  # along x
            columns[:] = 0.0
            _taps(columns, rows[first * stride :], kernel, stride)  # along y
            for y in range(height):
                target[y, :] = columns[y * stride : y * stride + width]


def gaussian_blur(image: torch.Tensor, kernels: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """A new CPU float32 (B, C, H, W) tensor: each plane with ``blur[b, c]`` convolved separably with
    the symmetric 1-D kernel ``kernels[b, c]`` (odd length, zero padding), the others copied."""
    batch, channels = image.shape[:2]
    if image.device.type != "cpu" or image.dtype != torch.float32:
        raise ValueError(f"gaussian_blur needs a float32 CPU tensor, got {image.dtype} on {image.device}")
    if kernels.dim() != 3 or tuple(kernels.shape[:2]) != (batch, channels) or kernels.shape[2] % 2 != 1:
        raise ValueError(f"gaussian_blur: kernels must be ({batch}, {channels}, odd length), got {tuple(kernels.shape)}")
    out = torch.empty_like(image, memory_format=torch.contiguous_format)
    _blur_kernel(
        _array(image, torch.float32),
        _array(kernels, torch.float32, 3),
        _array(blur.expand(batch, channels), torch.bool, 2),
        out.numpy(),
        min(batch * channels, 4 * numba.get_num_threads()),  # groups of planes, each with its own scratch
    )
    return out


_LN2 = math.log(2.0)


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def _asinh_kernel(image, inverse_scale, invalid, has_mask, out):
    batch, channels, height, width = image.shape
    size = height * width
    for plane in numba.prange(batch * channels):
        b = plane // channels
        c = plane - b * channels
        source = image[b, c].reshape(size)
        target = out[b, c].reshape(size)
        factor = inverse_scale[c]
        # asinh|x| = log(h) + log 2 with h = (|x| + sqrt(x^2 + 1)) / 2 >= 1/2. log(h) is computed from
        # h's bits (exponent e, mantissa m: log h = e log 2 + log m) with a short odd series, in
        # loops without calls or branches, so they vectorise: libm's log does not, on CPU.
        halves = np.empty(size, np.float64)  # float64: h's rounding would cost 1e-7 absolute near 0
        for i in range(size):
            a = abs(np.float64(source[i]) * factor)
            halves[i] = a if a > 1e150 else 0.5 * (a + math.sqrt(a * a + 1.0))  # a * a overflows past 1e154
        half_bits = halves.view(np.int64)
        mantissas = np.empty(size, np.int64)
        for i in range(size):
            mantissas[i] = (half_bits[i] & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000  # the same mantissa, exponent 0
        mantissa_values = mantissas.view(np.float64)
        for i in range(size):
            h = halves[i]
            exponent = np.float64(((half_bits[i] >> 52) & 0x7FF) - 1023)
            m = mantissa_values[i]  # in [1, 2)
            high = m > 1.4142135623730951
            m = m * 0.5 if high else m  # now in [0.71, 1.41]: the series converges fast
            exponent = exponent + 1.0 if high else exponent
            s = (m - 1.0) / (m + 1.0)  # |s| <= 0.172; log m = 2 atanh(s), truncated after s^11: < 1e-11
            s2 = s * s
            log_m = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0))))))
            magnitude = exponent * _LN2 + log_m + _LN2
            magnitude = math.inf if h == math.inf else magnitude
            magnitude = h if h != h else magnitude  # NaN stays NaN
            a = abs(np.float64(source[i]) * factor)
            magnitude = a - a * a * a / 6.0 if a < 1e-4 else magnitude  # below, 1 + a rounds off a's digits
            target[i] = math.copysign(np.float32(magnitude), source[i])
        if has_mask:
            flags = invalid[b, c].reshape(size)
            for i in range(size):
                if flags[i]:
                    target[i] = 0.0


def scaled_asinh(image: torch.Tensor, scales: tuple[float, ...], mask: torch.Tensor | None = None) -> torch.Tensor:
    """A new ``asinh(image / scales[c])`` per band for a CPU float32 (B, C, H, W) tensor, 0 where
    ``mask`` is True: the normaliser's work in one pass (``datasets.normalize.Normalizer``)."""
    if image.device.type != "cpu" or image.dtype != torch.float32 or image.dim() != 4:
        raise ValueError(f"scaled_asinh needs a (B, C, H, W) float32 CPU tensor, got {tuple(image.shape)} {image.dtype} on {image.device}")
    if len(scales) != image.shape[1]:
        raise ValueError(f"scaled_asinh: {len(scales)} scales for {image.shape[1]} bands")
    out = torch.empty(image.shape, dtype=torch.float32)
    inverse = np.array([1.0 / s for s in scales], dtype=np.float64)
    _asinh_kernel(_array(image, torch.float32), inverse, _array(mask, torch.bool), mask is not None, out.numpy())
    return out
