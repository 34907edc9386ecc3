"""Data checks: problems a benchmark must flag before it trusts a dataset.

``run_checks(data, splits)`` returns ``Finding``s (``astrobench data inspect`` prints them; a run
prints them before any training, and ``--strict`` turns warnings into a failure):

- ``duplicate-images``: groups of byte-identical images (pixels and mask) within the data, with
  their ids and how far their labels disagree;
- ``train-test-leakage``: images of the test split byte-identical to images of the train split
  (only with ``splits``): the probe would be scored on objects it was fitted on;
- ``label-range``: label values outside their physical range (redshift > -1 and < 15, vote
  fractions in [0, 1], ...; ``label_range`` of the loaders plus the usual redshift column names);
- ``label-error``: impossible uncertainties in a ``<name>_err`` / ``_error`` / ``_unc`` column:
  negative, or wider than the whole range of the label they belong to;
- ``empty-band`` / ``constant-band``: a band with no valid pixel, or a single value, in some objects;
- ``missing-metadata`` (a note when a field is unknown for every object, as RGB files have no E(B-V);
  a warning when it is missing for only some).

Checks only read the arrays (in row blocks, so memory-mapped data is never copied whole).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from astrobench.datasets._source_utils import label_range
from astrobench.datasets.schema import DataError, SurveyData

WARNING, NOTE = "warning", "note"
_LISTED = 5  # examples named per finding
_ROW_BLOCK = 1024
_REDSHIFT_ALIASES = ("specz", "z_spec", "zspec", "photoz", "z")
_ERROR_SUFFIXES = ("_err", "_error", "_unc")


@dataclass(frozen=True)
class Finding:
    level: str  # "warning" (fails under --strict) or "note"
    check: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.level}: [{self.check}] {self.message}"


class DataCheckError(DataError):
    """Raised under ``--strict`` when a data check warns."""


def run_checks(data: SurveyData, splits: dict[str, np.ndarray] | None = None) -> list[Finding]:
    """Every check on ``data``; with ``splits`` also duplicates straddling train and test."""
    digests = image_digests(data)
    findings = duplicate_findings(data, digests)
    if splits is not None:
        findings += leakage_findings(data, digests, splits)
    findings += label_findings(data)
    findings += band_findings(data)
    findings += metadata_findings(data)
    return findings


def enforce(findings: list[Finding], strict: bool, log: Callable[[str], None] | None = print, where: str = "") -> None:
    """Print every finding; under ``strict`` any warning is a ``DataCheckError`` (before any work is done)."""
    for finding in findings:
        if log is not None:
            log(f"{where + ': ' if where else ''}{finding}")
    warnings = [f for f in findings if f.level == WARNING]
    if strict and warnings:
        raise DataCheckError(
            f"{where + ': ' if where else ''}{len(warnings)} data check(s) warned under --strict: "
            + "; ".join(sorted({f.check for f in warnings}))
        )


# -- duplicates ------------------------------------------------------------------------------------


def image_digests(data: SurveyData) -> np.ndarray:
    """A 128-bit digest (hex) of each object's pixels and mask: equal digests = byte-identical images."""
    out = []
    for start in range(0, len(data), _ROW_BLOCK):
        image = np.ascontiguousarray(data.image[start : start + _ROW_BLOCK])
        mask = np.ascontiguousarray(data.mask[start : start + _ROW_BLOCK])
        for pixels, invalid in zip(image, mask):
            h = hashlib.blake2b(pixels.tobytes(), digest_size=16)
            h.update(np.packbits(invalid).tobytes())
            out.append(h.hexdigest())
    return np.asarray(out)


