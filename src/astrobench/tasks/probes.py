"""Probes: registered evaluation protocols on frozen embeddings, in torch on the run's device.

A task says *what* to predict for its labelled training rows (a ``Target``: classes, continuous
values, or values with bins), looks the probe up by name in the ``PROBES`` registry (``Task.probe``;
plugins add their own with ``@register_probe("name")``), fits it and scores its ``Prediction``.
A ``Probe`` holds options only: ``fit`` returns a new ``FittedProbe`` and never changes the probe,
so every seed and draw fits from scratch (what ``clone()`` gave with scikit-learn). Embeddings
arrive as a torch tensor on the run's device (``device_embeddings``) and stay there.

Built-in protocols:

- ``linear``: logistic regression on standardised features, ridge for values (``linear_probe.py``).
- ``knn``. The k (20) cosine-nearest training objects, exact top-k by chunked matrix product
  (``search.cosine_topk``, memory chunk x n_train). Classes: the neighbours' class fractions are
  the probabilities (the predicted class is the most frequent, ties to the lower class, as
  scikit-learn's ``KNeighborsClassifier``); values and binned values: the neighbours' mean value.
- ``finetune``. Trains the encoder too, so it needs the model, not embeddings: ``needs_model``
  tells the runner to hand the task a copy of the model, and the task's ``finetune`` runs it.

Agreement with scikit-learn (``tests/tasks/test_probes.py``): the kNN probe's probabilities and means are
scikit-learn's exactly where no distances tie; the linear probe's: ``linear_probe.py``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from astrobench.datasets.schema import DataError
from astrobench.datasets.splits import draw_rows
from astrobench.registry import PROBES, register_probe
from astrobench.tasks.inputs import EmbeddingInputs
from astrobench.tasks.search import cosine_topk

KNN_K = 20
# target kinds a task asks for and a probe declares it can fit (``Probe.handles``)
CLASSES, VALUES, BINNED = "classes", "values", "binned"
TARGET_KINDS = (CLASSES, VALUES, BINNED)
ROW_CHUNK = 1 << 16  # rows per block for float64 moments and Gram matrices (bounded memory)


# -- labels --------------------------------------------------------------------------------------


def labelled_mask(values: np.ndarray) -> np.ndarray:
    """True where a label is present: finite floats, integers >= 0 (-1 = missing), every bool.

    A 2-D label (N, K) counts as present only when all of its K entries are.
    """
    values = np.asarray(values)
    if values.dtype == np.bool_:
        present = np.ones(values.shape, dtype=bool)
    elif np.issubdtype(values.dtype, np.integer):
        present = values >= 0
    elif np.issubdtype(values.dtype, np.floating):
        present = np.isfinite(values)
    else:
        raise DataError(f"labels of dtype {values.dtype} are neither bool, integer nor float")
    return present.reshape(len(values), -1).all(axis=1)


def require_label(labels: dict[str, np.ndarray], name: str, who: str) -> np.ndarray:
    """The label array ``name``, or a ``DataError`` naming the missing label."""
    if name not in labels:
        raise DataError(f"{who} needs label {name!r}, which the data does not have (it has: {sorted(labels) or 'no labels'})")
    return np.asarray(labels[name])


def draw_labelled_subset(
    train_indices: np.ndarray,
    labels: np.ndarray,
    budget: int | None,
    seed: int | Sequence[int],
    *,
    balanced: bool = False,
    min_per_class: int = 1,
    label_name: str = "label",
) -> np.ndarray:
    """Sorted dataset rows of a labelled training subset of (at most) ``budget`` objects.

    Only rows of ``train_indices`` whose label is present are eligible. ``budget=None`` takes all
    of them. Unbalanced: a uniform draw without replacement; a budget above the eligible count is
    capped at it (the caller records the size it got). Balanced: ``budget // n_classes`` per class,
    capped by the rarest class so that the subset stays balanced; fewer than ``min_per_class``
    objects of a class is an error naming the label. The draw depends only on ``seed``.
    """
    train_indices = np.asarray(train_indices)
    values = np.asarray(labels)
    eligible = np.sort(train_indices[labelled_mask(values[train_indices])])
    if eligible.size == 0:
        raise DataError(f"no training object has label {label_name!r}")
    if budget is not None and budget < 1:
        raise ValueError(f"label budget must be >= 1, got {budget}")
    if not balanced:
        return draw_rows(eligible, budget, seed)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(values[eligible], return_counts=True)
    if classes.size < 2:
        raise DataError(f"label {label_name!r} has a single class ({classes[0].item()!r}) among the training objects")
    rarest = int(counts.min())
    if rarest < min_per_class:
        raise DataError(
            f"label {label_name!r}: only {rarest} training objects of class {classes[np.argmin(counts)].item()!r}; "
            f"a balanced probe needs at least {min_per_class} per class"
        )
    per_class = rarest if budget is None else min(budget // classes.size, rarest)
    if per_class < min_per_class:
        raise ValueError(
            f"label budget {budget} gives {per_class} objects per class; at least {min_per_class} are needed"
        )
    chosen = [rng.choice(eligible[values[eligible] == c], size=per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))


def class_targets(values: np.ndarray, label_name: str) -> np.ndarray:
    """Integer class targets (N,) with -1 where the label is missing.

    bool -> 0/1; integers as they are (-1 = missing); floats must hold whole numbers (NaN = missing).
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"label {label_name!r} must be one value per object, got shape {values.shape}")
    present = labelled_mask(values)
    if values.dtype != np.bool_ and np.issubdtype(values.dtype, np.floating):
        whole = values[present]
        if not np.all(whole == np.round(whole)):
            raise DataError(f"label {label_name!r} holds non-integer values; it must be a class label")
    targets = np.full(values.shape, -1, dtype=np.int64)
    targets[present] = values[present].astype(np.int64)
    return targets


