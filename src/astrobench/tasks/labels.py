"""A user's own label, checked before any work: the generic tasks' (classification, regression,
retrieval) one reading of "the label is a task option".

``categorical`` turns any label into class indices: integer or bool classes (-1 missing), whole
floats (NaN missing), text (empty missing), or a numeric label cut at ``bin_edges`` (each bin one
class). Classes are renumbered 0..K-1 in sorted order and keep their names for the per-class report.
``numeric`` reads a continuous label. Every error names the label and says what values it holds,
so a wrong choice (a continuous label given to ``classification``, a redshift range that misses the
data) is understood from the message alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from astrobench.datasets.schema import DataError

_MAX_CLASSES_LISTED = 12


@dataclass(frozen=True)
class Categories:
    """Class index per object (-1 = no label) and each class's name (its value in the data)."""

    targets: np.ndarray
    names: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.names)


def require(labels: dict[str, np.ndarray], label: str | None, who: str) -> np.ndarray:
    """The label's values; an error for no ``label`` option or a label the data lacks (listing those it has)."""
    if not label:
        raise ValueError(f"{who} needs the option 'label' (the column to predict, e.g. --task-option label=ring)")
    if label not in labels:
        raise DataError(f"{who}: the data has no label {label!r}; it has {sorted(labels) or 'no labels'}")
    values = np.asarray(labels[label])
    if values.ndim != 1:
        raise DataError(f"{who}: label {label!r} must be one value per object, got shape {values.shape}")
    return values


def describe(values: np.ndarray) -> str:
    """What a label holds, in a few words: its range and coverage, or its classes and their counts."""
    values = np.asarray(values)
    if values.dtype.kind in "USO":
        present = values[values.astype(str) != ""].astype(str)
    elif values.dtype.kind == "f":
        present = values[np.isfinite(values)]
    elif values.dtype.kind in "iu":
        present = values[values >= 0]
    else:
        present = values
    if present.size == 0:
        return f"no values (0 of {values.size} objects labelled)"
    classes, counts = np.unique(present, return_counts=True)
    head = f"{present.size} of {values.size} objects labelled"
    if values.dtype.kind in "USOb" or classes.size <= _MAX_CLASSES_LISTED:
        listed = ", ".join(f"{c!s}: {n}" for c, n in list(zip(classes.tolist(), counts.tolist()))[:_MAX_CLASSES_LISTED])
        more = f", ... ({classes.size} classes)" if classes.size > _MAX_CLASSES_LISTED else ""
        return f"{head}; values {{{listed}{more}}}"
    return f"{head}; {classes.size} distinct values from {present.min():.4g} to {present.max():.4g}"


def categorical(values: np.ndarray, label: str, who: str, bin_edges: Sequence[float] | None = None) -> Categories:
    """Class indices of ``values`` (see the module docstring); at least two classes must be present."""
    values = np.asarray(values)
    if bin_edges is not None:
        return _binned(values, label, who, np.asarray(bin_edges, dtype=np.float64))
    if values.dtype.kind in "USO":
        text = values.astype(str)
        present = text != ""
        names, codes = np.unique(text[present], return_inverse=True)
    else:
        if values.dtype.kind == "f":
            present = np.isfinite(values)
            whole = values[present]
            if not np.all(whole == np.round(whole)):
                raise DataError(
                    f"{who}: label {label!r} is continuous ({describe(values)}), not a class label; "
                    "give bin_edges to classify it by ranges, or use the regression task"
                )
        elif values.dtype.kind in "iu":
            present = values >= 0
        elif values.dtype.kind == "b":
            present = np.ones(values.shape, dtype=bool)
        else:
            raise DataError(f"{who}: label {label!r} has dtype {values.dtype}, which is not a class label")
        kept = values[present].astype(np.int64)
        classes, codes = np.unique(kept, return_inverse=True)
        names = np.array([str(c) for c in classes.tolist()])
    targets = np.full(values.shape, -1, dtype=np.int64)
    targets[present] = codes
    if len(names) < 2:
        raise DataError(f"{who}: label {label!r} needs at least two classes; it holds {describe(values)}")
    return Categories(targets, tuple(str(n) for n in names.tolist()))


def _binned(values: np.ndarray, label: str, who: str, edges: np.ndarray) -> Categories:
    if edges.ndim != 1 or edges.size < 3 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"{who}: bin_edges must be at least 3 increasing numbers (2 classes), got {edges.tolist()}")
    if values.dtype.kind not in "fiub":
        raise DataError(f"{who}: label {label!r} has dtype {values.dtype}; bin_edges need a numeric label")
    x = values.astype(np.float64)
    present = np.isfinite(x) if values.dtype.kind == "f" else (values >= 0 if values.dtype.kind in "iu" else np.ones(x.shape, bool))
    below, above = present & (x < edges[0]), present & (x > edges[-1])
    if below.any() or above.any():
        raise DataError(
            f"{who}: label {label!r} has {int(below.sum())} value(s) below the first bin edge {edges[0]:g} and "
            f"{int(above.sum())} above the last {edges[-1]:g} ({describe(values)}); widen bin_edges"
        )
    targets = np.full(values.shape, -1, dtype=np.int64)
    # bin i holds edges[i] <= x < edges[i+1]; the last edge itself belongs to the last bin
    targets[present] = np.minimum(np.searchsorted(edges, x[present], side="right") - 1, edges.size - 2)
    names = tuple(f"[{lo:g}, {hi:g}{']' if i == edges.size - 2 else ')'}" for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])))
    if np.unique(targets[present]).size < 2:
        raise DataError(f"{who}: label {label!r} falls in fewer than two of the bins {list(names)} ({describe(values)})")
    return Categories(targets, names)


def numeric(values: np.ndarray, label: str, who: str) -> np.ndarray:
    """A continuous label as float64 with NaN where missing; it must vary."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        x = values.astype(np.float64)
    elif values.dtype.kind in "iu":  # integer labels use -1 for missing
        x = np.where(values >= 0, values, np.nan).astype(np.float64)
    elif values.dtype.kind == "b":
        x = values.astype(np.float64)
    else:
        raise DataError(f"{who}: label {label!r} holds {values.dtype} values ({describe(values)}); regression needs numbers")
    finite = x[np.isfinite(x)]
    if finite.size < 2 or np.all(finite == finite[0]):
        raise DataError(f"{who}: label {label!r} needs at least two different values to regress; it holds {describe(values)}")
    return x