def _groups(digests: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Rows sharing a digest, groups of two or more, in row order."""
    _, inverse, counts = np.unique(digests[rows], return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(counts)[:-1]
    return sorted((rows[g] for g in np.split(order, bounds) if g.size > 1), key=lambda g: int(g[0]))


def _label_spread(data: SurveyData, rows: np.ndarray) -> str:
    """How the labels of rows that should be one object differ, e.g. ``redshift 2.9 vs 4.36``."""
    parts = []
    for name, values in sorted(data.labels.items()):
        if values.ndim != 1 or values.dtype.kind not in "fiub":
            continue
        v = values[rows].astype(np.float64)
        v = v[np.isfinite(v)]
        if v.size > 1 and v.max() != v.min():
            parts.append(f"{name} {v.min():.4g} vs {v.max():.4g}")
    return f" ({', '.join(parts)})" if parts else ""


def _named(data: SurveyData, groups: list[np.ndarray]) -> str:
    listed = "; ".join(" = ".join(repr(str(data.object_id[r])) for r in g) + _label_spread(data, g) for g in groups[:_LISTED])
    return listed + (f"; and {len(groups) - _LISTED} more" if len(groups) > _LISTED else "")


def duplicate_findings(data: SurveyData, digests: np.ndarray | None = None) -> list[Finding]:
    digests = image_digests(data) if digests is None else digests
    groups = _groups(digests, np.arange(len(data)))
    if not groups:
        return []
    n_objects = sum(g.size for g in groups)
    return [Finding(WARNING, "duplicate-images",
                    f"{len(groups)} group(s) of byte-identical images ({n_objects} objects) in {data.origin}: {_named(data, groups)}")]


def leakage_findings(data: SurveyData, digests: np.ndarray, splits: dict[str, np.ndarray]) -> list[Finding]:
    train, test = np.asarray(splits.get("train", [])), np.asarray(splits.get("test", []))
    if train.size == 0 or test.size == 0:
        return []
    shared = np.intersect1d(digests[train], digests[test])
    if shared.size == 0:
        return []
    rows = np.concatenate([train, test])
    shared_set = set(shared.tolist())
    groups = [g for g in _groups(digests, rows) if digests[g[0]] in shared_set]
    n_test = int(np.isin(digests[test], shared).sum())
    return [Finding(WARNING, "train-test-leakage",
                    f"{n_test} test object(s) have byte-identical images in the train split ({len(groups)} group(s)); "
                    f"the probe is scored on images it was fitted on: {_named(data, groups)}")]


# -- labels ----------------------------------------------------------------------------------------


def _physical_range(name: str) -> tuple[float, float] | None:
    return label_range("redshift" if name.lower() in _REDSHIFT_ALIASES else name)


def _present(values: np.ndarray) -> np.ndarray:
    x = values.astype(np.float64)
    return x[np.isfinite(x) & (x != -1)] if values.dtype.kind in "iu" else x[np.isfinite(x)]


def label_findings(data: SurveyData) -> list[Finding]:
    findings = []
    for name, values in sorted(data.labels.items()):
        if values.ndim != 1 or values.dtype.kind not in "fiu":
            continue
        present = _present(values)
        base = next((name[: -len(s)] for s in _ERROR_SUFFIXES if name.lower().endswith(s)), None)
        if base is not None:
            findings += _error_findings(data, name, base, present)
            continue
        bounds = _physical_range(name)
        if bounds is None or present.size == 0:
            continue
        low, high = bounds
        below, above = present[present < low], present[present > high]
        if below.size or above.size:
            findings.append(Finding(WARNING, "label-range",
                                    f"label {name!r}: {below.size} value(s) below {low:g} and {above.size} above {high:g}, "
                                    f"its physical range (seen {present.min():.4g} to {present.max():.4g})"))
    return findings


def _error_findings(data: SurveyData, name: str, base: str, errors: np.ndarray) -> list[Finding]:
    """Uncertainties must be >= 0 and narrower than the whole range their label can take."""
    if errors.size == 0:
        return []
    if base in data.labels and data.labels[base].dtype.kind in "fiu" and _present(data.labels[base]).size > 1:
        values = _present(data.labels[base])
        span, what = float(values.max() - values.min()), f"the range of {base!r} in the data"
    elif (bounds := _physical_range(base)) is not None:
        span, what = float(bounds[1] - bounds[0]), f"the physical range of {base!r}"
    else:
        span, what = np.inf, ""
    negative, huge = errors[errors < 0], errors[errors > span]
    if not (negative.size or huge.size):
        return []
    parts = [f"{negative.size} negative (e.g. {negative.min():.4g})"] if negative.size else []
    if huge.size:
        parts.append(f"{huge.size} larger than {what} ({span:.4g}; e.g. {huge.max():.4g})")
    return [Finding(WARNING, "label-error", f"label {name!r} holds impossible uncertainties: {', '.join(parts)}")]


# -- bands and metadata ----------------------------------------------------------------------------


def band_findings(data: SurveyData) -> list[Finding]:
    """Per band: objects with no valid pixel, and objects whose valid pixels all hold one value."""
    empty = np.zeros(data.n_bands, dtype=np.int64)
    constant = np.zeros(data.n_bands, dtype=np.int64)
    first_empty: list[int | None] = [None] * data.n_bands
    first_constant: list[int | None] = [None] * data.n_bands
    for start in range(0, len(data), _ROW_BLOCK):
        image = np.asarray(data.image[start : start + _ROW_BLOCK], dtype=np.float32)
        valid = ~np.asarray(data.mask[start : start + _ROW_BLOCK])
        n_valid = valid.sum(axis=(2, 3))
        high = np.where(valid, image, -np.inf).max(axis=(2, 3))
        low = np.where(valid, image, np.inf).min(axis=(2, 3))
        is_empty, is_constant = n_valid == 0, (n_valid > 0) & (high == low)
        for band in range(data.n_bands):
            for flags, counts, first in ((is_empty, empty, first_empty), (is_constant, constant, first_constant)):
                hits = np.flatnonzero(flags[:, band])
                counts[band] += hits.size
                if hits.size and first[band] is None:
                    first[band] = start + int(hits[0])
    findings = []
    for band, name in enumerate(data.bands):
        for check, counts, first, what in (("empty-band", empty, first_empty, "no valid pixel"),
                                           ("constant-band", constant, first_constant, "a single value in every valid pixel")):
            if counts[band]:
                findings.append(Finding(WARNING, check,
                                        f"band {name!r}: {counts[band]} of {len(data)} object(s) have {what} "
                                        f"(first {str(data.object_id[first[band]])!r})"))
    return findings


def metadata_findings(data: SurveyData) -> list[Finding]:
    findings = []
    known_position = np.isfinite(data.ra) & np.isfinite(data.dec)
    for name, known in (("pixel_scale", np.isfinite(data.pixel_scale)), ("psf_fwhm", np.isfinite(data.psf_fwhm).all(axis=1)),
                        ("ebv", np.isfinite(data.ebv)), ("ra/dec", known_position)):
        missing = float(1.0 - known.mean())
        if missing == 1.0:
            findings.append(Finding(NOTE, "missing-metadata", f"{name} is unknown for every object"))
        elif missing > 0:
            findings.append(Finding(WARNING, "missing-metadata", f"{name} is missing for {missing:.1%} of objects "
                                    f"({int((~known).sum())} of {len(data)})"))
    return findings
