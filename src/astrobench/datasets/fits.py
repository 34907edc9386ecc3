"""FITS cutouts: a folder of cubes, a catalogue of per-object or per-band files, or cutouts by RA/Dec."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets._source_utils import (
    catalog_labels,
    area_resample,
    assemble,
    centre_crop,
    numeric_column,
    parse_bands,
    psf_fwhm_pixels,
    read_catalog,
    require_columns,
    unique_ids,
)
from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.registry import register_dataset

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz")


def is_fits_file(path: Path) -> bool:
    return path.name.lower().endswith(FITS_SUFFIXES)


@dataclass
class _Plane:
    """Pixels of one object as read from its file(s), before resizing."""

    image: np.ndarray  # (C, H, W) float32
    invalid: np.ndarray  # (C, H, W) bool
    ivar: np.ndarray | None
    header: Any
    file: Path


@register_dataset("fits")
class FitsSource(DataSource):
    """Cutouts in FITS files, read into the common schema.

    Layouts:
        * a single file or a folder of files, one ``(C, H, W)`` cube (or 2-D image) per object; the
          object id is the file name without suffix; RA/Dec come from the WCS at the centre pixel;
        * a catalogue (CSV or FITS table) with an id column, a file column (one cube per object) or
          one column per band named ``<file_column>_<band>`` (one 2-D file per band), and labels;
        * ``cutout=True``: each catalogue row names a larger image and its ``ra``/``dec``; a
          ``size x size`` cutout is made through the WCS (astropy ``Cutout2D``, ``mode="partial"``);
          the part outside the image is filled with 0 and masked.

    Options:
        path: a FITS file or a folder of FITS files (the folder that relative catalogue paths use).
        catalog: CSV or FITS table, relative to ``path`` (if a folder) or absolute; None: no catalogue.
        bands: band names; None reads the header (``BANDS='grz'`` or ``BAND0``, ``BAND1``...). When
            both exist they must agree, and their count must equal the number of image planes.
        hdu: the extension holding the image, by index or by name (``"IMAGE"``, ``"SCI"``).
        ivar_hdu: an extension of inverse variance with the image's shape (optional).
        mask_hdu: an extension of flags with the image's shape: non-zero = invalid (optional).
        size: output size in pixels. None requires every image to have the same size (an error
            otherwise); with ``resize="crop"`` the central ``size x size`` pixels are kept (pixel
            scale and flux units unchanged); with ``resize="area"`` the whole image is resampled by
            exact area averaging (pixel scale grows; flux per pixel is scaled so total flux is kept;
            not available with ``ivar_hdu``). Required with ``cutout=True``.
        resize: ``"crop"`` or ``"area"``.
        cutout: catalogue rows are positions on larger images (see above).
        id_column, file_column, ra_column, dec_column: catalogue column names.
        label_columns: catalogue columns kept as labels; None: every numeric column other than
            the id, file and position columns.
        integer_labels: labels converted to int64 with -1 for missing values.
        label_ranges: ``{label: (low, high)}`` checks added to the known ones (vote fractions in
            [0, 1], ``ring``/``dwarf`` in {0, 1}, ...): a value outside is an error.
        pixel_scale: arcsec per pixel; None reads it from the WCS (an error if there is none).
        psf: a FITS file of per-band PSF images ``(C, h, w)`` at the image's pixel scale: its
            half-maximum width gives ``psf_fwhm`` for every object.
        psf_fwhm: per-band PSF FWHM in arcsec (instead of ``psf``).
        zero_is_invalid: mask exact zeros (DECaLS/Legacy Survey cutouts store no coverage as 0).
        memmap: memory-map the files (only the pixels needed are read); scaled integer data
            (BSCALE/BZERO/BLANK) cannot be memory-mapped and is read whole, BLANK becoming masked.

    NaN pixels are always masked. A truncated or unreadable file is a ``DataError`` naming it: the
    dataset is never silently shorter.
    """

    def __init__(
        self,
        path: str,
        catalog: str | None = None,
        bands: list[str] | None = None,
        hdu: str | int = 0,
        ivar_hdu: str | int | None = None,
        mask_hdu: str | int | None = None,
        size: int | None = None,
        resize: str = "crop",
        cutout: bool = False,
        id_column: str = "object_id",
        file_column: str = "file",
        ra_column: str = "ra",
        dec_column: str = "dec",
        label_columns: list[str] | None = None,
        integer_labels: list[str] | None = None,
        label_ranges: dict[str, tuple[float, float]] | None = None,
        pixel_scale: float | None = None,
        psf: str | None = None,
        psf_fwhm: list[float] | None = None,
        zero_is_invalid: bool = True,
        memmap: bool = True,
    ) -> None:
        if resize not in ("crop", "area"):
            raise DataError(f"resize must be 'crop' or 'area', got {resize!r}")
        if size is not None and size < 1:
            raise DataError(f"size must be a positive number of pixels, got {size}")
        if cutout and (catalog is None or size is None):
            raise DataError("cutout=True needs a catalog (with ra/dec and file columns) and a size")
        if resize == "area" and ivar_hdu is not None:
            raise DataError("resize='area' does not resample inverse variance; use resize='crop' with ivar_hdu")
        self.path = str(path)
        self.catalog = catalog
        self.bands = list(bands) if bands is not None else None
        self.hdu = hdu
        self.ivar_hdu = ivar_hdu
        self.mask_hdu = mask_hdu
        self.size = size
        self.resize = resize
        self.cutout = cutout
        self.id_column = id_column
        self.file_column = file_column
        self.ra_column = ra_column
        self.dec_column = dec_column
        self.label_columns = list(label_columns) if label_columns is not None else None
        self.integer_labels = list(integer_labels or [])
        self.label_ranges = dict(label_ranges) if label_ranges else None
        self.pixel_scale = pixel_scale
        self.psf = psf
        self.psf_fwhm = list(psf_fwhm) if psf_fwhm is not None else None
        self.zero_is_invalid = zero_is_invalid
        self.memmap = memmap

    def options(self) -> dict[str, Any]:
        names = (
            "path", "catalog", "bands", "hdu", "ivar_hdu", "mask_hdu", "size", "resize", "cutout",
            "id_column", "file_column", "ra_column", "dec_column", "label_columns", "integer_labels",
            "label_ranges", "pixel_scale", "psf", "psf_fwhm", "zero_is_invalid", "memmap",
        )  # fmt: skip
        return {name: getattr(self, name) for name in names}

    # -- entry point ------------------------------------------------------------------------
    def load(self, cache_dir: Path | None = None) -> SurveyData:
        root = Path(self.path)
        if not root.exists():
            raise DataError(f"FITS path {root} does not exist")
        if self.catalog is not None:
            return self._load_catalogued(root)
        files = self._files(root)
        planes = [self._read_object([file]) for file in files]
        ids = unique_ids([_stem(f) for f in files], str(root))
        return self._finish(str(root), ids, planes, positions=None, labels={})

    def _files(self, root: Path) -> list[Path]:
        if root.is_file():
            return [root]
        files = sorted(p for p in root.iterdir() if p.is_file() and is_fits_file(p))
        if not files:
            raise DataError(f"{root}: no FITS files ({', '.join(FITS_SUFFIXES)}) in the folder")
        return files

    def _load_catalogued(self, root: Path) -> SurveyData:
        folder = root if root.is_dir() else root.parent
        catalog_path = Path(self.catalog) if Path(self.catalog).is_absolute() else folder / self.catalog
        frame = read_catalog(catalog_path)
        where = str(catalog_path)
        require_columns(frame, [self.id_column], catalog_path)
        ids = unique_ids(frame[self.id_column].astype(str).tolist(), f"{where}: column {self.id_column!r}")
        file_columns = self._file_columns(frame, catalog_path)
        labels = self._labels(frame, where, exclude={self.id_column, self.ra_column, self.dec_column, *file_columns})
        has_positions = self.ra_column in frame.columns and self.dec_column in frame.columns
        positions = None
        if has_positions:
            positions = (numeric_column(frame, self.ra_column, where), numeric_column(frame, self.dec_column, where))
        planes = []
        for row, object_id in enumerate(ids.tolist()):
            files = [_resolve(folder, frame[c].iloc[row], where, object_id) for c in file_columns]
            if self.cutout:
                if positions is None:
                    raise DataError(f"{where}: cutout=True needs columns {self.ra_column!r} and {self.dec_column!r}")
                planes.append(self._cut_object(files, positions[0][row], positions[1][row], object_id))
            else:
                planes.append(self._read_object(files))
        return self._finish(where, ids, planes, positions, labels)

    def _file_columns(self, frame: Any, catalog_path: Path) -> list[str]:
        if self.file_column in frame.columns:
            return [self.file_column]
        if self.bands is None:
            raise DataError(
                f"catalogue {catalog_path}: no column {self.file_column!r}; for one file per band give "
                f"bands=[...] and columns '{self.file_column}_<band>'"
            )
        per_band = [f"{self.file_column}_{band}" for band in self.bands]
        require_columns(frame, per_band, catalog_path)
        return per_band

    def _labels(self, frame: Any, where: str, exclude: set[str]) -> dict[str, np.ndarray]:
        return catalog_labels(frame, where, exclude, self.label_columns, self.integer_labels)

    # -- reading one object -----------------------------------------------------------------
    def _read_object(self, files: list[Path]) -> _Plane:
        """One cube from one file, or one 2-D image per band stacked in band order."""
        parts = [self._read_file(file) for file in files]
        if len(parts) == 1:
            return parts[0]
        for part in parts:
            if part.image.shape[0] != 1:
                raise DataError(f"{part.file}: a per-band file must hold one 2-D image, got {part.image.shape}")
            if part.image.shape != parts[0].image.shape:
                raise DataError(f"{part.file}: image {part.image.shape[1:]} differs from {parts[0].file} {parts[0].image.shape[1:]}")
        ivar = None if parts[0].ivar is None else np.concatenate([p.ivar for p in parts])
        return _Plane(
            np.concatenate([p.image for p in parts]),
            np.concatenate([p.invalid for p in parts]),
            ivar,
            parts[0].header,
            parts[0].file,
        )

    def _read_file(self, file: Path) -> _Plane:
        image, header = _read_hdu(file, self.hdu, self.memmap)
        image = _as_cube(image, file, self.hdu)
        invalid = ~np.isfinite(image)
        if self.zero_is_invalid:
            invalid |= image == 0
        ivar = None
        if self.ivar_hdu is not None:
            ivar = _as_cube(_read_hdu(file, self.ivar_hdu, self.memmap)[0], file, self.ivar_hdu)
            _same_shape(ivar, image, file, self.ivar_hdu)
        if self.mask_hdu is not None:
            flags = _as_cube(_read_hdu(file, self.mask_hdu, self.memmap)[0], file, self.mask_hdu)
            _same_shape(flags, image, file, self.mask_hdu)
            invalid |= flags != 0
        return _Plane(image.astype(np.float32), invalid, ivar, header, file)

    def _cut_object(self, files: list[Path], ra: float, dec: float, object_id: str) -> _Plane:
        """A ``size x size`` cutout centred on (ra, dec) from each file's WCS; off-image pixels masked."""
        from astropy.coordinates import SkyCoord
        from astropy.nddata import Cutout2D, NoOverlapError

        if not (np.isfinite(ra) and np.isfinite(dec)):
            raise DataError(f"object {object_id!r}: cutout position ra={ra}, dec={dec} is not finite")
        position = SkyCoord(ra, dec, unit="deg")
        images, invalids, header, first = [], [], None, files[0]
        for file in files:
            data, hdr = _read_hdu(file, self.hdu, self.memmap)
            cube = _as_cube(data, file, self.hdu)
            wcs = _celestial_wcs(hdr, file)
            if wcs is None:
                raise DataError(f"{file}: no celestial WCS in HDU {self.hdu!r}; cannot cut by RA/Dec")
            for plane in cube:
                try:
                    cut = Cutout2D(plane, position, (self.size, self.size), wcs=wcs, mode="partial", fill_value=0, copy=True)
                except NoOverlapError as exc:
                    raise DataError(f"object {object_id!r} at ra={ra}, dec={dec} lies outside {file}") from exc
                outside = np.ones((self.size, self.size), dtype=bool)
                outside[cut.slices_cutout] = False
                image = cut.data.astype(np.float32)
                invalid = outside | ~np.isfinite(image)
                if self.zero_is_invalid:
                    invalid |= image == 0
                images.append(image)
                invalids.append(invalid)
            if header is None:
                header = cut.wcs.to_header()
                header.update({k: hdr[k] for k in ("BANDS", "FILTER") if k in hdr})
                header.update({k: v for k, v in hdr.items() if k.startswith("BAND") and len(k) <= 6})
        return _Plane(np.stack(images), np.stack(invalids), None, header, first)

    # -- assembling ---------------------------------------------------------------------------
    def _finish(
        self,
        origin: str,
        ids: np.ndarray,
        planes: list[_Plane],
        positions: tuple[np.ndarray, np.ndarray] | None,
        labels: dict[str, np.ndarray],
    ) -> SurveyData:
        bands = self._bands(planes)
        planes, scale_factor = self._resized(planes)
        wcs_list = [_celestial_wcs(p.header, p.file) for p in planes]
        pixel_scale = np.array([self._pixel_scale(p, w, f) for p, w, f in zip(planes, wcs_list, scale_factor)])
        if positions is None or self.cutout:
            centres = [_centre(p, w) for p, w in zip(planes, wcs_list)]
            ra = np.array([c[0] for c in centres]) if positions is None else positions[0]
            dec = np.array([c[1] for c in centres]) if positions is None else positions[1]
        else:
            ra, dec = positions
        ivar = None if planes[0].ivar is None else np.stack([p.ivar for p in planes])
        return assemble(
            origin=origin,
            object_id=ids,
            image=np.stack([p.image for p in planes]),
            invalid=np.stack([p.invalid for p in planes]),
            bands=bands,
            pixel_scale=pixel_scale,
            psf_fwhm=self._psf_fwhm(len(bands), pixel_scale),
            ra=ra,
            dec=dec,
            ivar=ivar,
            labels=labels,
            label_ranges=self.label_ranges,
            manifest={"source": "fits", "options": self.options()},
        )

    def _bands(self, planes: list[_Plane]) -> list[str]:
        for plane in planes:
            from_header = _header_bands(plane.header)
            n = plane.image.shape[0]
            if self.bands is not None and from_header is not None and from_header != self.bands:
                raise DataError(f"{plane.file}: header bands {from_header} differ from bands={self.bands}")
            bands = self.bands or from_header
            if bands is None:
                raise DataError(f"{plane.file}: no BANDS/BAND0.. header keywords; pass bands=[...] for its {n} planes")
            if len(bands) != n:
                raise DataError(f"{plane.file}: {n} image planes but {len(bands)} bands {bands}")
            if bands != (self.bands or _header_bands(planes[0].header)):
                raise DataError(f"{plane.file}: bands {bands} differ from {planes[0].file} {_header_bands(planes[0].header)}")
        return list(self.bands or _header_bands(planes[0].header))  # type: ignore[arg-type]

    def _resized(self, planes: list[_Plane]) -> tuple[list[_Plane], np.ndarray]:
        """Planes brought to one size, and per object the factor by which the pixel scale grew."""
        ones = np.ones(len(planes))
        if self.size is None:
            first = planes[0]
            for plane in planes[1:]:
                if plane.image.shape[1:] != first.image.shape[1:]:
                    h, w = plane.image.shape[1:]
                    h0, w0 = first.image.shape[1:]
                    raise DataError(
                        f"{plane.file} is {h}x{w} but {first.file} is {h0}x{w0}: images of different sizes need "
                        "size= (centre crop, or resize='area' to resample)"
                    )
            return planes, ones
        if self.cutout:
            return planes, ones
        out, factors = [], []
        for plane in planes:
            h, w = plane.image.shape[1:]
            if self.resize == "crop":
                crop = lambda a: None if a is None else centre_crop(a, self.size, str(plane.file))  # noqa: E731
                out.append(_Plane(crop(plane.image), crop(plane.invalid), crop(plane.ivar), _cropped_header(plane, self.size), plane.file))
                factors.append(1.0)
            else:
                image, invalid = area_resample(plane.image, plane.invalid, self.size)
                image *= (h / self.size) * (w / self.size)  # flux per (larger) pixel: total flux kept
                out.append(_Plane(image, invalid, None, _resampled_header(plane, self.size), plane.file))
                factors.append(math.sqrt((h / self.size) * (w / self.size)))
        return out, np.array(factors)

    def _pixel_scale(self, plane: _Plane, wcs: Any, resample_factor: float) -> float:
        """From the option (times the resampling factor) or the (already resampled) WCS."""
        if self.pixel_scale is not None:
            return float(self.pixel_scale) * resample_factor
        if wcs is None:
            raise DataError(f"{plane.file}: no celestial WCS to read the pixel scale from; pass pixel_scale=")
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(np.sqrt(np.prod(proj_plane_pixel_scales(wcs))) * 3600.0)

    def _psf_fwhm(self, n_bands: int, pixel_scale: np.ndarray) -> np.ndarray | None:
        if self.psf_fwhm is not None:
            if len(self.psf_fwhm) != n_bands:
                raise DataError(f"psf_fwhm has {len(self.psf_fwhm)} values for {n_bands} bands")
            return np.tile(np.asarray(self.psf_fwhm, dtype=np.float32), (len(pixel_scale), 1))
        if self.psf is None:
            return None
        psf_path = Path(self.psf)
        if not psf_path.is_absolute() and not psf_path.exists():
            psf_path = (Path(self.path) if Path(self.path).is_dir() else Path(self.path).parent) / psf_path
        psfs = _as_cube(_read_hdu(psf_path, 0, self.memmap)[0], psf_path, 0)
        if psfs.shape[0] != n_bands:
            raise DataError(f"{psf_path}: {psfs.shape[0]} PSF images for {n_bands} bands")
        fwhm_pixels = np.array([psf_fwhm_pixels(p) for p in psfs])
        return (pixel_scale[:, None] * fwhm_pixels[None, :]).astype(np.float32)