def binary_targets(values: np.ndarray, label_name: str) -> np.ndarray:
    """``class_targets`` restricted to 0/1 (e.g. dwarf / not dwarf), -1 where missing."""
    targets = class_targets(values, label_name)
    bad = (targets != -1) & (targets != 0) & (targets != 1)
    if bad.any():
        raise DataError(f"label {label_name!r} must be 0/1 (or bool); found {sorted(set(targets[bad].tolist()))[:5]}")
    return targets


def labelled_split(splits: dict[str, np.ndarray], name: str, present: np.ndarray, label_name: str) -> np.ndarray:
    """Rows of split ``name`` that have the label; a clear error if the split has none."""
    if name not in splits:
        raise DataError(f"the data has no {name!r} split (it has {sorted(splits)})")
    rows = np.asarray(splits[name])
    rows = rows[present[rows]]
    if rows.size == 0:
        raise DataError(f"no object of the {name!r} split has label {label_name!r}")
    return rows


def repeat_seed(seed: int, stream: int, repeat: int = 0) -> list[int]:
    """An independent random stream per (seed, purpose, repeat) for ``np.random.default_rng``."""
    return [int(seed), int(stream), int(repeat)]


def probe_seed(seed: int, repeat: int = 0) -> int:
    """The integer seed a probe's own randomness (e.g. an MLP's initialisation) gets per (seed, repeat)."""
    return int(np.random.default_rng(repeat_seed(seed, 7, repeat)).integers(2**31 - 1))


def checked_embeddings(embeddings: np.ndarray, n_objects: int) -> np.ndarray:
    """The (N, D) embedding matrix, or a clear error for a wrong shape or non-finite values."""
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] != n_objects:
        raise ValueError(f"embeddings must be (n_objects={n_objects}, dim), got shape {x.shape}")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"{int((~finite).sum())} of {n_objects} embeddings hold NaN or inf (first at row {int(np.argmin(finite))})"
        )
    return x


def device_embeddings(inputs: "EmbeddingInputs") -> torch.Tensor:
    """The checked embeddings as a float32 tensor on ``inputs.device`` (uploaded once per evaluation)."""
    x = checked_embeddings(inputs.embeddings, len(inputs.object_id))
    return torch.as_tensor(np.asarray(x, dtype=np.float32)).to(torch.device(inputs.device))


