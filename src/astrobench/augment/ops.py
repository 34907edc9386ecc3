"""The built-in augmentations (DESIGN section 5), batched, with parameters drawn per image.

========  ==================  ======  =========================================================
code      class               p       per-image parameters
========  ==================  ======  =========================================================
``RR``    RandomRotation      1.0     angle ~ U[0, 360) deg, left-right mirror with prob. 1/2
``JC``    JitterCrop          1.0     crop centre shift ~ U[-7, 7] px on each axis
``GN``    GaussianNoise       0.8     per band, total noise = U[1, 3] x a survey noise level
``GR``    GalacticReddening   0.8     new E(B-V) ~ U[0, 0.5]
``PS``    PSFSmoothing        0.5     extra PSF FWHM ~ U[0, 1.5] arcsec
``FL``    RandomFlip          0.5     left-right mirror
``MK``    RandomMask          0.5     8 px patches hidden with probability 0.1 each
========  ==================  ======  =========================================================

Default probabilities: rotation and jitter are symmetries of the sky and are always on (Hayat et
al. 2021, Stein et al. 2021). The physical ops follow SimCLR's split between colour jitter
(p = 0.8; reddening and noise change colours and depth) and blur (p = 0.5): every view still has a
fair chance of keeping the survey's own extinction, depth and seeing, so the encoder also learns
the unaugmented data it will embed.

Geometric ops (RR, JC, FL) produce per-image *sampling matrices*; applied alone each resamples
once, and ``ViewPipeline`` composes the matrices of consecutive geometric ops so that rotation,
flip and jitter-crop cost a single bilinear ``grid_sample``. Reddening (GR) produces per-plane
flux factors, which ``ViewPipeline`` applies in that same resampling.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from astrobench.augment import functional as AF
from astrobench.augment.base import Augmentation, AugBatch
from astrobench.photometry import extinction_coefficients
from astrobench.registry import register_augmentation


def _require(batch: AugBatch, key: str, op: str) -> torch.Tensor:
    if key not in batch or batch[key] is None:
        raise KeyError(f"augmentation {op} needs the batch field {key!r}, which this batch lacks")
    return batch[key]  # type: ignore[return-value]


def _check_range(name: str, low: float, high: float, op: str) -> None:
    if not 0.0 <= low <= high:
        raise ValueError(f"{op}: need 0 <= {name} minimum <= maximum, got [{low}, {high}]")


# -- geometric ops ------------------------------------------------------------------------------
def apply_geometry(
    batch: AugBatch,
    matrix: torch.Tensor,
    out_size: tuple[int, int],
    extra_offset: torch.Tensor | None = None,
    plane_scale: torch.Tensor | None = None,
) -> AugBatch:
    """Resample image, mask and ivar of ``batch`` through per-image sampling ``matrix`` (B, 3, 3).

    One bilinear resampling (``functional.resample``); pixels read from outside the image are 0 and
    invalid. Per-image scalars (psf_fwhm, ebv, pixel_scale) are unchanged: rotations and shifts
    keep the pixel scale. ``plane_scale`` (B, C), when given, multiplies each output plane (and
    divides its ivar by the square) in the same pass: a pending :class:`PlaneScaleAugmentation`.
    """
    image = batch["image"]
    out_image, out_mask, out_ivar = AF.resample(
        image, matrix, out_size, mask=batch.get("mask"), ivar=batch.get("ivar"), extra=extra_offset, scale=plane_scale
    )
    out = dict(batch)
    out["image"], out["mask"] = out_image, out_mask
    if out_ivar is not None:
        out["ivar"] = out_ivar
    return out  # type: ignore[return-value]


def scale_planes(batch: AugBatch, factors: torch.Tensor) -> AugBatch:
    """``batch`` with each (image, band) plane multiplied by ``factors`` (B, C), and ivar divided
    by their square (noise scales with the flux)."""
    image = batch["image"]
    factors = factors.to(device=image.device, dtype=image.dtype).view(*factors.shape, 1, 1)
    out = dict(batch)
    out["image"] = image * factors
    if batch.get("ivar") is not None:
        out["ivar"] = batch["ivar"] / factors.to(batch["ivar"].dtype) ** 2
    return out  # type: ignore[return-value]


class PlaneScaleAugmentation(Augmentation):
    """An op that multiplies each (image, band) plane by a factor (B, C) and updates other fields.

    ``ViewPipeline`` does not spend a pass over the batch on the multiplication: it carries the
    factors past the ops that commute with it (``commutes_with_plane_scale``) and applies them in
    the resampling, or before the first op that does not commute. Called alone, the op multiplies.
    """

    reads_ivar = False
    commutes_with_plane_scale = True

    @abstractmethod
    def plane_factors(self, batch: AugBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, AugBatch]:
        """(B, C) factors, and ``batch`` with every field but image and ivar updated."""

    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> AugBatch:
        factors, out = self.plane_factors(batch, generator)
        return scale_planes(out, factors)


class GeometricAugmentation(Augmentation):
    """An op that moves pixels: it draws a sampling matrix per image (identity where not applied)."""

    geometric = True
    reads_ivar = False
    commutes_with_plane_scale = True

    @abstractmethod
    def sampling_matrix(self, batch: AugBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, 3) float32: output pixel offsets -> input offsets (see ``functional.sampling_matrix``)."""

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (height, width) for an input of ``height x width``; most ops keep it."""
        return height, width

    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> AugBatch:
        height, width = batch["image"].shape[-2:]
        return apply_geometry(batch, self.sampling_matrix(batch, generator), self.output_size(height, width))


@register_augmentation("RR")
class RandomRotation(GeometricAugmentation):
    """Rotation by an angle ~ U[0, 360) degrees per image, after a left-right mirror with
    probability 1/2 when ``flip`` (mirror + any rotation covers every orientation, so one mirror
    axis is enough). Bilinear; corners read from outside the image become 0 and invalid."""

    code = "RR"

    def __init__(self, p: float = 1.0, flip: bool = True):
        super().__init__(p)
        self.flip = bool(flip)

    def sampling_matrix(self, batch: AugBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        image = batch["image"]
        size, device = image.shape[0], image.device
        apply = self.draw_apply(size, device, generator)
        angle = AF.uniform((size,), 0.0, 360.0, generator, device)
        mirror = AF.uniform((size,), 0.0, 1.0, generator, device) < 0.5
        mirror = mirror & apply if self.flip else torch.zeros_like(apply)
        angle = torch.where(apply, angle, torch.zeros_like(angle))
        return AF.rotation_flip_matrix(angle, mirror)


@register_augmentation("JC")
class JitterCrop(GeometricAugmentation):
    """Crop ``out_size`` px (default: the input size) around the image centre moved by a shift
    ~ U[-max_shift_pix, max_shift_pix] on each axis per image (sub-pixel, bilinear). Where the op
    is not applied the crop is centred. Pixels read from outside the input are 0 and invalid: crop
    from a cutout at least ``out_size + 2 max_shift_pix`` wide to avoid them (Hayat et al.)."""

    code = "JC"

    def __init__(self, p: float = 1.0, max_shift_pix: float = 7.0, out_size: int | None = None):
        super().__init__(p)
        if max_shift_pix < 0:
            raise ValueError(f"JitterCrop: max_shift_pix must be >= 0, got {max_shift_pix}")
        if out_size is not None and out_size <= 0:
            raise ValueError(f"JitterCrop: out_size must be a positive number of pixels, got {out_size}")
        self.max_shift_pix = float(max_shift_pix)
        self.out_size = None if out_size is None else int(out_size)

    def sampling_matrix(self, batch: AugBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        image = batch["image"]
        size, device = image.shape[0], image.device
        apply = self.draw_apply(size, device, generator)
        shift = AF.uniform((size, 2), -self.max_shift_pix, self.max_shift_pix, generator, device)
        shift = torch.where(apply.unsqueeze(1), shift, torch.zeros_like(shift))
        return AF.translation_matrix(shift)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return (height, width) if self.out_size is None else (self.out_size, self.out_size)


@register_augmentation("FL")
class RandomFlip(GeometricAugmentation):
    """Left-right mirror with probability ``p`` (exact: a mirror reads pixel centres)."""

    code = "FL"

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def sampling_matrix(self, batch: AugBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        image = batch["image"]
        apply = self.draw_apply(image.shape[0], image.device, generator)
        return AF.rotation_flip_matrix(torch.zeros(image.shape[0], device=image.device), apply)


# -- photometric ops ----------------------------------------------------------------------------
@register_augmentation("GN")
class GaussianNoise(Augmentation):
    """Extra Gaussian sky noise, per band, so that an image looks like a shallower survey image.

    Rule, per image ``i`` and band ``b`` (for the images chosen with probability ``p``):

    1. current level ``s_ib`` = ``1/sqrt(median ivar)`` over valid pixels, or ``1.4826 x MAD`` of
       the valid pixels where the batch has no ivar (``functional.noise_sigma``);
    2. a reference level from the survey's noise distribution: ``s_jb`` of an image ``j`` drawn
       uniformly from the batch (one ``j`` per image, shared by its bands, so that band noise
       ratios stay those of a real image); ``j = i`` when ``reference_from_batch`` is False;
    3. a target total level ``f x s_jb`` with ``f ~ U[min_factor, max_factor]`` per band;
    4. add ``N(0, a^2)`` with ``a = sqrt(max(target^2 - s_ib^2, 0))`` (noise adds in quadrature,
       as in Stein et al. 2021: augment only by the difference in depth) and update
       ``ivar <- 1 / (1/ivar + a^2)`` (unless the batch says ``keep_ivar`` False: then no ivar is
       returned).

    With one noise level across the batch this reduces to "total noise = U[1, 3] x own noise".
    Invalid pixels stay 0.
    """

    code = "GN"

    def __init__(self, p: float = 0.8, min_factor: float = 1.0, max_factor: float = 3.0, reference_from_batch: bool = True):
        super().__init__(p)
        _check_range("factor", min_factor, max_factor, "GaussianNoise")
        self.min_factor = float(min_factor)
        self.max_factor = float(max_factor)
        self.reference_from_batch = bool(reference_from_batch)

    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> AugBatch:
        image = batch["image"]
        size, channels, device = image.shape[0], image.shape[1], image.device
        mask, ivar = batch.get("mask"), batch.get("ivar")
        if mask is not None and not AF.may_be_true(mask):
            mask = None  # checked once here for both steps below
        apply = self.draw_apply(size, device, generator)
        current = AF.noise_sigma(image, mask, ivar)
        if self.reference_from_batch:
            reference_index = (AF.uniform((size,), 0.0, 1.0, generator, device) * size).long().clamp_max(size - 1)
            reference = current[reference_index]
        else:
            reference = current
        factor = AF.uniform((size, channels), self.min_factor, self.max_factor, generator, device)
        sigma_add = AF.quadrature_difference(factor * reference, current)
        sigma_add = torch.where(apply.unsqueeze(1), sigma_add, torch.zeros_like(sigma_add))

        out = dict(batch)
        update_ivar = ivar is not None and batch.get("keep_ivar", True)
        # draws only where sigma_add > 0; the same numbers with or without the ivar update
        out["image"], new_ivar = AF.add_gaussian_noise(image, sigma_add, generator, mask, ivar if update_ivar else None)
        if update_ivar:
            out["ivar"] = new_ivar
        else:
            out.pop("ivar", None)
        return out  # type: ignore[return-value]


@register_augmentation("GR")
class GalacticReddening(PlaneScaleAugmentation):
    """De-redden with each image's E(B-V), re-redden with a new E(B-V) ~ U[0, ebv_max]:
    ``flux_b *= 10**(-0.4 R_b (E_new - E_old))`` with ``R_b`` from
    ``photometry.extinction_coefficients(bands, survey)``. Updates ``ebv`` and scales ``ivar`` by
    the inverse square of the flux factor. An unknown (NaN) E(B-V) is taken as 0: the image is
    only reddened."""

    code = "GR"
    needs_flux = True

    def __init__(self, p: float = 0.8, ebv_max: float = 0.5, survey: str | None = None):
        super().__init__(p)
        if ebv_max < 0:
            raise ValueError(f"GalacticReddening: ebv_max must be >= 0, got {ebv_max}")
        self.ebv_max = float(ebv_max)
        self.survey = survey
        self._coefficients: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}

    def coefficients(self, bands: tuple[str, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """(C,) extinction coefficients R_b = A_b / E(B-V) of ``bands`` on ``device`` (cached per
        band tuple and device: a copy to a GPU per call would make the host wait for it)."""
        key = (tuple(bands), str(device))
        if key not in self._coefficients:
            values = extinction_coefficients(tuple(bands), self.survey)
            self._coefficients[key] = torch.tensor(values, dtype=torch.float32).to(device)
        return self._coefficients[key]

    def plane_factors(self, batch: AugBatch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, AugBatch]:
        image = batch["image"]
        size, device = image.shape[0], image.device
        coeffs = self.coefficients(tuple(_require(batch, "bands", "GR")), device)
        old_ebv = torch.nan_to_num(_require(batch, "ebv", "GR").to(device=device, dtype=torch.float32), nan=0.0)
        apply = self.draw_apply(size, device, generator)
        new_ebv = AF.uniform((size,), 0.0, self.ebv_max, generator, device)
        new_ebv = torch.where(apply, new_ebv, old_ebv)
        factor = AF.reddening_factor(new_ebv - old_ebv, coeffs).to(image.dtype)  # (B, C)
        return factor, {**batch, "ebv": new_ebv}  # type: ignore[return-value]


@register_augmentation("PS")
class PSFSmoothing(Augmentation):
    """Gaussian blur with an extra FWHM ~ U[fwhm_arcsec_min, fwhm_arcsec_max] **arcsec** per image
    (all bands), converted with each image's pixel scale: ``sigma_pix = fwhm / pixel_scale / 2.3548``.

    Updates ``psf_fwhm`` in quadrature (Gaussian PSFs: ``sqrt(old^2 + extra^2)``) and ``ivar``
    by the blur's white-noise variance factor ``sum(k^2)`` (blurred noise is also correlated,
    which a per-pixel ivar cannot hold). Invalid pixels stay 0 and invalid; zero padding at
    the borders. The default 1.5 arcsec turns SDSS's median 1.4 arcsec seeing into up to ~2 arcsec.
    """

    code = "PS"
    reads_ivar = False
    needs_flux = True
    commutes_with_plane_scale = True  # a convolution, and an ivar factor

    def __init__(self, p: float = 0.5, fwhm_arcsec_max: float = 1.5, fwhm_arcsec_min: float = 0.0):
        super().__init__(p)
        _check_range("fwhm_arcsec", fwhm_arcsec_min, fwhm_arcsec_max, "PSFSmoothing")
        self.fwhm_arcsec_max = float(fwhm_arcsec_max)
        self.fwhm_arcsec_min = float(fwhm_arcsec_min)

    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> AugBatch:
        image = batch["image"]
        size, device = image.shape[0], image.device
        pixel_scale = _require(batch, "pixel_scale", "PS").to(device=device, dtype=torch.float32).reshape(size)
        apply = self.draw_apply(size, device, generator)
        extra_arcsec = AF.uniform((size,), self.fwhm_arcsec_min, self.fwhm_arcsec_max, generator, device)
        extra_arcsec = torch.where(apply, extra_arcsec, torch.zeros_like(extra_arcsec))
        extra_pix = extra_arcsec / pixel_scale

        out = dict(batch)
        # the kernel length is a shape, so the widest kernel is read on the host: the op's one sync
        radius = AF.blur_radius(float(extra_pix.max()) / AF.FWHM_PER_SIGMA)
        blurred = AF.gaussian_blur_fwhm(image, extra_pix, radius)  # identity kernels where not chosen
        mask = batch.get("mask")
        if mask is not None and AF.may_be_true(mask):
            blurred.masked_fill_(mask, 0.0)
        out["image"] = blurred
        if batch.get("ivar") is not None:
            variance_factor = AF.blur_variance_factor(extra_pix, radius).view(size, 1, 1, 1)
            out["ivar"] = batch["ivar"] / variance_factor.to(batch["ivar"].dtype)
        if batch.get("psf_fwhm") is not None:
            out["psf_fwhm"] = AF.add_fwhm_in_quadrature(batch["psf_fwhm"], extra_arcsec.view(size, 1).to(batch["psf_fwhm"].dtype))
        return out  # type: ignore[return-value]


@register_augmentation("MK")
class RandomMask(Augmentation):
    """Hide random square patches (all bands): on a grid of ``patch_size`` px squares each patch is
    hidden with probability ``fraction``; hidden pixels become 0, invalid, and ivar 0."""

    code = "MK"
    reads_ivar = False
    commutes_with_plane_scale = True  # zeroes pixels

    def __init__(self, p: float = 0.5, fraction: float = 0.1, patch_size: int = 8):
        super().__init__(p)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"RandomMask: fraction must be in [0, 1], got {fraction}")
        if patch_size < 1:
            raise ValueError(f"RandomMask: patch_size must be >= 1 px, got {patch_size}")
        self.fraction = float(fraction)
        self.patch_size = int(patch_size)

    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> AugBatch:
        image = batch["image"]
        size, _, height, width = image.shape
        apply = self.draw_apply(size, image.device, generator)
        fraction = torch.where(apply, self.fraction, 0.0)
        hidden = AF.random_patch_mask(size, height, width, self.patch_size, fraction, generator, image.device)
        hidden = hidden.unsqueeze(1)
        out = dict(batch)
        out["image"] = image.masked_fill(hidden, 0.0)
        mask = batch.get("mask")
        out["mask"] = hidden.expand_as(image) if mask is None else mask | hidden
        if batch.get("ivar") is not None:
            out["ivar"] = batch["ivar"].masked_fill(hidden, 0.0)
        return out  # type: ignore[return-value]
