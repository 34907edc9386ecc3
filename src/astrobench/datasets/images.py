"""A folder of PNG/JPEG cutouts with a catalogue (e.g. Galaxy Zoo exports).

Decoding and resampling thousands of JPEGs costs far more than reading them, so with a cache
folder the decoded, resampled pixels are kept under ``<cache>/images/<key>.npz``, the key a hash
of every file's bytes and of the options that change the pixels (size, bands): an edited or
replaced image is decoded again, a renamed catalogue column is not.
"""

from __future__ import annotations

import hashlib
import io
import string
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets._source_utils import (
    _is_text,
    _mostly_text,
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

# tried in this order, ignoring case (a Galaxy Zoo export has OBJID; SDSS tables objid / specobjid)
_ID_CANDIDATES = ("object_id", "objid", "obj_id", "iauname", "id", "dr8_id", "dr7objid", "specobjid", "name")
CACHE_VERSION = "1"  # bump when decoding or resampling changes the pixels
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
        file_column: column of image paths (used when ``file_pattern`` is not given).
        file_pattern: image paths built from catalogue columns, e.g. ``"Imagenes/{OBJID}.jpeg"``
            (Python format fields naming columns; checked against the catalogue before any read).
        id_column: column of object ids; None: the first of object_id, objid, obj_id, iauname, id,
            dr8_id, dr7objid, specobjid, name present in any letter case, else the file name
            without suffix.
        label_columns: columns kept as labels; None: every numeric column except ids, files, ra/dec.
            Integer columns (``ring``) stay int64 (missing -1), others float (missing NaN); a named
            column of text (``CLASS`` = "spiral", ...) stays text (missing "").
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
        file_pattern: str | None = None,
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
        self.file_pattern = file_pattern
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
        names = ("path", "catalog", "file_column", "file_pattern", "id_column", "label_columns", "integer_labels",
                 "label_ranges", "bands", "pixel_scale", "size", "ra_column", "dec_column")  # fmt: skip
        return {name: (list(v) if isinstance(v := getattr(self, name), tuple) else v) for name in names}

    def load(self, cache_dir: Path | None = None) -> SurveyData:
        folder = Path(self.path)
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist or is not a folder")
        catalog_path = Path(self.catalog) if Path(self.catalog).is_absolute() else folder / self.catalog
        frame = read_catalog(catalog_path)
        where = str(catalog_path)
        files, file_fields = self._files(folder, frame, where)
        id_column = self._id_column(frame)
        raw_ids = frame[id_column].astype(str).tolist() if id_column else [Path(f).stem for f in files]
        ids = unique_ids(raw_ids, f"{where}: column {id_column or self.file_column!r}")
        labels = self._labels(frame, where, exclude={*file_fields, id_column, self.ra_column, self.dec_column})
        ra, dec = self._positions(frame, ids)
        image, invalid, factors = self._decoded(files, cache_dir)
        return assemble(
            origin=str(folder),
            object_id=ids,
            image=image,
            invalid=invalid,
            bands=self.bands,
            pixel_scale=self.pixel_scale * factors,
            ra=ra,
            dec=dec,
            labels=labels,
            label_ranges=self.label_ranges,
            image_is_flux=False,
            manifest={"source": "images", "options": self.options()},
        )

    # -- pieces ---------------------------------------------------------------------------------
    def _files(self, folder: Path, frame: Any, where: str) -> tuple[list[Path], set[str]]:
        """Every row's image path (from ``file_pattern`` or ``file_column``) and the columns that
        named it; every missing file is counted before any image is read."""
        if self.file_pattern is not None:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.file_pattern) if name is not None}
            if not fields or any(f == "" or f.isdigit() for f in fields):
                raise DataError(f"file_pattern {self.file_pattern!r}: use named fields such as {{OBJID}}, one per catalogue column")
            missing = sorted(fields - set(frame.columns))
            if missing:
                raise DataError(f"file_pattern {self.file_pattern!r} names column(s) {missing} that catalogue {where} "
                                f"does not have; it has {list(frame.columns)}")
            records = frame[sorted(fields)].to_dict("records")
            values = [self.file_pattern.format(**{k: _as_written(v) for k, v in r.items()}) for r in records]
        else:
            if self.file_column not in frame.columns:
                raise DataError(f"catalogue {where}: no column {self.file_column!r} of image paths; it has "
                                f"{list(frame.columns)}; give file_column=NAME, or file_pattern such as "
                                f"'images/{{{frame.columns[0]}}}.jpeg'")
            fields, values = {self.file_column}, frame[self.file_column].tolist()
        paths = []
        for row, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: row {row} has no file name ({value!r})")
            paths.append(Path(value) if Path(value).is_absolute() else folder / value)
        absent = [row for row, p in enumerate(paths) if not p.is_file()]
        if absent:
            others = f" (and {len(absent) - 1} more of the {len(paths)} rows, e.g. {paths[absent[1]]})" if len(absent) > 1 else ""
            raise DataError(f"{where}: row {absent[0]}: image file {paths[absent[0]]} does not exist{others}")
        return paths, fields

    def _id_column(self, frame: Any) -> str | None:
        if self.id_column is not None:
            require_columns(frame, [self.id_column], self.catalog)
            return self.id_column
        by_lower = {str(c).lower(): c for c in frame.columns}
        return next((by_lower[c] for c in _ID_CANDIDATES if c in by_lower), None)

    def _labels(self, frame: Any, where: str, exclude: set[str | None]) -> dict[str, np.ndarray]:
        # a named column of words (no cell parses as a number) is a class label kept as text
        text = [c for c in (self.label_columns or []) if c in frame.columns and _is_text(frame[c]) and _mostly_text(frame[c])]
        numeric = None if self.label_columns is None else [c for c in self.label_columns if c not in text]
        labels = catalog_labels(frame, where, exclude, numeric, self.integer_labels)
        for name in text:  # class names as text; "" = missing
            labels[name] = frame[name].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()).to_numpy(str)
        return labels

    def _decoded(self, files: list[Path], cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images, invalid masks, pixel growth factors) of every file: from the cache when the
        files' bytes and the pixel options match, else decoded (and then cached)."""
        from astrobench.fsutil import atomic_write_bytes

        cached = None
        if cache_dir is not None:
            h = hashlib.sha256(f"{CACHE_VERSION}|{self.size}|{list(self.bands)}|{len(files)}".encode())
            for file in files:
                h.update(hashlib.sha256(file.read_bytes()).digest())
            cached = Path(cache_dir) / "images" / f"{h.hexdigest()[:32]}.npz"
            if cached.is_file():
                with np.load(cached) as stored:
                    return stored["image"], stored["invalid"], stored["factor"]
        images, invalids, factors = [], [], []
        for file in files:
            image, invalid, factor = self._read(file)
            images.append(image)
            invalids.append(invalid)
            factors.append(factor)
        first = images[0].shape
        other = next((i for i, im in enumerate(images) if im.shape != first), None)
        if other is not None:
            raise DataError(f"{files[other]} is {images[other].shape[1:]} but {files[0]} is {first[1:]}: set size= to resample")
        image, invalid, factor = np.stack(images), np.stack(invalids), np.asarray(factors, dtype=np.float64)
        if cached is not None:
            buffer = io.BytesIO()
            np.savez(buffer, image=image, invalid=invalid, factor=factor)
            atomic_write_bytes(cached, buffer.getvalue())
        return image, invalid, factor

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


def _as_written(value: Any) -> Any:
    """A catalogue value as a file name holds it: a whole float (pandas reads an integer id column
    with a gap as float) becomes an int, so ``{OBJID}`` never reads ``123.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
