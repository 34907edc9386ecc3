"""HDF5 cutout files: an image array plus 1-D columns (ids, positions, labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets._source_utils import assemble, parse_bands, unique_ids
from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.photometry import extinction_coefficients
from astrobench.registry import register_dataset


@dataclass(frozen=True)
class HDF5Layout:
    """Where things are in a known file layout (a preset)."""

    image_key: str
    channels_last: bool
    id_key: str | None
    label_keys: dict[str, str]
    bands: tuple[str, ...] | None = None  # None: from the file's ``bands`` attribute
    pixel_scale: float | None = None  # None: from the file's pixel-scale attribute
    image_is_flux: bool = True
    integer_labels: tuple[str, ...] = ()
    ebv_from: tuple[str, str, str] | None = None  # (column, band, survey): E(B-V) = A_band / R_band
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, HDF5Layout] = {
    # ../shared/data/real/sdss_quasars: images (N, 5, 64, 64), attrs bands / pixel_scale_arcsec
    "sdss_quasars": HDF5Layout(
        image_key="images",
        channels_last=False,
        id_key="specobjid",
        label_keys={"redshift": "specz", **{f"mag_{b}": f"mag_{b}" for b in "ugriz"}},
        ebv_from=("extinction_r", "r", "sdss"),
    ),
    # Galaxy10 DECaLS (Leung & Bovy): images uint8 (N, 256, 256, 3) g/r/z composites at 0.262"/px
    "galaxy10_decals": HDF5Layout(
        image_key="images",
        channels_last=True,
        id_key=None,
        label_keys={"galaxy10": "ans", "redshift": "redshift"},
        bands=("R", "G", "B"),
        pixel_scale=0.262,
        image_is_flux=False,
        integer_labels=("galaxy10",),
    ),
}

_PIXEL_SCALE_ATTRS = ("pixel_scale_arcsec", "pixel_scale", "PIXSCALE")
_BLOCK_BYTES = 64 << 20  # rows are read in blocks of about this size (chunked, lazy reading)
_MEMMAP_BYTES = 2 << 30  # outputs larger than this go to a memory-mapped file in the cache dir


def detect_preset(path: str | Path) -> str | None:
    """The preset whose layout this file has, or None."""
    import h5py

    with h5py.File(path, "r") as f:
        keys = set(f.keys())
        if {"images", "specz", "specobjid"} <= keys:
            return "sdss_quasars"
        if {"images", "ans"} <= keys:
            return "galaxy10_decals"
    return None


@register_dataset("hdf5")
class HDF5Source(DataSource):
    """Cutouts in one HDF5 file: an image array ``(N, C, H, W)`` or ``(N, H, W, C)`` and 1-D columns.

    Options:
        path: the ``.h5``/``.hdf5`` file.
        preset: a known layout filling the key options: ``"sdss_quasars"`` (the layout of
            ``shared/data/real/sdss_quasars``: ``redshift`` from ``specz``, ``mag_*`` labels, E(B-V)
            = ``extinction_r`` / R_r(SDSS), bands and pixel scale from the file's attributes) or
            ``"galaxy10_decals"`` (uint8 RGB channels-last, not flux, scaled to 0..1; label
            ``galaxy10`` (0-9) from ``ans`` and ``redshift``; 0.262"/px). Explicit options override it.
        image_key: dataset holding the images.
        channels_last: layout of the image array; None guesses (last axis <= 16 and axis 1 larger).
        id_key: column of object ids; None numbers the rows (``row000000``...).
        label_keys: label name -> column (a list means the same names).
        integer_labels: labels stored as int64 with -1 for missing (others stay float, NaN missing).
        bands: band names; None reads the ``bands`` attribute (``'ugriz'`` or a list).
        pixel_scale: arcsec per pixel; None reads ``pixel_scale_arcsec``/``pixel_scale`` attributes.
        ra_key, dec_key: position columns (missing columns give NaN positions).
        ebv_key: a column of E(B-V) directly.
        mask_key / mask_true_means: an optional mask dataset and its polarity (``"invalid"`` or
            ``"valid"``); NaN pixels are always masked.
        ivar_key: an optional inverse-variance dataset with the image's layout.
        zero_is_invalid: mask exact zeros (no-coverage convention of some cutout services).
        image_is_flux: None: True unless the images are uint8 (RGB composites, scaled to 0..1).
        max_objects: read only the first N rows.
    """

    def __init__(
        self,
        path: str,
        preset: str | None = None,
        image_key: str | None = None,
        channels_last: bool | None = None,
        id_key: str | None = None,
        label_keys: dict[str, str] | list[str] | None = None,
        integer_labels: list[str] | None = None,
        bands: list[str] | None = None,
        pixel_scale: float | None = None,
        ra_key: str = "ra",
        dec_key: str = "dec",
        ebv_key: str | None = None,
        mask_key: str | None = None,
        mask_true_means: str = "invalid",
        ivar_key: str | None = None,
        zero_is_invalid: bool = False,
        image_is_flux: bool | None = None,
        max_objects: int | None = None,
    ) -> None:
        if preset is not None and preset not in PRESETS:
            raise DataError(f"unknown HDF5 preset {preset!r}; known presets: {sorted(PRESETS)}")
        if mask_true_means not in ("invalid", "valid"):
            raise DataError(f"mask_true_means must be 'invalid' or 'valid', got {mask_true_means!r}")
        layout = PRESETS.get(preset) if preset else None
        self.path = str(path)
        self.preset = preset
        self.image_key = image_key or (layout.image_key if layout else "images")
        self.channels_last = channels_last if channels_last is not None else (layout.channels_last if layout else None)
        self.id_key = id_key if id_key is not None else (layout.id_key if layout else None)
        if isinstance(label_keys, list):
            label_keys = {k: k for k in label_keys}
        self.label_keys = dict(label_keys) if label_keys is not None else (dict(layout.label_keys) if layout else {})
        self.integer_labels = list(integer_labels) if integer_labels is not None else (list(layout.integer_labels) if layout else [])
        self.bands = list(bands) if bands is not None else (list(layout.bands) if layout and layout.bands else None)
        self.pixel_scale = pixel_scale if pixel_scale is not None else (layout.pixel_scale if layout else None)
        self.ra_key = ra_key
        self.dec_key = dec_key
        self.ebv_key = ebv_key
        self.ebv_from = layout.ebv_from if layout and ebv_key is None else None
        self.mask_key = mask_key
        self.mask_true_means = mask_true_means
        self.ivar_key = ivar_key
        self.zero_is_invalid = zero_is_invalid
        self.image_is_flux = image_is_flux if image_is_flux is not None else (layout.image_is_flux if layout else None)
        self.max_objects = max_objects

    def options(self) -> dict[str, Any]:
        return {
            "path": self.path, "preset": self.preset, "image_key": self.image_key,
            "channels_last": self.channels_last, "id_key": self.id_key, "label_keys": self.label_keys,
            "integer_labels": self.integer_labels, "bands": self.bands, "pixel_scale": self.pixel_scale,
            "ra_key": self.ra_key, "dec_key": self.dec_key, "ebv_key": self.ebv_key,
            "mask_key": self.mask_key, "mask_true_means": self.mask_true_means, "ivar_key": self.ivar_key,
            "zero_is_invalid": self.zero_is_invalid, "image_is_flux": self.image_is_flux,
            "max_objects": self.max_objects,
        }  # fmt: skip

    def load(self, cache_dir: Path | None = None) -> SurveyData:
        import h5py

        path = Path(self.path)
        if not path.is_file():
            raise DataError(f"HDF5 file {path} does not exist")
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
        with handle as f:
            return self._read(f, path, cache_dir)

    # -- reading ----------------------------------------------------------------------------
    def _dataset(self, f: Any, key: str, path: Path) -> Any:
        if key not in f:
            raise DataError(f"{path}: no dataset {key!r}; the file has {sorted(f.keys())}")
        return f[key]

    def _read(self, f: Any, path: Path, cache_dir: Path | None) -> SurveyData:
        images = self._dataset(f, self.image_key, path)
        if images.ndim != 4:
            raise DataError(f"{path}: dataset {self.image_key!r} must be 4-D (N, C, H, W) or (N, H, W, C), got {images.shape}")
        channels_last = self._channels_last(images.shape, path)
        n_total = images.shape[0]
        if n_total == 0:
            raise DataError(f"{path}: dataset {self.image_key!r} holds no images")
        n = min(n_total, self.max_objects) if self.max_objects else n_total
        c = images.shape[3] if channels_last else images.shape[1]
        h, w = (images.shape[1:3] if channels_last else images.shape[2:4])
        bands = self._bands(f, path, c)
        is_flux = self.image_is_flux if self.image_is_flux is not None else images.dtype != np.uint8
        scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0

        image = self._allocate((n, c, h, w), np.float32, cache_dir, "image")
        invalid = self._allocate((n, c, h, w), np.bool_, cache_dir, "mask")
        ivar = self._allocate((n, c, h, w), np.float32, cache_dir, "ivar") if self.ivar_key else None
        masks = self._dataset(f, self.mask_key, path) if self.mask_key else None
        ivars = self._dataset(f, self.ivar_key, path) if self.ivar_key else None
        for name, ds in (("mask", masks), ("ivar", ivars)):
            if ds is not None and ds.shape[0] < n:
                raise DataError(f"{path}: {name} dataset has {ds.shape[0]} rows for {n} images")
        block = max(1, _BLOCK_BYTES // max(1, c * h * w * 4))
        for start in range(0, n, block):
            stop = min(n, start + block)
            chunk = self._to_channels_first(images[start:stop], channels_last).astype(np.float32) * scale
            bad = ~np.isfinite(chunk)
            if self.zero_is_invalid:
                bad |= chunk == 0
            if masks is not None:
                flags = self._to_channels_first(masks[start:stop], channels_last).astype(bool)
                bad |= ~flags if self.mask_true_means == "valid" else flags
            image[start:stop] = chunk
            invalid[start:stop] = bad
            if ivars is not None:
                ivar[start:stop] = self._to_channels_first(ivars[start:stop], channels_last)

        object_id = self._ids(f, path, n, n_total)
        labels = {name: self._label(f, path, name, key, n, n_total) for name, key in self.label_keys.items()}
        return assemble(
            origin=str(path),
            object_id=object_id,
            image=image,
            invalid=invalid,
            bands=bands,
            pixel_scale=self._pixel_scale(f, path),
            ebv=self._ebv(f, path, n, n_total),
            ra=self._optional_column(f, path, self.ra_key, n, n_total),
            dec=self._optional_column(f, path, self.dec_key, n, n_total),
            ivar=ivar,
            labels=labels,
            image_is_flux=bool(is_flux),
            manifest={"source": "hdf5", "options": self.options()},
        )

    def _channels_last(self, shape: tuple[int, ...], path: Path) -> bool:
        if self.channels_last is not None:
            return self.channels_last
        if shape[3] <= 16 and shape[1] > shape[3]:
            return True
        if shape[1] <= 16 and shape[3] > shape[1]:
            return False
        raise DataError(f"{path}: cannot tell whether images {shape} are channels first or last; set channels_last")

    @staticmethod
    def _to_channels_first(array: np.ndarray, channels_last: bool) -> np.ndarray:
        return np.moveaxis(array, -1, 1) if channels_last else array

    @staticmethod
    def _allocate(shape: tuple[int, ...], dtype: Any, cache_dir: Path | None, name: str) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if cache_dir is None or nbytes < _MEMMAP_BYTES:
            return np.empty(shape, dtype=dtype)
        import os
        import tempfile

        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        # a file of this process's own (concurrent runs never share one), unlinked at once: the
        # mapping lives on until the array is freed, and a killed run leaves no file behind
        fd, scratch = tempfile.mkstemp(prefix=f".hdf5_{name}.", suffix=".npy", dir=cache_dir)
        os.close(fd)
        try:
            return np.lib.format.open_memmap(scratch, mode="w+", dtype=dtype, shape=shape)
        finally:
            os.unlink(scratch)

    def _bands(self, f: Any, path: Path, n_channels: int) -> list[str]:
        bands = self.bands if self.bands is not None else parse_bands(f.attrs.get("bands"))
        if bands is None:
            raise DataError(f"{path}: no 'bands' attribute; pass bands=[...] for the {n_channels} channels")
        if len(bands) != n_channels:
            raise DataError(f"{path}: {len(bands)} bands {list(bands)} given for images with {n_channels} channels")
        return list(bands)

    def _pixel_scale(self, f: Any, path: Path) -> float:
        if self.pixel_scale is not None:
            return float(self.pixel_scale)
        for attr in _PIXEL_SCALE_ATTRS:
            if attr in f.attrs:
                try:
                    value = float(np.asarray(f.attrs[attr]).ravel()[0])
                except (TypeError, ValueError, IndexError) as exc:
                    raise DataError(f"{path}: attribute {attr!r} = {f.attrs[attr]!r} is not a number; "
                                    "fix it or pass pixel_scale=") from exc
                if not (np.isfinite(value) and value > 0):  # NaN here is a broken attribute, not "unknown"
                    raise DataError(f"{path}: attribute {attr!r} = {value!r}; the pixel scale must be a finite "
                                    "number > 0 arcsec per pixel: fix the attribute or pass pixel_scale=")
                return value
        raise DataError(f"{path}: no pixel-scale attribute ({', '.join(_PIXEL_SCALE_ATTRS)}); pass pixel_scale=")

    def _column(self, f: Any, path: Path, key: str, n: int, n_total: int) -> np.ndarray:
        ds = self._dataset(f, key, path)
        if ds.shape[0] != n_total:
            raise DataError(f"{path}: column {key!r} has {ds.shape[0]} rows for {n_total} images")
        return ds[:n]

    def _optional_column(self, f: Any, path: Path, key: str | None, n: int, n_total: int) -> np.ndarray | None:
        if key is None or key not in f:
            return None
        return self._column(f, path, key, n, n_total).astype(np.float64)

    def _ids(self, f: Any, path: Path, n: int, n_total: int) -> np.ndarray:
        if self.id_key is None:
            return np.array([f"row{i:06d}" for i in range(n)])
        raw = self._column(f, path, self.id_key, n, n_total)
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        return unique_ids(ids, f"{path}: column {self.id_key!r}")

    def _label(self, f: Any, path: Path, name: str, key: str, n: int, n_total: int) -> np.ndarray:
        raw = self._column(f, path, key, n, n_total)
        if raw.dtype.kind in "biu" or name in self.integer_labels:
            values = raw.astype(np.float64) if raw.dtype.kind == "f" else raw
            if values.dtype.kind == "f":
                if (values[~np.isnan(values)] % 1 != 0).any():
                    raise DataError(f"{path}: integer label {name!r} (column {key!r}) has non-integer values")
                return np.where(np.isnan(values), -1, values).astype(np.int64)
            return values.astype(np.int64)
        return raw.astype(np.float64)

    def _ebv(self, f: Any, path: Path, n: int, n_total: int) -> np.ndarray | None:
        if self.ebv_key is not None:
            return self._column(f, path, self.ebv_key, n, n_total).astype(np.float32)
        if self.ebv_from is not None:
            key, band, survey = self.ebv_from
            (coefficient,) = extinction_coefficients([band], survey)
            return (self._column(f, path, key, n, n_total).astype(np.float64) / coefficient).astype(np.float32)
        return None
