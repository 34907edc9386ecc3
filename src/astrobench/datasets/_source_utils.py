"""Helpers shared by the file sources (FITS, HDF5, image folder, npz, hub).

Catalogue reading, label conversion and range checks, resampling and PSF width estimation, and
the final assembly into a validated ``SurveyData``. Every failure is a ``DataError`` that names
the file, column or value.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets.schema import DataError, SurveyData

# Known label ranges (inclusive). Missing values (NaN / -1) are always allowed.
_FRACTION_RANGE = (0.0, 1.0)
KNOWN_LABEL_RANGES: dict[str, tuple[float, float]] = {
    "redshift": (-0.01, 15.0),  # SDSS specz of stars can be slightly negative
    "ring": (0, 1),
    "dwarf": (0, 1),
    "galaxy10": (0, 9),
}


def label_range(name: str, overrides: dict[str, tuple[float, float]] | None = None) -> tuple[float, float] | None:
    """The allowed range of label ``name``: an explicit override, a known label, or vote fractions."""
    if overrides and name in overrides:
        return tuple(overrides[name])  # type: ignore[return-value]
    if name in KNOWN_LABEL_RANGES:
        return KNOWN_LABEL_RANGES[name]
    if name.endswith("_fraction") or name.startswith("gz_"):
        return _FRACTION_RANGE
    return None


def check_label(name: str, values: np.ndarray, where: str, ranges: dict[str, tuple[float, float]] | None = None) -> None:
    """Raise ``DataError`` for infinite values or values outside the label's known range."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if np.isinf(values).any():
            raise DataError(f"{where}: label {name!r} has infinite values")
        present = values[~np.isnan(values)]
    elif values.dtype.kind in "iub":
        present = values[values != -1] if values.dtype.kind == "i" else values
        if values.dtype.kind == "i" and (values < -1).any():
            bad = int(values[values < -1][0])
            raise DataError(f"{where}: label {name!r} has value {bad}; integer labels use -1 for missing")
    else:
        return
    bounds = label_range(name, ranges)
    if bounds is None or present.size == 0:
        return
    low, high = bounds
    outside = (present < low) | (present > high)
    if outside.any():
        bad = present[outside][0].item()
        raise DataError(
            f"{where}: label {name!r} has value {bad!r} outside its range [{low}, {high}] "
            f"({int(outside.sum())} value(s) out of range)"
        )


def to_label_array(name: str, raw: Any, where: str, integer: bool | None = None) -> np.ndarray:
    """Convert a catalogue column to a label: int64 (missing -1) or float64 (missing NaN).

    ``integer=None`` keeps the column's kind (bool and integer columns -> int64, floats stay
    float); ``integer=True`` turns a float column with missing values into int64 with -1, and is an
    error for non-whole values.
    """
    import pandas as pd

    series = pd.Series(raw).reset_index(drop=True)
    if _is_text(series) or series.dtype.kind in "US":
        numeric = pd.to_numeric(series, errors="coerce")
        bad = _unparsed(series, numeric)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{where}: label column {name!r}, row {row} (0-based, {int(bad.sum())} such row(s)): "
                            f"value {series.iloc[row]!r} is not a number; fix it or leave the cell empty for a "
                            "missing label")
        series = numeric
    values = series.to_numpy()
    if values.dtype.kind in "biu":
        return values.astype(np.int64)
    values = values.astype(np.float64)
    if not integer:
        return values
    present = values[~np.isnan(values)]
    fractional = present[present != np.round(present)]
    if fractional.size:
        raise DataError(f"{where}: integer label {name!r} has non-integer value {fractional[0]}")
    return np.where(np.isnan(values), -1, values).astype(np.int64)


def _unparsed(series: Any, numeric: Any) -> Any:
    """Cells that hold something (not empty, not NaN) that ``pd.to_numeric`` could not read."""
    return numeric.isna() & series.notna() & (series.astype(str).str.strip() != "")


def _is_text(column: Any) -> bool:
    import pandas as pd

    return column.dtype == object or pd.api.types.is_string_dtype(column.dtype)


def _mostly_text(column: Any) -> bool:
    """A text column (names, classes as words) rather than a numeric one with a typo in it: no
    non-empty cell parses as a number."""
    import pandas as pd

    numeric = pd.to_numeric(column, errors="coerce")
    return not numeric.notna().any()


