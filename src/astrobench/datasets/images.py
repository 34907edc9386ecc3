"""A folder of PNG/JPEG cutouts with a catalogue (e.g. Galaxy Zoo exports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets._source_utils import (
    catalog_labels,
    area_resample,
    numeric_column,
    assemble,
    radec_from_iau_name,
    read_catalog,
    require_columns,
    unique_ids,
)
from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.registry import register_dataset

_ID_CANDIDATES = ("object_id", "iauname", "id", "dr8_id", "name")
_MODES = {"RGB": 3, "RGBA": 3, "L": 1, "LA": 1, "P": 3}


@register_dataset("images")
class ImageFolderSource(DataSource):
    """PNG/JPEG images listed in a catalogue; RGB is three bands that are **not** flux.

    Pixel values are scaled to 0..1 (8-bit /255, 16-bit /65535); ``image_is_flux`` is False so
    no physical augmentation (reddening, noise in flux units) is applied to them. An alpha channel
    of 0 marks invalid pixels; palette images are converted to RGB.

    Options:
        path: the folder; file paths in the catalogue are relative to it.
        catalog: CSV or FITS table in the folder (or an absolute path).
        file_column: column of image paths.
        id_column: column of object ids; None: the first of object_id, iauname, id, dr8_id, name
            that exists, else the file name without suffix.
        label_columns: columns kept as labels; None: every numeric column except ids, files, ra/dec.
            Integer columns (``ring``) stay int64 (missing -1), others float (missing NaN).
        integer_labels: float columns to store as int64 with -1 for missing values.
        label_ranges: extra ``{label: (low, high)}`` range checks (vote fractions are in [0, 1]).
        bands: names of the channels, ``("R", "G", "B")`` or ``("L",)`` for grayscale.
        pixel_scale: arcsec per pixel of the files (Galaxy Zoo DECaLS: 0.262).
        size: resample to ``size x size`` by exact area averaging (424 -> 64 for CPU training); the
            pixel scale grows accordingly. None keeps the files' size, which must then be equal.
        ra_column, dec_column: position columns; when absent, RA/Dec are read from IAU names
            (``J143738.75+062639.5``) in the id column, else NaN.
    """

    def __init__(
        self,
        path: str,
        catalog: str = "catalog.csv",
        file_column: str = "file",
        id_column: str | None = None,
        label_columns: list[str] | None = None,
        integer_labels: list[str] | None = None,
        label_ranges: dict[str, tuple[float, float]] | None = None,
        bands: tuple[str, ...] | list[str] = ("R", "G", "B"),
        pixel_scale: float = 0.262,
        size: int | None = None,
        ra_column: str = "ra",
        dec_column: str = "dec",
    ) -> None:
        if size is not None and size < 1:
            raise DataError(f"size must be a positive number of pixels, got {size}")
        if len(bands) not in (1, 3):
            raise DataError(f"image files hold 1 (grayscale) or 3 (RGB) bands, got bands={list(bands)}")
        self.path = str(path)
        self.catalog = catalog
        self.file_column = file_column
        self.id_column = id_column
        self.label_columns = list(label_columns) if label_columns is not None else None
        self.integer_labels = list(integer_labels or [])
        self.label_ranges = dict(label_ranges) if label_ranges else None
        self.bands = tuple(bands)
        self.pixel_scale = float(pixel_scale)
        self.size = size
        self.ra_column = ra_column
        self.dec_column = dec_column

    def options(self) -> dict[str, Any]:
        names = ("path", "catalog", "file_column", "id_column", "label_columns", "integer_labels",
                 "label_ranges", "bands", "pixel_scale", "size", "ra_column", "dec_column")  # fmt: skip
        return {name: (list(v) if isinstance(v := getattr(self, name), tuple) else v) for name in names}

    def load(self, cache_dir: Path | None = None) -> SurveyData:
        folder = Path(self.path)
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist or is not a folder")
        catalog_path = Path(self.catalog) if Path(self.catalog).is_absolute() else folder / self.catalog
        frame = read_catalog(catalog_path)
        where = str(catalog_path)
        require_columns(frame, [self.file_column], catalog_path)
        files = [self._file(folder, value, where, row) for row, value in enumerate(frame[self.file_column])]
        id_column = self._id_column(frame)
        raw_ids = frame[id_column].astype(str).tolist() if id_column else [Path(f).stem for f in files]
        ids = unique_ids(raw_ids, f"{where}: column {id_column or self.file_column!r}")
        labels = self._labels(frame, where, exclude={self.file_column, id_column, self.ra_column, self.dec_column})
        ra, dec = self._positions(frame, ids)

        images, invalids, factors = [], [], []
        for file in files:
            image, invalid, factor = self._read(file)
            images.append(image)
            invalids.append(invalid)
            factors.append(factor)
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            first = images[0].shape
            other = next(i for i, im in enumerate(images) if im.shape != first)
            raise DataError(f"{files[other]} is {images[other].shape[1:]} but {files[0]} is {first[1:]}: set size= to resample")
        return assemble(
            origin=str(folder),
            object_id=ids,
            image=np.stack(images),
            invalid=np.stack(invalids),
            bands=self.bands,
            pixel_scale=self.pixel_scale * np.asarray(factors),
            ra=ra,
            dec=dec,
            labels=labels,
            label_ranges=self.label_ranges,
            image_is_flux=False,
            manifest={"source": "images", "options": self.options()},
        )

    # -- pieces ---------------------------------------------------------------------------------
    @staticmethod
    def _file(folder: Path, value: Any, where: str, row: int) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: row {row} has no file name ({value!r})")
        path = Path(value) if Path(value).is_absolute() else folder / value
        if not path.is_file():
            raise DataError(f"{where}: row {row}: image file {path} does not exist")
        return path

    def _id_column(self, frame: Any) -> str | None:
        if self.id_column is not None:
            require_columns(frame, [self.id_column], self.catalog)
            return self.id_column
        return next((c for c in _ID_CANDIDATES if c in frame.columns), None)

    def _labels(self, frame: Any, where: str, exclude: set[str | None]) -> dict[str, np.ndarray]:
        return catalog_labels(frame, where, exclude, self.label_columns, self.integer_labels)

    def _positions(self, frame: Any, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.ra_column in frame.columns and self.dec_column in frame.columns:
            return numeric_column(frame, self.ra_column, self.catalog), numeric_column(frame, self.dec_column, self.catalog)
        pairs = np.array([radec_from_iau_name(i) for i in ids], dtype=np.float64).reshape(len(ids), 2)
        return pairs[:, 0], pairs[:, 1]

    def _read(self, file: Path) -> tuple[np.ndarray, np.ndarray, float]:
        """(C, H, W) float32 in 0..1, its invalid mask, and how much larger a pixel became."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as img:
                img.load()
                pixels, alpha = self._pixels(img, file)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{file}: not a readable image ({exc})") from exc
        invalid = np.broadcast_to(alpha == 0, pixels.shape).copy() if alpha is not None else np.zeros(pixels.shape, bool)
        if self.size is None:
            return pixels, invalid, 1.0
        factor = float(np.sqrt(pixels.shape[1] * pixels.shape[2]) / self.size)
        pixels, invalid = area_resample(pixels, invalid, self.size)
        return pixels, invalid, factor

    def _pixels(self, img: Any, file: Path) -> tuple[np.ndarray, np.ndarray | None]:
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(img, dtype=np.float32) / 65535.0
            channels, alpha = array[None], None
        elif mode in _MODES:
            if mode == "P":
                img, mode = img.convert("RGBA" if "transparency" in img.info else "RGB"), "RGBA" if "transparency" in img.info else "RGB"
            array = np.asarray(img, dtype=np.float32) / 255.0
            array = array[..., None] if array.ndim == 2 else array
            alpha = array[..., -1] if mode in ("RGBA", "LA") else None
            channels = np.moveaxis(array[..., : _MODES[mode]], -1, 0)
        else:
            raise DataError(f"{file}: unsupported image mode {mode!r} (RGB, RGBA, L, LA, P, 16-bit grayscale)")
        if channels.shape[0] != len(self.bands):
            raise DataError(f"{file}: image has {channels.shape[0]} channel(s) ({mode}) but bands={list(self.bands)}")
        return np.ascontiguousarray(channels, dtype=np.float32), alpha