# -- FITS helpers ---------------------------------------------------------------------------------


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _resolve(folder: Path, value: Any, where: str, object_id: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: object {object_id!r} has no file name ({value!r})")
    path = Path(value) if Path(value).is_absolute() else folder / value
    if not path.is_file():
        raise DataError(f"{where}: file {path} of object {object_id!r} does not exist")
    return path


def _read_hdu(file: Path, hdu: str | int, memmap: bool) -> tuple[np.ndarray, Any]:
    """Data and header of one HDU; truncation, a missing HDU or unreadable data is a DataError."""
    from astropy.io import fits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            try:
                data, header = _read_hdu_once(fits, file, hdu, memmap)
            except ValueError as exc:
                if not (memmap and "memory-mapped" in str(exc)):
                    raise
                data, header = _read_hdu_once(fits, file, hdu, False)  # scaled integers: read whole
        except (OSError, TypeError, ValueError, IndexError, KeyError) as exc:
            truncated = _truncation_warning(caught)
            if truncated:
                raise DataError(f"{file}: FITS file is truncated or incomplete ({truncated})") from exc
            raise DataError(f"{file}: cannot read HDU {hdu!r}: {exc}") from exc
    truncated = _truncation_warning(caught)
    if truncated:
        raise DataError(f"{file}: FITS file is truncated or incomplete ({truncated})")
    return data, header


def _read_hdu_once(fits: Any, file: Path, hdu: str | int, memmap: bool) -> tuple[np.ndarray, Any]:
    with fits.open(file, memmap=memmap, lazy_load_hdus=True) as hdul:
        try:
            unit = hdul[hdu]
        except (KeyError, IndexError) as exc:
            names = [h.name for h in hdul]
            raise DataError(f"{file}: no HDU {hdu!r}; it has {names}") from exc
        header = unit.header.copy()
        if unit.data is None:
            raise DataError(f"{file}: HDU {hdu!r} holds no data (try another hdu=, e.g. 1 or a name)")
        data = np.array(unit.data)  # copy out of the memory map before the file closes
    if data.dtype.kind not in "iuf":
        raise DataError(f"{file}: HDU {hdu!r} holds {data.dtype} data, not an image")
    return data, header


def _truncation_warning(caught: list[Any]) -> str | None:
    for record in caught:
        message = str(record.message)
        if "truncated" in message.lower():
            return message
    return None


def _as_cube(data: np.ndarray, file: Path, hdu: str | int) -> np.ndarray:
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise DataError(f"{file}: HDU {hdu!r} has shape {data.shape}; expected (C, H, W) or (H, W)")
    return data.astype(np.float32) if data.dtype != np.float32 else data


def _same_shape(other: np.ndarray, image: np.ndarray, file: Path, hdu: str | int) -> None:
    if other.shape != image.shape:
        raise DataError(f"{file}: HDU {hdu!r} has shape {other.shape}, the image {image.shape}")


def _header_bands(header: Any) -> list[str] | None:
    bands = parse_bands(header.get("BANDS"))
    if bands is not None:
        return bands
    numbered = []
    while f"BAND{len(numbered)}" in header:
        numbered.append(str(header[f"BAND{len(numbered)}"]).strip())
    if numbered:
        return numbered
    if header.get("NAXIS", 0) == 2 and header.get("FILTER"):
        return [str(header["FILTER"]).strip()]
    return None


def _celestial_wcs(header: Any, file: Path) -> Any:
    from astropy.wcs import WCS

    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-standard keywords in survey headers
        try:
            wcs = WCS(header).celestial
        except Exception as exc:  # astropy raises several types for malformed WCS
            raise DataError(f"{file}: malformed WCS: {exc}") from exc
    return wcs if wcs.has_celestial else None


def _centre(plane: _Plane, wcs: Any) -> tuple[float, float]:
    if wcs is None:
        return math.nan, math.nan
    h, w = plane.image.shape[1:]
    ra, dec = wcs.pixel_to_world_values((w - 1) / 2.0, (h - 1) / 2.0)
    return float(ra), float(dec)


def _cropped_header(plane: _Plane, size: int) -> Any:
    """The header with CRPIX moved so the WCS still describes the cropped pixels."""
    header = plane.header.copy()
    h, w = plane.image.shape[1:]
    if "CRPIX1" in header:
        header["CRPIX1"] -= (w - size) // 2
        header["CRPIX2"] -= (h - size) // 2
    return header


def _resampled_header(plane: _Plane, size: int) -> Any:
    """The header with the WCS rescaled to the area-resampled grid (1-based FITS pixel centres)."""
    header = plane.header.copy()
    if "CRPIX1" not in header:
        return header
    h, w = plane.image.shape[1:]
    factor_x, factor_y = w / size, h / size
    header["CRPIX1"] = (header["CRPIX1"] - 0.5) / factor_x + 0.5
    header["CRPIX2"] = (header["CRPIX2"] - 0.5) / factor_y + 0.5
    # CD columns scale with their pixel axis; CDELT (with a PC matrix) per axis
    for key, factor in (("CD1_1", factor_x), ("CD2_1", factor_x), ("CD1_2", factor_y), ("CD2_2", factor_y),
                        ("CDELT1", factor_x), ("CDELT2", factor_y)):  # fmt: skip
        if key in header:
            header[key] *= factor
    return header