def catalog_labels(frame: Any, where: str, exclude: set, label_columns: list[str] | None,
                   integer_labels: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Labels from catalogue columns: the named ones, or every numeric column not in ``exclude``.

    A column of numbers with a cell that is not one (``0.3x``) is an error naming the column and
    the row, never a column silently left out; columns of text (names) are not labels."""
    if label_columns is None:
        names = [c for c in frame.columns if c not in exclude
                 and (frame[c].dtype.kind in "biuf" or (_is_text(frame[c]) and not _mostly_text(frame[c])))]
    else:
        require_columns(frame, label_columns, where)
        names = label_columns
    return {name: to_label_array(name, frame[name], where, integer=True if name in integer_labels else None)
            for name in names}


def read_catalog(path: Path) -> "Any":
    """Read a CSV or FITS table into a pandas DataFrame; an empty or unreadable one is an error."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"catalogue {path} does not exist")
    suffix = "".join(path.suffixes).lower()
    try:
        if suffix.endswith((".fits", ".fit", ".fits.gz")):
            from astropy.table import Table

            table = Table.read(path)
            names = [n for n in table.colnames if len(table[n].shape) <= 1]
            frame = table[names].to_pandas()
            for column in frame.columns:  # FITS strings arrive as bytes
                if frame[column].dtype == object:
                    frame[column] = frame[column].map(lambda v: v.decode() if isinstance(v, bytes) else v)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"catalogue {path} is empty (no header, no rows)") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"catalogue {path} cannot be read: {exc}") from exc
    if len(frame) == 0:
        raise DataError(f"catalogue {path} is empty (columns {list(frame.columns)}, no rows)")
    return frame


def require_columns(frame: Any, columns: list[str], where: Path | str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"catalogue {where}: missing column(s) {missing}; it has {list(frame.columns)}")


def numeric_column(frame: Any, column: str, where: Path | str) -> np.ndarray:
    """A catalogue column as float64 (empty cells NaN); text that is not a number is an error."""
    import pandas as pd

    raw = frame[column].reset_index(drop=True)
    values = pd.to_numeric(raw, errors="coerce")
    bad = _unparsed(raw, values)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"catalogue {where}: column {column!r}, row {row} (0-based): value {raw.iloc[row]!r} is not a "
                        "number; fix it or leave the cell empty")
    return values.to_numpy(np.float64)


def unique_ids(ids: list[str] | np.ndarray, where: str) -> np.ndarray:
    ids = np.asarray([str(i) for i in ids])
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: object id {str(values[counts > 1][0])!r} appears {int(counts.max())} times")
    return ids


_IAU_NAME = re.compile(r"J(\d{2})(\d{2})(\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})(\d{2}(?:\.\d+)?)")


def radec_from_iau_name(name: str) -> tuple[float, float]:
    """RA, Dec in degrees from an IAU designation such as ``J143738.75+062639.5`` (NaN if not one)."""
    match = _IAU_NAME.search(str(name))
    if match is None:
        return math.nan, math.nan
    h, m, s, sign, d, am, asec = match.groups()
    ra = 15.0 * (int(h) + int(m) / 60 + float(s) / 3600)
    dec = int(d) + int(am) / 60 + float(asec) / 3600
    return ra, -dec if sign == "-" else dec


# -- pixels ---------------------------------------------------------------------------------


