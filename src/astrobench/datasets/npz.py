"""NumPy ``.npz`` scenes or cutout stacks, e.g. the HSC blend scenes used by scarlet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets._source_utils import assemble, parse_bands, psf_fwhm_pixels
from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.registry import register_dataset

# LSST/HSC pipeline mask planes that mark defects (BAD, SAT, INTRP, CR, EDGE, SUSPECT, NO_DATA).
# DETECTED (bit 5) and DETECTED_NEGATIVE (bit 6) mark source footprints, not bad pixels; planes above
# bit 8 are assigned per data release, so check the release's header before adding them.
HSC_DEFECT_BITS: tuple[int, ...] = (0, 1, 2, 3, 4, 7, 8)


@register_dataset("npz")
class NpzSource(DataSource):
    """Images in a NumPy ``.npz`` file (read with ``allow_pickle=False``): one scene or a stack.

    Options:
        path: the ``.npz`` file. A 3-D image array ``(C, H, W)`` is one object (id: the file name
            without suffix); a 4-D array ``(N, C, H, W)`` is N objects (ids ``<name>_<i>``).
        image_key: array of fluxes.
        variance_key: array of per-pixel variances (ivar = 1/variance; variance <= 0 or non-finite
            marks the pixel invalid); None or absent: no ivar.
        mask_key: array of flags with the image's shape; None or absent: no flags.
        mask_convention: ``"bits"`` (an integer bit mask: a set bit among ``mask_bits`` flags the
            pixel, so mask True), ``"invalid"`` (True/non-zero = invalid) or ``"valid"`` (True =
            good pixel, inverted here). Never guessed.
        mask_bits: with ``"bits"``, which bit numbers flag a pixel; None: every set bit (the file's
            own statement that the pixel is flagged). ``HSC_DEFECT_BITS`` keeps only defect planes.
        bands_key: array of band names (``filters`` in scarlet files); ``bands`` overrides it.
        bands: band names; must match the number of image planes.
        psf_key: per-band PSF images ``(C, h, w)``; their half-maximum width gives ``psf_fwhm``.
        pixel_scale: arcsec per pixel (npz files carry no WCS; None leaves it unknown, NaN).
    """

    def __init__(
        self,
        path: str,
        image_key: str = "images",
        variance_key: str | None = "variance",
        mask_key: str | None = "mask",
        mask_convention: str = "bits",
        mask_bits: list[int] | None = None,
        bands_key: str | None = "filters",
        bands: list[str] | None = None,
        psf_key: str | None = "psfs",
        pixel_scale: float | None = None,
    ) -> None:
        if mask_convention not in ("bits", "invalid", "valid"):
            raise DataError(f"mask_convention must be 'bits', 'invalid' or 'valid', got {mask_convention!r}")
        if mask_bits is not None and any(not 0 <= b < 64 for b in mask_bits):
            raise DataError(f"mask_bits must be bit numbers 0-63, got {list(mask_bits)}")
        self.path = str(path)
        self.image_key = image_key
        self.variance_key = variance_key
        self.mask_key = mask_key
        self.mask_convention = mask_convention
        self.mask_bits = list(mask_bits) if mask_bits is not None else None
        self.bands_key = bands_key
        self.bands = list(bands) if bands is not None else None
        self.psf_key = psf_key
        self.pixel_scale = pixel_scale

    def options(self) -> dict[str, Any]:
        names = ("path", "image_key", "variance_key", "mask_key", "mask_convention", "mask_bits",
                 "bands_key", "bands", "psf_key", "pixel_scale")  # fmt: skip
        return {name: getattr(self, name) for name in names}

    def load(self, cache_dir: Path | None = None) -> SurveyData:
        path = Path(self.path)
        if not path.is_file():
            raise DataError(f"npz file {path} does not exist")
        import zipfile

        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
        with archive:
            arrays = {key: archive[key] for key in archive.files}
        return self._convert(path, arrays)

    def _convert(self, path: Path, arrays: dict[str, np.ndarray]) -> SurveyData:
        if self.image_key not in arrays:
            raise DataError(f"{path}: no array {self.image_key!r}; it has {sorted(arrays)}")
        image = arrays[self.image_key]
        single = image.ndim == 3
        if image.ndim not in (3, 4):
            raise DataError(f"{path}: {self.image_key!r} has shape {image.shape}; expected (C, H, W) or (N, C, H, W)")
        image = image[None] if single else image
        n, c = image.shape[:2]
        invalid = self._flags(path, arrays, image.shape, single)
        ivar = None
        if self.variance_key and self.variance_key in arrays:
            variance = self._like_image(path, arrays, self.variance_key, image.shape, single).astype(np.float64)
            usable = np.isfinite(variance) & (variance > 0)
            invalid |= ~usable
            ivar = np.where(usable, 1.0 / np.where(usable, variance, 1.0), 0.0).astype(np.float32)
        bands = self._bands(path, arrays, c)
        stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.stem
        ids = np.array([stem] if single else [f"{stem}_{i}" for i in range(n)])
        return assemble(
            origin=str(path),
            object_id=ids,
            image=image.astype(np.float32),
            invalid=invalid,
            bands=bands,
            pixel_scale=np.nan if self.pixel_scale is None else float(self.pixel_scale),
            psf_fwhm=self._psf_fwhm(path, arrays, c),
            ivar=ivar,
            manifest={"source": "npz", "options": self.options()},
        )

    def _like_image(self, path: Path, arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...], single: bool) -> np.ndarray:
        values = arrays[key]
        values = values[None] if single else values
        if values.shape != shape:
            raise DataError(f"{path}: {key!r} has shape {values.shape}, the images {shape}")
        return values

    def _flags(self, path: Path, arrays: dict[str, np.ndarray], shape: tuple[int, ...], single: bool) -> np.ndarray:
        if not self.mask_key or self.mask_key not in arrays:
            return np.zeros(shape, dtype=bool)
        flags = self._like_image(path, arrays, self.mask_key, shape, single)
        if self.mask_convention == "valid":
            return ~flags.astype(bool)
        if self.mask_convention == "invalid":
            return flags.astype(bool)
        if flags.dtype.kind not in "iu":
            raise DataError(f"{path}: mask_convention='bits' needs an integer mask, {self.mask_key!r} is {flags.dtype}")
        selected = ~0 if self.mask_bits is None else sum(1 << b for b in self.mask_bits)
        return (flags.astype(np.int64) & selected) != 0

    def _bands(self, path: Path, arrays: dict[str, np.ndarray], n_channels: int) -> list[str]:
        bands = self.bands
        if bands is None and self.bands_key and self.bands_key in arrays:
            bands = parse_bands(arrays[self.bands_key])
        if bands is None:
            raise DataError(f"{path}: no band names (array {self.bands_key!r}); pass bands=[...] for {n_channels} planes")
        if len(bands) != n_channels:
            raise DataError(f"{path}: {len(bands)} bands {list(bands)} for {n_channels} image planes")
        return list(bands)

    def _psf_fwhm(self, path: Path, arrays: dict[str, np.ndarray], n_channels: int) -> np.ndarray | None:
        if not self.psf_key or self.psf_key not in arrays or self.pixel_scale is None:
            return None
        psfs = arrays[self.psf_key]
        if psfs.ndim != 3 or psfs.shape[0] != n_channels:
            raise DataError(f"{path}: {self.psf_key!r} has shape {psfs.shape}; expected ({n_channels}, h, w)")
        return np.array([psf_fwhm_pixels(p) for p in psfs], dtype=np.float32) * float(self.pixel_scale)
