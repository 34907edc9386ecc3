"""What a data source holds: ``astrobench data inspect PATH``.

``source_for_path`` guesses the source from the path (or takes the one named, with the same
options a run gives the dataset: ``--dataset images --dataset-option catalog=gz.csv``),
``inspect_source`` loads it and summarises it (count, bands, shape, pixel scale, label coverage,
invalid-pixel fraction, and the data checks of ``datasets/checks.py``), and ``format_inspection``
prints that summary in a few lines.
"""

from __future__ import annotations

import inspect as pyinspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import MANIFEST_NAME, DataError, SurveyData
from astrobench.datasets.storage import load_survey

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CATALOG_NAMES = ("catalog.csv", "catalogue.csv")
ARCSEC = '"'


class SavedDataset(DataSource):
    """An astrobench dataset folder (``storage.save_survey``): ``manifest.json`` + a datasets folder."""

    registered_name = "saved"

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def load(self, cache_dir: Path | None = None) -> SurveyData:
        return load_survey(self.path)


def build_source(cls: type, options: dict[str, Any], what: str) -> DataSource:
    """``cls(**options)`` after checking that every option is one of its named parameters."""
    params = pyinspect.signature(cls.__init__).parameters
    allowed = [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise ValueError(f"{what} has no option {unknown[0]!r}; its options are {allowed}")
    return cls(**options)


def source_for_path(path: str, options: dict[str, Any] | None = None, dataset: str | None = None) -> DataSource:
    """The source that reads ``path``: the registered ``dataset`` when named, else guessed from what
    is there (a clear error if nothing fits); ``options`` are that source's options, as in a run."""
    from astrobench.datasets.fits import FitsSource, is_fits_file

    options = dict(options or {})
    if dataset is not None:
        from astrobench.registry import DATASETS

        return build_source(DATASETS.get(dataset), {"path": str(path), **options}, f"dataset {dataset!r}")
    target = Path(path)
    if not target.exists():
        raise DataError(f"{target} does not exist")
    if target.is_dir():
        if (target / MANIFEST_NAME).is_file():
            return build_source(SavedDataset, {"path": str(target), **options}, "a saved dataset")
        catalog = options.pop("catalog", None) or next((name for name in _CATALOG_NAMES if (target / name).is_file()), None)
        entries = [p for p in target.rglob("*") if p.is_file()]
        if catalog and any(p.suffix.lower() in _IMAGE_SUFFIXES for p in entries):
            from astrobench.datasets.images import ImageFolderSource

            return build_source(ImageFolderSource, {"path": str(target), "catalog": catalog, **options}, "dataset 'images'")
        if any(is_fits_file(p) for p in target.iterdir() if p.is_file()):
            return build_source(FitsSource, {"path": str(target), "catalog": catalog, **options}, "dataset 'fits'")
        raise DataError(f"{target}: no astrobench dataset, FITS files, or images with a catalogue in this folder "
                        "(name the catalogue with catalog=FILE, or the source with --dataset)")
    name = target.name.lower()
    if name.endswith((".h5", ".hdf5")):
        from astrobench.datasets.hdf5 import HDF5Source, detect_preset

        defaults = {} if "preset" in options or "label_keys" in options else {"preset": detect_preset(target)}
        return build_source(HDF5Source, {"path": str(target), **defaults, **options}, "dataset 'hdf5'")
    if is_fits_file(target):
        return build_source(FitsSource, {"path": str(target), **options}, "dataset 'fits'")
    if name.endswith(".npz"):
        from astrobench.datasets.npz import NpzSource

        return build_source(NpzSource, {"path": str(target), **options}, "dataset 'npz'")
    raise DataError(f"{target}: unknown kind of file (expected .h5/.hdf5, .fits, .npz, or a folder)")


def inspect_source(source: DataSource | SurveyData, cache_dir: Path | None = None) -> dict[str, Any]:
    """Summary of a source's data as plain values (JSON-serialisable), with the data checks' findings
    under ``checks`` (duplicates are looked for within the whole file: inspection knows no splits)."""
    from astrobench.datasets.checks import run_checks

    if isinstance(source, SurveyData):
        data = source
    elif cache_dir is not None:
        data = source.load(Path(cache_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="astrobench-inspect-") as cache:
            data = source.load(Path(cache))
    mask = np.asarray(data.mask)
    per_band_invalid = mask.mean(axis=(0, 2, 3)) if len(data) else np.zeros(data.n_bands)
    scale = np.asarray(data.pixel_scale, dtype=np.float64)
    return {
        "origin": data.origin,
        "source": data.manifest.get("source", getattr(source, "registered_name", type(source).__name__)),
        "count": len(data),
        "bands": list(data.bands),
        "image_shape": [int(s) for s in data.image.shape[1:]],
        "image_is_flux": bool(data.image_is_flux),
        "pixel_scale": _range(scale),
        "psf_fwhm": _range(np.asarray(data.psf_fwhm, dtype=np.float64)),
        "has_ivar": data.ivar is not None,
        "invalid_fraction": float(mask.mean()),
        "invalid_fraction_per_band": {b: float(f) for b, f in zip(data.bands, per_band_invalid)},
        "position_coverage": float(np.mean(np.isfinite(data.ra) & np.isfinite(data.dec))),
        "ebv_coverage": float(np.mean(np.isfinite(data.ebv))),
        "labels": {name: _label_summary(values) for name, values in sorted(data.labels.items())},
        "checks": [finding.to_dict() for finding in run_checks(data)],
    }


def _range(values: np.ndarray) -> dict[str, float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return {"min": float(finite.min()), "median": float(np.median(finite)), "max": float(finite.max())}


def _label_summary(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        present = ~np.isnan(values)
    elif values.dtype.kind == "i":
        present = values != -1
    else:
        present = np.ones(values.shape, dtype=bool)
    present_rows = present.reshape(len(values), -1).all(axis=1) if values.ndim > 1 else present
    summary: dict[str, Any] = {"dtype": str(values.dtype), "coverage": float(present_rows.mean())}
    if values.dtype.kind in "biuf" and present.any():
        kept = values[present]
        summary.update(min=float(kept.min()), max=float(kept.max()))
        if values.dtype.kind in "biu" and values.ndim == 1:
            classes, counts = np.unique(kept, return_counts=True)
            if len(classes) <= 20:
                summary["counts"] = {str(int(c)): int(k) for c, k in zip(classes, counts)}
    return summary


def format_inspection(info: dict[str, Any]) -> str:
    """A few human-readable lines."""

    def fmt_range(r: dict[str, float] | None, unit: str) -> str:
        if r is None:
            return "unknown"
        if np.isclose(r["min"], r["max"]):
            return f"{r['median']:.4g}{unit}"
        return f"{r['min']:.4g}-{r['max']:.4g}{unit} (median {r['median']:.4g})"

    c, h, w = info["image_shape"]
    invalid = ", ".join(f"{b} {f:.1%}" for b, f in info["invalid_fraction_per_band"].items())
    lines = [
        f"{info['origin']} ({info['source']})",
        f"  objects:      {info['count']}",
        f"  bands:        {' '.join(info['bands'])} ({c} x {h} x {w}, {'flux' if info['image_is_flux'] else 'not flux (RGB)'}"
        f"{', with ivar' if info['has_ivar'] else ''})",
        f"  pixel scale:  {fmt_range(info['pixel_scale'], ARCSEC + '/px')}   PSF FWHM: {fmt_range(info['psf_fwhm'], ARCSEC)}",
        f"  invalid px:   {info['invalid_fraction']:.2%} ({invalid})",
        f"  positions:    {info['position_coverage']:.0%} known   E(B-V): {info['ebv_coverage']:.0%} known",
    ]
    if not info["labels"]:
        lines.append("  labels:       none")
    for name, label in info["labels"].items():
        detail = f"{label['dtype']}, {label['coverage']:.0%} present"
        if "min" in label:
            detail += f", range {label['min']:.4g} to {label['max']:.4g}"
        if "counts" in label:
            detail += ", counts " + " ".join(f"{k}:{v}" for k, v in label["counts"].items())
        lines.append(f"  label {name}: {detail}")
    for finding in info.get("checks", []):
        lines.append(f"  {finding['level']}: [{finding['check']}] {finding['message']}")
    return "\n".join(lines)