def _area_mean_along(array: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Exact area average along one axis onto ``size`` equal output pixels.

    Uses the running integral S(x) of the pixel values, which is linear inside each input pixel,
    so every output pixel is (S(right edge) - S(left edge)) / width: O(N), no weight matrix.
    """
    moved = np.moveaxis(array, axis, -1).astype(np.float64)
    n = moved.shape[-1]
    integral = np.concatenate([np.zeros((*moved.shape[:-1], 1)), np.cumsum(moved, axis=-1)], axis=-1)
    edges = np.linspace(0.0, n, size + 1)
    left = np.minimum(np.floor(edges).astype(np.int64), n - 1)  # the last edge: pixel n-1, fraction 1
    at_edges = integral[..., left] + (edges - left) * moved[..., left]
    return np.moveaxis(np.diff(at_edges, axis=-1) / np.diff(edges), -1, axis)


def area_resample(image: np.ndarray, invalid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``(C, H, W)`` to ``(C, size, size)`` by exact area averaging over valid pixels.

    Each output pixel is the mean of the valid input area it covers (so the values keep their
    per-pixel meaning: surface brightness, or 0..1 colour); it is invalid when less than half of
    its area is valid.
    """
    if not invalid.any():  # the common case: no weighting needed
        out = _area_mean_along(_area_mean_along(image, size, 1), size, 2)
        return out.astype(np.float32), np.zeros(out.shape, dtype=bool)
    valid = (~invalid).astype(np.float64)
    filled = np.where(invalid, 0.0, image)
    total = _area_mean_along(_area_mean_along(filled, size, 1), size, 2)
    coverage = _area_mean_along(_area_mean_along(valid, size, 1), size, 2)
    out_invalid = coverage < 0.5
    out = np.where(out_invalid, 0.0, total / np.where(coverage > 0, coverage, 1.0))
    return out.astype(np.float32), out_invalid


def centre_crop(array: np.ndarray, size: int, where: str) -> np.ndarray:
    """Cut the central ``size x size`` pixels of ``(..., H, W)``; an image smaller than that is an error."""
    h, w = array.shape[-2:]
    if h < size or w < size:
        raise DataError(f"{where}: image is {h}x{w}, smaller than the requested size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return array[..., top : top + size, left : left + size]


def psf_fwhm_pixels(psf: np.ndarray) -> float:
    """FWHM in pixels of a PSF image, from the area above half maximum (cubic 8x upsampling: ~2%).

    FWHM = 2 sqrt(area / pi) for a round PSF; elliptical PSFs give the geometric-mean width.
    """
    from scipy.ndimage import zoom

    psf = np.nan_to_num(np.asarray(psf, dtype=np.float64))
    if psf.max() <= 0:
        return math.nan
    fine = zoom(psf, 8, order=3, grid_mode=True, mode="grid-constant")
    area = float((fine >= 0.5 * fine.max()).sum()) / 64.0
    return 2.0 * math.sqrt(area / math.pi)


# -- assembly ---------------------------------------------------------------------------------


def assemble(
    *,
    origin: str,
    object_id: np.ndarray,
    image: np.ndarray,
    invalid: np.ndarray,
    bands: tuple[str, ...] | list[str],
    pixel_scale: np.ndarray | float,
    manifest: dict[str, Any],
    psf_fwhm: np.ndarray | None = None,
    ebv: np.ndarray | None = None,
    ra: np.ndarray | None = None,
    dec: np.ndarray | None = None,
    ivar: np.ndarray | None = None,
    labels: dict[str, np.ndarray] | None = None,
    image_is_flux: bool = True,
    label_ranges: dict[str, tuple[float, float]] | None = None,
) -> SurveyData:
    """Apply the schema conventions (NaN -> invalid, invalid pixels hold 0, ivar 0 there) and validate."""
    n, c = image.shape[:2]
    invalid = np.asarray(invalid, dtype=bool) | ~np.isfinite(image)
    image = np.asarray(image, dtype=np.float32)
    image[invalid] = 0.0
    if ivar is not None:
        ivar = np.asarray(ivar, dtype=np.float32)
        bad_ivar = ~np.isfinite(ivar) | (ivar < 0)
        invalid |= bad_ivar
        ivar[invalid] = 0.0
        image[invalid] = 0.0

    def column(value: np.ndarray | float | None, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if value is None:
            return np.full(shape, np.nan, dtype=dtype)
        return np.broadcast_to(np.asarray(value, dtype=dtype), shape).copy()

    labels = labels or {}
    for name, values in labels.items():
        check_label(name, values, origin, label_ranges)
    data = SurveyData(
        object_id=np.asarray(object_id).astype(str),
        image=image,
        mask=invalid,
        bands=tuple(bands),
        pixel_scale=column(pixel_scale, (n,), np.float32),
        psf_fwhm=column(psf_fwhm, (n, c), np.float32),
        ebv=column(ebv, (n,), np.float32),
        ra=column(ra, (n,), np.float64),
        dec=column(dec, (n,), np.float64),
        ivar=ivar,
        labels=labels,
        image_is_flux=image_is_flux,
        manifest=manifest,
        origin=origin,
    )
    return data.validate()


def parse_bands(value: Any) -> list[str] | None:
    """A band list from a header/attribute value: ``'grz'``, ``'g,r,z'``, ``b'ugriz'`` or a sequence."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if "," in value or " " in value:
            return [b for b in re.split(r"[,\s]+", value) if b]
        return list(value)
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]