def take(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """Rows of a device tensor, indexed on its device."""
    return x[torch.as_tensor(np.asarray(rows, dtype=np.int64), device=x.device)]


# -- what a probe fits and what it predicts ------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Target:
    """What a task asks a probe to learn from its training rows (one entry per row).

    ``classes``: class indices in [0, n_classes). ``values``: finite floats. ``binned``: both, the
    values and their bin index; the probe predicts in the form it fits (``linear`` a distribution
    over the bins, ``knn`` values). Build with ``of_classes``, ``of_values`` or ``of_binned``.
    """

    kind: str
    classes: np.ndarray | None = None
    n_classes: int | None = None
    values: np.ndarray | None = None

    @classmethod
    def of_classes(cls, classes: np.ndarray, n_classes: int) -> "Target":
        return cls(CLASSES, classes=np.asarray(classes, dtype=np.int64), n_classes=int(n_classes))

    @classmethod
    def of_values(cls, values: np.ndarray) -> "Target":
        return cls(VALUES, values=np.asarray(values, dtype=np.float64))

    @classmethod
    def of_binned(cls, values: np.ndarray, bins: np.ndarray, n_bins: int) -> "Target":
        return cls(BINNED, classes=np.asarray(bins, dtype=np.int64), n_classes=int(n_bins),
                   values=np.asarray(values, dtype=np.float64))

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target kind must be one of {TARGET_KINDS}, got {self.kind!r}")
        if self.kind in (CLASSES, BINNED):
            if self.classes is None or self.classes.ndim != 1 or self.n_classes is None or self.n_classes < 1:
                raise ValueError(f"a {self.kind!r} target needs 1-D classes and n_classes >= 1")
            if self.classes.size and (self.classes.min() < 0 or self.classes.max() >= self.n_classes):
                raise DataError(f"class targets must lie in [0, {self.n_classes}); got {self.classes.min()}..{self.classes.max()}")
        if self.kind in (VALUES, BINNED):
            if self.values is None or self.values.ndim != 1 or not np.isfinite(self.values).all():
                raise DataError(f"a {self.kind!r} target needs 1-D finite values")
        if self.kind == BINNED and self.values.shape != self.classes.shape:
            raise ValueError(f"binned target: {self.values.size} values but {self.classes.size} bins")

    def __len__(self) -> int:
        return len(self.values if self.kind == VALUES else self.classes)


@dataclass
class Prediction:
    """A fitted probe's output for some objects: ``probabilities`` (m, n_classes) over every class
    of the target (absent classes 0), or ``values`` (m,); float64 NumPy, on the host."""

    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None

    def predicted_classes(self) -> np.ndarray:
        """The most probable class per object (ties to the lower class)."""
        if self.probabilities is None:
            raise ValueError("this prediction holds values, not class probabilities")
        return np.argmax(self.probabilities, axis=1).astype(np.int64)


class FittedProbe(ABC):
    """A probe fitted to one training set. ``info``: JSON-serialisable facts (iterations, ...)."""

    info: dict[str, Any]

    @abstractmethod
    def predict(self, x: torch.Tensor) -> Prediction:
        """Predict for embeddings ``x`` (m, D), on the device they are on."""


class Probe(ABC):
    """A registered protocol on embeddings; constructor parameters are its options.

    ``handles``: the target kinds it can fit (a task runs a probe only if it handles every kind the
    task asks for: ``Task.protocol_problem``). ``needs_model``: the protocol trains the encoder and
    runs through ``Task.finetune`` with a copy of the model instead of embeddings.
    """

    registered_name: ClassVar[str]
    handles: ClassVar[frozenset[str]] = frozenset()
    needs_model: ClassVar[bool] = False

    @abstractmethod
    def fit(self, x: torch.Tensor, target: Target, *, seed: int = 0) -> FittedProbe:
        """Fit to embeddings ``x`` (n, D) on the run's device and ``target`` (n entries)."""


def make_probe(protocol: str, options: dict[str, Any] | None = None, who: str = "") -> Probe:
    """The registered probe ``protocol`` built with ``options`` (each one a named constructor parameter)."""
    cls = PROBES.get(protocol)
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise TypeError(f"probe {protocol!r} resolves to {cls!r}, which is not a subclass of astrobench's Probe")
    options = dict(options or {})
    params = inspect.signature(cls.__init__).parameters
    allowed = [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for key in options:
        if key not in allowed:
            raise ValueError(f"{who + ': ' if who else ''}probe {protocol!r} has no option {key!r}; its options are {allowed}")
    return cls(**options)


def needs_model(protocol: str) -> bool:
    """Whether ``protocol`` trains the model (the runner then hands the task a copy of it)."""
    return protocol in PROBES and bool(getattr(PROBES.get(protocol), "needs_model", False))


def fit_probe(probe: Probe, x: torch.Tensor, target: Target, *, seed: int = 0) -> FittedProbe:
    """``probe.fit`` after the checks every probe needs: one target per row, two classes to tell apart."""
    if x.ndim != 2 or x.shape[0] != len(target):
        raise ValueError(f"{len(target)} targets for embeddings of shape {tuple(x.shape)}")
    if len(target) == 0:
        raise DataError("the labelled training subset is empty")
    if target.kind == CLASSES and np.unique(target.classes).size < 2:
        raise DataError(
            f"the labelled training subset holds a single class ({int(target.classes[0])}); a classifier needs two"
        )
    return probe.fit(x, target, seed=seed)


def present_classes(target: Target) -> tuple[np.ndarray, np.ndarray]:
    """(sorted classes present in the target, each row's index into them); two are needed."""
    present, index = np.unique(target.classes, return_inverse=True)
    if present.size < 2:
        raise DataError(
            f"the labelled training subset holds a single class ({int(present[0])}); a classifier needs two"
        )
    return present, index.astype(np.int64)


def full_probabilities(probabilities: torch.Tensor, present: np.ndarray, n_classes: int) -> np.ndarray:
    """(m, n_classes) float64 on the host from probabilities over the ``present`` classes only."""
    out = np.zeros((probabilities.shape[0], n_classes))
    out[:, present] = probabilities.double().cpu().numpy()
    return out


# -- standardisation -----------------------------------------------------------------------------


@dataclass
class Standardiser:
    """``StandardScaler``'s transform: training mean and population std; constant features keep scale 1."""

    mean: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> "Standardiser":
        n = x.shape[0]
        # float64 sums over row blocks: exact enough for float32 input, no float64 copy of x
        mean = sum(block.sum(0, dtype=torch.float64) for block in x.split(ROW_CHUNK)) / n
        var = sum(((block.double() - mean) ** 2).sum(0) for block in x.split(ROW_CHUNK)) / n
        eps = torch.finfo(torch.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2  # scikit-learn's _is_constant_feature
        scale = torch.where(constant, torch.ones_like(var), var.sqrt())
        return cls(mean, scale)

    def __call__(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (x.to(dtype) - self.mean.to(dtype)) / self.scale.to(dtype)


# -- k nearest neighbours ------------------------------------------------------------------------


class _FittedKNN(FittedProbe):
    def __init__(self, gallery: torch.Tensor, target: Target, k: int, chunk_size: int | None):
        self.gallery, self.target, self.k, self.chunk_size = gallery, target, k, chunk_size
        self.info = {"k": k}

    def predict(self, x: torch.Tensor) -> Prediction:
        _, neighbours = cosine_topk(x, self.gallery, self.k, device=x.device, chunk_size=self.chunk_size)
        if self.target.kind == CLASSES:
            n_classes = int(self.target.n_classes)
            votes = self.target.classes[neighbours] + n_classes * np.arange(len(neighbours))[:, None]
            counts = np.bincount(votes.ravel(), minlength=len(neighbours) * n_classes)
            return Prediction(probabilities=counts.reshape(len(neighbours), n_classes) / self.k)
        return Prediction(values=self.target.values[neighbours].mean(axis=1))


@register_probe("knn")
class KNNProbe(Probe):
    """Exact cosine k-nearest neighbours: class fractions, or the mean value (module docstring)."""

    handles: ClassVar[frozenset[str]] = frozenset({CLASSES, BINNED, VALUES})

    def __init__(self, k: int = KNN_K, chunk_size: int | None = None):
        if k < 1:
            raise ValueError(f"knn probe: k must be >= 1, got {k}")
        self.k, self.chunk_size = int(k), chunk_size

    def fit(self, x: torch.Tensor, target: Target, *, seed: int = 0) -> FittedProbe:
        # k is capped at the training-set size (a 10-object draw cannot have 20 neighbours)
        return _FittedKNN(x, target, min(self.k, x.shape[0]), self.chunk_size)


# -- fine-tuning ---------------------------------------------------------------------------------


@register_probe("finetune")
class FinetuneProtocol(Probe):
    """Fine-tuning: the encoder trains with a linear head (``tasks/finetune.py``). It needs the
    model, so the runner hands the task a copy of it and calls ``Task.finetune``; a task supports
    this protocol by implementing ``finetune``."""

    needs_model: ClassVar[bool] = True

    def fit(self, x: torch.Tensor, target: Target, *, seed: int = 0) -> FittedProbe:
        raise TypeError("the finetune protocol trains the model: it runs through Task.finetune, not on embeddings")
