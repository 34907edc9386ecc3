"""The one in-memory schema every data source produces (DESIGN section 3).

``SurveyData`` holds whole columns as NumPy arrays (possibly memory-mapped), never one Python
object per galaxy: training slices contiguous blocks into tensors. On disk it is a Hugging Face
``datasets`` folder (``save_to_disk``/``load_from_disk``) plus ``manifest.json``.

Conventions (every source converts to these, never the reverse):
- ``image``: float32 ``(N, C, H, W)``, flux per band in survey units, sky-subtracted.
- ``mask``: bool ``(N, C, H, W)``, **True = invalid pixel**; invalid pixels hold 0 in ``image``.
- ``ivar``: float32 ``(N, C, H, W)`` or None; 0 where invalid.
- missing labels: NaN for float labels, -1 for integer labels, never a made-up value.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.fsutil import atomic_directory

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
        bad = ~np.isfinite(self.image) & ~self.mask
        if bad.any():
            first = int(np.argwhere(bad.any(axis=(1, 2, 3)))[0, 0])
            raise DataError(
                f"{where}: object {self.object_id[first]!r} has {int(bad[first].sum())} non-finite pixels "
                "that are not masked (mask them as invalid)"
            )
        for name, values in self.labels.items():
            if values.shape[0] != n:
                raise DataError(f"{where}: label {name!r} has {values.shape[0]} rows for {n} objects")
        return self

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

    # -- storage ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, manifest: dict[str, Any] | None = None) -> Path:
        """Write a ``datasets`` folder + ``manifest.json`` atomically (temp folder, then rename)."""
        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()  # astrobench draws its own progress; no per-shard bars in the output
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = self._columns()
        ds = Dataset.from_dict(columns, features=self._features())
        manifest = {**self.manifest, **(manifest or {})}
        manifest.update(
            schema_version=SCHEMA_VERSION,
            n=len(self),
            bands=list(self.bands),
            image_shape=list(self.image.shape[1:]),
            image_is_flux=self.image_is_flux,
            has_ivar=self.ivar is not None,
            labels=sorted(self.labels),
            content_hash=self.content_hash(),
        )
        write_dataset_folder(ds, manifest, path)
        self.manifest = manifest
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SurveyData":
        from datasets import load_from_disk

        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise DataError(f"{path}: not an astrobench dataset folder (no {MANIFEST_NAME})")
        manifest = json.loads(manifest_path.read_text())
        ds = load_from_disk(str(path / "data")).with_format("numpy")
        c, h, w = manifest["image_shape"]
        n = manifest["n"]

        def column(name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
            return np.ascontiguousarray(np.asarray(ds[name], dtype=dtype).reshape((n, *shape)))

        data = cls(
            object_id=np.asarray(ds["object_id"]).astype(str),
            image=column("image", np.float32, (c, h, w)),
            mask=column("mask", np.bool_, (c, h, w)),
            bands=tuple(manifest["bands"]),
            pixel_scale=column("pixel_scale", np.float32, ()),
            psf_fwhm=column("psf_fwhm", np.float32, (c,)),
            ebv=column("ebv", np.float32, ()),
            ra=column("ra", np.float64, ()),
            dec=column("dec", np.float64, ()),
            ivar=column("ivar", np.float32, (c, h, w)) if manifest["has_ivar"] else None,
            labels={name: np.asarray(ds[f"label_{name}"]) for name in manifest["labels"]},
            image_is_flux=manifest["image_is_flux"],
            manifest=manifest,
            origin=str(path),
        )
        return data

    def _columns(self) -> dict[str, Any]:
        cols: dict[str, Any] = {
            "object_id": self.object_id.astype(str).tolist(),
            "image": self.image,
            "mask": self.mask,
            "pixel_scale": self.pixel_scale.astype(np.float32),
            "psf_fwhm": self.psf_fwhm.astype(np.float32),
            "ebv": self.ebv.astype(np.float32),
            "ra": self.ra.astype(np.float64),
            "dec": self.dec.astype(np.float64),
        }
        if self.ivar is not None:
            cols["ivar"] = self.ivar
        for name, values in self.labels.items():
            cols[f"label_{name}"] = values
        return cols

    def _features(self):
        from datasets import Array3D, Features, Sequence, Value

        shape = tuple(int(s) for s in self.image.shape[1:])
        feats = {
            "object_id": Value("string"),
            "image": Array3D(shape=shape, dtype="float32"),
            "mask": Array3D(shape=shape, dtype="bool"),
            "pixel_scale": Value("float32"),
            "psf_fwhm": Sequence(Value("float32"), length=shape[0]),
            "ebv": Value("float32"),
            "ra": Value("float64"),
            "dec": Value("float64"),
        }
        if self.ivar is not None:
            feats["ivar"] = Array3D(shape=shape, dtype="float32")
        for name, values in self.labels.items():
            dtype = _arrow_dtype(values.dtype, f"label {name!r}")
            feats[f"label_{name}"] = (
                Value(dtype) if values.ndim == 1 else Sequence(Value(dtype), length=int(values.shape[1]))
            )
        return Features(feats)


def write_dataset_folder(table: Any, manifest: dict[str, Any], path: Path) -> Path:
    """A ``datasets`` table plus ``manifest.json`` as one folder, written atomically."""
    with atomic_directory(path) as tmp:
        table.save_to_disk(str(tmp / "data"))
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return path


def _arrow_dtype(dtype: np.dtype, what: str) -> str:
    if dtype == np.bool_:
        return "bool"
    if np.issubdtype(dtype, np.integer):
        return "int64"
    if np.issubdtype(dtype, np.floating):
        return "float32" if dtype == np.float32 else "float64"
    if dtype.kind in "US":
        return "string"
    raise DataError(f"{what}: dtype {dtype} cannot be stored")


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
