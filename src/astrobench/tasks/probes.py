"""Probes on frozen embeddings, and the labelled subsets they are trained on.

Every probe is a scikit-learn estimator. A task builds one *prototype* per protocol and fits
``sklearn.base.clone(prototype)`` for every seed and draw (``fit_probe``), so no fitted state is
ever shared between evaluations.

- linear: ``StandardScaler`` + ``LogisticRegression`` (L2, lbfgs; multinomial over >2 classes);
  ``TorchLinearProbe`` minimises the same objective with full-batch L-BFGS in torch, for large N
  on a GPU (it agrees with the scikit-learn probe on small N; tested).
- knn: k = 20 nearest neighbours by cosine distance (brute force, exact), majority vote or mean.
- ridge: ``StandardScaler`` + ``Ridge`` for continuous targets (vote fractions).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from astrobench.datasets.schema import DataError

KNN_K = 20
LINEAR_BACKENDS = ("sklearn", "torch", "auto")
# "auto" uses the torch probe on a GPU from this many training rows on; below, scikit-learn
TORCH_AUTO_MIN_ROWS = 20_000


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
    rng = np.random.default_rng(seed)
    if not balanced:
        if budget is None or budget >= eligible.size:
            return eligible
        return np.sort(rng.choice(eligible, size=budget, replace=False))
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


# -- probes --------------------------------------------------------------------------------------


def sklearn_linear_classifier(C: float = 1.0, max_iter: int = 1000) -> Pipeline:
    """Standardised features, L2 logistic regression (multinomial softmax over more than 2 classes)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def knn_classifier(k: int = KNN_K) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")


def knn_regressor(k: int = KNN_K) -> KNeighborsRegressor:
    """Prediction = mean target of the k cosine-nearest training objects."""
    return KNeighborsRegressor(n_neighbors=k, metric="cosine", algorithm="brute")


def ridge_regressor(alpha: float = 1.0) -> Pipeline:
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


def resolve_linear_backend(backend: str, n_train: int) -> str:
    if backend not in LINEAR_BACKENDS:
        raise ValueError(f"linear probe backend must be one of {LINEAR_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "torch" if torch.cuda.is_available() and n_train >= TORCH_AUTO_MIN_ROWS else "sklearn"
    return backend


def linear_classifier(backend: str = "sklearn", C: float = 1.0, n_train: int = 0) -> BaseEstimator:
    """The linear-probe prototype for ``backend`` (``auto`` decided by ``n_train`` and the GPU)."""
    if resolve_linear_backend(backend, n_train) == "torch":
        return TorchLinearProbe(C=C)
    return sklearn_linear_classifier(C=C)


def fit_probe(prototype: BaseEstimator, features: np.ndarray, targets: np.ndarray) -> BaseEstimator:
    """Fit a fresh ``clone`` of ``prototype``; a kNN probe's k is capped at the training-set size."""
    estimator = clone(prototype)
    if isinstance(estimator, (KNeighborsClassifier, KNeighborsRegressor)):
        estimator.set_params(n_neighbors=min(estimator.n_neighbors, len(features)))
    if is_classifier(estimator) and np.unique(targets).size < 2:
        raise DataError(f"the labelled training subset holds a single class ({np.unique(targets)[0].item()!r}); a classifier needs two")
    return estimator.fit(features, targets)


class TorchLinearProbe(ClassifierMixin, BaseEstimator):
    """Logistic regression with the objective of ``StandardScaler`` + ``LogisticRegression(C)``.

    Minimises  C · Σ_i log-loss_i + ½ ||W||²  (intercept unpenalised) on standardised features,
    by full-batch L-BFGS with a strong-Wolfe line search, stopping when the largest gradient entry
    of the scaled objective is below ``tol`` (scikit-learn's lbfgs criterion on the same objective). Two classes use one logit (sigmoid),
    more use a softmax, as scikit-learn does; the objective is divided by C·N (same minimiser,
    better scaled). Features are standardised with the training mean and population std
    (std 0 -> 1), as ``StandardScaler`` does.
    """

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 500,
        tol: float = 1e-4,
        device: str | None = None,
        dtype: str = "float32",
    ):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.dtype = dtype

    def _torch(self, x: np.ndarray) -> torch.Tensor:
        device = torch.device(self.device) if self.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.as_tensor(np.asarray(x), dtype=getattr(torch, self.dtype), device=device)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "TorchLinearProbe":
        if not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C}")
        X = np.asarray(X)
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        if self.classes_.size < 2:
            raise DataError(f"the labelled training subset holds a single class ({self.classes_[0].item()!r}); a classifier needs two")
        x = self._torch(X)
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        x = (x - mean) / std
        n, d = x.shape
        n_outputs = 1 if self.classes_.size == 2 else self.classes_.size
        weight = torch.zeros(d, n_outputs, dtype=x.dtype, device=x.device, requires_grad=True)
        bias = torch.zeros(n_outputs, dtype=x.dtype, device=x.device, requires_grad=True)
        target = torch.as_tensor(y_index, device=x.device)
        penalty = 1.0 / (2.0 * self.C * n)

        def loss_fn() -> torch.Tensor:
            logits = x @ weight + bias
            if n_outputs == 1:
                data = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.to(x.dtype))
            else:
                data = torch.nn.functional.cross_entropy(logits, target)
            return data + penalty * (weight * weight).sum()

        optimizer = torch.optim.LBFGS(
            [weight, bias],
            lr=1.0,
            max_iter=self.max_iter,
            tolerance_grad=self.tol,
            tolerance_change=self.tol * 1e-3,
            history_size=20,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.n_iter_ = int(optimizer.state[optimizer._params[0]].get("n_iter", 0))
        self.mean_, self.std_ = mean.detach(), std.detach()
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        self.n_features_in_ = d
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = ((self._torch(X) - self.mean_) / self.std_) @ self.weight_ + self.bias_
        logits = logits.cpu().numpy().astype(np.float64)
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-scores))
            return np.stack([1.0 - positive, positive], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# -- helpers shared by the tasks -----------------------------------------------------------------


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
