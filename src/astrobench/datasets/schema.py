"""The one in-memory schema every data source produces (DESIGN section 3).

``SurveyData`` holds whole columns as NumPy arrays (possibly memory-mapped), never one Python
object per galaxy: training slices contiguous blocks into tensors. On disk it is a Hugging Face
``datasets`` folder (``load_from_disk`` reads it) plus ``manifest.json``, written and read by
``astrobench.datasets.storage`` (``save_survey``, ``load_survey``), which stands above this module:
the data type knows nothing of files.

Conventions (every source converts to these, never the reverse):
- ``image``: float32 ``(N, C, H, W)``, flux per band in survey units, sky-subtracted.
- ``mask``: bool ``(N, C, H, W)``, **True = invalid pixel**; invalid pixels hold 0 in ``image``.
- ``ivar``: float32 ``(N, C, H, W)`` or None; 0 where invalid.
- missing labels: NaN for float labels, -1 for integer labels, never a made-up value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = "1"
MANIFEST_NAME = "manifest.json"


class DataError(ValueError):
    """Bad input data; the message names the file, field or value."""


@dataclass
class SurveyData:
    object_id: np.ndarray  # (N,) str
    image: np.ndarray  # (N, C, H, W) float32
    mask: np.ndarray  # (N, C, H, W) bool, True = invalid
    bands: tuple[str, ...]
    pixel_scale: np.ndarray  # (N,) float32, arcsec / pixel
    psf_fwhm: np.ndarray  # (N, C) float32, arcsec (NaN where unknown)
    ebv: np.ndarray  # (N,) float32 (NaN where unknown)
    ra: np.ndarray  # (N,) float64 degrees (NaN where unknown)
    dec: np.ndarray  # (N,) float64 degrees (NaN where unknown)
    ivar: np.ndarray | None = None  # (N, C, H, W) float32
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # each (N,) or (N, K)
    image_is_flux: bool = True  # False for RGB composites (PNG/JPEG): no physical augmentations
    manifest: dict[str, Any] = field(default_factory=dict)
    origin: str = "<memory>"  # file or folder the data came from, for error messages

    def __post_init__(self) -> None:
        self.bands = tuple(self.bands)

    # -- shape --------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def n_bands(self) -> int:
        return int(self.image.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.image.shape[-1])

    def validate(self) -> "SurveyData":
        """Check every field against the schema; raise ``DataError`` naming the field."""
        where = self.origin
        n = len(self.object_id)
        if n == 0:
            raise DataError(f"{where}: the dataset is empty (no objects)")
        if self.image.ndim != 4:
            raise DataError(f"{where}: field 'image' must be (N, C, H, W), got shape {self.image.shape}")
        if self.image.shape[0] != n:
            raise DataError(f"{where}: 'image' has {self.image.shape[0]} rows but 'object_id' has {n}")
        if self.image.dtype != np.float32:
            raise DataError(f"{where}: field 'image' must be float32, got {self.image.dtype}")
        c = self.image.shape[1]
        if len(self.bands) != c:
            raise DataError(f"{where}: {len(self.bands)} band names {list(self.bands)} for {c} image channels")
        if self.mask.shape != self.image.shape or self.mask.dtype != np.bool_:
            raise DataError(f"{where}: field 'mask' must be bool {self.image.shape}, got {self.mask.dtype} {self.mask.shape}")
        if self.ivar is not None and self.ivar.shape != self.image.shape:
            raise DataError(f"{where}: field 'ivar' has shape {self.ivar.shape}, expected {self.image.shape}")
        for name, shape in (("pixel_scale", (n,)), ("psf_fwhm", (n, c)), ("ebv", (n,)), ("ra", (n,)), ("dec", (n,))):
            value = getattr(self, name)
            if value.shape != shape:
                raise DataError(f"{where}: field {name!r} has shape {value.shape}, expected {shape}")
        if len(set(self.object_id.tolist())) != n:
            raise DataError(f"{where}: field 'object_id' is not unique")
        self._check_metadata()
        bad = ~np.isfinite(self.image) & ~self.mask
        if bad.any():
            first = int(np.argwhere(bad.any(axis=(1, 2, 3)))[0, 0])
            raise DataError(
                f"{where}: object {str(self.object_id[first])!r} has {int(bad[first].sum())} non-finite pixels "
                "that are not masked (mask them as invalid)"
            )
        for name, values in self.labels.items():
            if values.shape[0] != n:
                raise DataError(f"{where}: label {name!r} has {values.shape[0]} rows for {n} objects")
        return self

    # field -> (smallest allowed value, whether it may equal it, unit and what it means)
    _METADATA_RULES = {
        "pixel_scale": (0.0, False, "arcsec per pixel"),
        "psf_fwhm": (0.0, False, "arcsec"),
        "ebv": (0.0, True, "mag of Galactic E(B-V)"),
    }

    def _check_metadata(self) -> None:
        """Per-object pixel scale > 0, PSF FWHM > 0, E(B-V) >= 0, all finite where known: a zero pixel
        scale turns an arcsec FWHM into an infinite blur, an infinite E(B-V) a galaxy into zeros.
        NaN means unknown (the schema's convention) and is allowed."""
        for name, (least, inclusive, unit) in self._METADATA_RULES.items():
            values = np.asarray(getattr(self, name), dtype=np.float64)
            known = ~np.isnan(values)
            wrong = known & (~np.isfinite(values) | (values < least if inclusive else values <= least))
            if wrong.any():
                rows = np.flatnonzero(wrong.reshape(len(values), -1).any(axis=1))
                value = values[rows[0]][wrong[rows[0]]].ravel()[0] if values.ndim > 1 else values[rows[0]]
                rule = f">= {least:g}" if inclusive else f"> {least:g}"
                raise DataError(
                    f"{self.origin}: field {name!r} of object {str(self.object_id[rows[0]])!r} is {float(value)!r} "
                    f"({len(rows)} object(s) affected); it must be a finite number {rule} ({unit}), or NaN where "
                    "unknown: fix the value in the file or override it with the source's option"
                )

    def subset(self, index: np.ndarray) -> "SurveyData":
        index = np.asarray(index)
        take = lambda a: None if a is None else a[index]  # noqa: E731
        return SurveyData(
            object_id=self.object_id[index],
            image=self.image[index],
            mask=self.mask[index],
            bands=self.bands,
            pixel_scale=self.pixel_scale[index],
            psf_fwhm=self.psf_fwhm[index],
            ebv=self.ebv[index],
            ra=self.ra[index],
            dec=self.dec[index],
            ivar=take(self.ivar),
            labels={k: v[index] for k, v in self.labels.items()},
            image_is_flux=self.image_is_flux,
            manifest=dict(self.manifest),
            origin=self.origin,
        )

    def require_labels(self, names: tuple[str, ...] | list[str], who: str) -> None:
        missing = [n for n in names if n not in self.labels]
        if missing:
            raise DataError(
                f"{who} needs label(s) {missing}, which dataset {self.origin} does not have "
                f"(it has: {sorted(self.labels) or 'no labels'})"
            )

    # -- identity -----------------------------------------------------------------------
    def content_hash(self) -> str:
        """sha256 over every array and the band list: what the data *is*, not where it came from."""
        h = hashlib.sha256()
        h.update(json.dumps({"schema": SCHEMA_VERSION, "bands": list(self.bands), "flux": self.image_is_flux}).encode())
        for name in ("object_id", "image", "mask", "pixel_scale", "psf_fwhm", "ebv", "ra", "dec", "ivar"):
            value = getattr(self, name)
            h.update(name.encode())
            if value is not None:
                _hash_array(h, value)
        for name in sorted(self.labels):
            h.update(b"label:" + name.encode())
            _hash_array(h, self.labels[name])
        return h.hexdigest()


def _hash_array(h: "hashlib._Hash", value: np.ndarray) -> None:
    value = np.asarray(value)
    h.update(str(value.dtype).encode() + str(value.shape).encode())
    if value.dtype.kind in "US":
        h.update("\x00".join(value.astype(str).ravel().tolist()).encode())
    else:
        # hash in blocks so a memory-mapped array is never copied whole
        flat = value.reshape(value.shape[0], -1) if value.ndim > 1 else value.reshape(-1, 1)
        block = max(1, (64 << 20) // max(1, flat[0:1].nbytes))
        for start in range(0, flat.shape[0], block):
            h.update(np.ascontiguousarray(flat[start : start + block]).tobytes())
