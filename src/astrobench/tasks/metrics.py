"""Metrics of the downstream tasks: pure functions of NumPy arrays, each exactly what its name says.

Redshift (DESIGN section 5, Hayat et al. 2021 following Pasquet et al. 2019):
    Δz = (z_phot − z_spec) / (1 + z_spec)
    σ_MAD = 1.4826 × median(|Δz − median(Δz)|)
    η = 100 × fraction of objects with |Δz| > threshold (strictly greater; a percentage)
    bias = mean(Δz)
Binned PDFs are read as piecewise-uniform densities (constant inside each bin), so their CDF is
piecewise linear; CRPS and PIT are exact for that density.

Retrieval: a ranking is given as a boolean ``ranked_relevance`` matrix (queries x ranked gallery,
best first); the caller decides the order (see ``search.cosine_ranking`` for the tie rule).

Classification metrics are computed with NumPy (a bootstrap calls them hundreds of times per
result); the tests check them against scikit-learn's definitions of the same names.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

SIGMA_MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of a Gaussian sigma


# -- redshift ------------------------------------------------------------------------------------


def _as_1d_float(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one object")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def delta_z(z_phot: np.ndarray, z_spec: np.ndarray) -> np.ndarray:
    """Normalised residual Δz = (z_phot − z_spec) / (1 + z_spec), per object."""
    z_phot = _as_1d_float(z_phot, "z_phot")
    z_spec = _as_1d_float(z_spec, "z_spec")
    if z_phot.shape != z_spec.shape:
        raise ValueError(f"z_phot has {z_phot.size} values but z_spec has {z_spec.size}")
    if np.any(z_spec <= -1.0):
        raise ValueError("z_spec must be > -1 (Δz divides by 1 + z_spec)")
    return (z_phot - z_spec) / (1.0 + z_spec)


def redshift_metrics(
    z_phot: np.ndarray, z_spec: np.ndarray, outlier_threshold: float = 0.05
) -> dict[str, float]:
    """σ_MAD, η (``eta_percent``: percentage of |Δz| > ``outlier_threshold``) and bias = mean(Δz)."""
    if not outlier_threshold > 0:
        raise ValueError(f"outlier_threshold must be > 0, got {outlier_threshold}")
    dz = delta_z(z_phot, z_spec)
    sigma_mad = SIGMA_MAD_SCALE * float(np.median(np.abs(dz - np.median(dz))))
    eta_percent = 100.0 * float(np.mean(np.abs(dz) > outlier_threshold))
    return {"sigma_mad": sigma_mad, "eta_percent": eta_percent, "bias": float(np.mean(dz))}


def _check_binned(probabilities: np.ndarray, bin_edges: np.ndarray, z_true: np.ndarray):
    p = np.asarray(probabilities, dtype=np.float64)
    edges = np.asarray(bin_edges, dtype=np.float64)
    z = _as_1d_float(z_true, "z_true")
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("bin_edges must be a strictly increasing 1-D array of at least two edges")
    if p.ndim != 2 or p.shape != (z.size, edges.size - 1):
        raise ValueError(
            f"probabilities must have shape (n_objects, n_bins) = ({z.size}, {edges.size - 1}), got {p.shape}"
        )
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and non-negative")
    sums = p.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"each row of probabilities must sum to 1; row {worst} sums to {sums[worst]:.6f}")
    return p / sums[:, None], edges, z


def binned_cdf(probabilities: np.ndarray, bin_edges: np.ndarray, z: np.ndarray) -> np.ndarray:
    """CDF of each object's piecewise-uniform PDF at its own ``z`` (0 below, 1 above the edges)."""
    p, edges, z = _check_binned(probabilities, bin_edges, z)
    cum = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(p, axis=1)], axis=1)
    # index of the bin holding z; clipped so that z outside the edges reads 0 or 1 below
    b = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, edges.size - 2)
    rows = np.arange(z.size)
    frac = np.clip((z - edges[b]) / (edges[b + 1] - edges[b]), 0.0, 1.0)
    return cum[rows, b] + frac * p[rows, b]


def pit_values(probabilities: np.ndarray, bin_edges: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """Probability integral transform PIT_i = CDF_i(z_true_i); uniform on [0, 1] if the PDFs are calibrated."""
    return binned_cdf(probabilities, bin_edges, z_true)


def crps_binned(probabilities: np.ndarray, bin_edges: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """Per-object CRPS = ∫ (F(z) − 1[z ≥ z_true])² dz for a piecewise-uniform binned PDF.

    Exact: inside a bin F is linear, so each bin is split at z_true into a piece compared with 0
    and a piece compared with 1, each integrated in closed form. Truth outside the edges adds the
    distance to the nearest edge (there F is 0 or 1 and the step is the opposite). Same units as z.
    """
    p, edges, z = _check_binned(probabilities, bin_edges, z_true)
    a, b = edges[:-1][None, :], edges[1:][None, :]
    cum = np.cumsum(p, axis=1)
    f_a, f_b = cum - p, cum
    m = np.clip(z[:, None], a, b)
    f_m = f_a + (f_b - f_a) * (m - a) / (b - a)

    def integral_of_square(width, u, v):  # ∫ over an interval of a linear function from u to v, squared
        return width * (u * u + u * v + v * v) / 3.0

    below = integral_of_square(m - a, f_a, f_m)  # z < z_true: step is 0
    above = integral_of_square(b - m, f_m - 1.0, f_b - 1.0)  # z ≥ z_true: step is 1
    tails = np.maximum(edges[0] - z, 0.0) + np.maximum(z - edges[-1], 0.0)
    return (below + above).sum(axis=1) + tails


# -- retrieval -----------------------------------------------------------------------------------


def _check_relevance(ranked_relevance: np.ndarray) -> np.ndarray:
    rel = np.asarray(ranked_relevance)
    if rel.ndim != 2:
        raise ValueError(f"ranked_relevance must be (n_queries, n_ranked), got shape {rel.shape}")
    if rel.shape[0] == 0:
        raise ValueError("no queries: retrieval metrics need at least one query")
    if rel.dtype != np.bool_:
        if not np.isin(rel, (0, 1)).all():
            raise ValueError("ranked_relevance must be boolean (or 0/1)")
        rel = rel.astype(bool)
    return rel


def precision_at_k_per_query(ranked_relevance: np.ndarray, k: int) -> np.ndarray:
    """Per query: (number of relevant items among the first k ranked) / k."""
    rel = _check_relevance(ranked_relevance)
    if not 1 <= k <= rel.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of ranked items ({rel.shape[1]})")
    return rel[:, :k].sum(axis=1) / float(k)


def precision_at_k(ranked_relevance: np.ndarray, k: int) -> float:
    """Mean over queries of precision@k."""
    return float(np.mean(precision_at_k_per_query(ranked_relevance, k)))


def average_precision(ranked_relevance: np.ndarray) -> np.ndarray:
    """Per query AP = (1 / R) Σ_{ranks r with a relevant item} precision@r, over the full ranking.

    R is the number of relevant items in the ranking; a query with R = 0 has no defined AP and
    is an error (the caller drops such queries and says so).
    """
    rel = _check_relevance(ranked_relevance)
    n_relevant = rel.sum(axis=1)
    if np.any(n_relevant == 0):
        raise ValueError(
            f"{int((n_relevant == 0).sum())} queries have no relevant item in their ranking: "
            "average precision is undefined for them"
        )
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    return np.where(rel, hits / ranks, 0.0).sum(axis=1) / n_relevant


def mean_average_precision(ranked_relevance: np.ndarray) -> float:
    """mAP: the mean over queries of ``average_precision``."""
    return float(np.mean(average_precision(ranked_relevance)))


# -- classification and regression -----------------------------------------------------------


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"{what}: truth {y_true.shape} and prediction {y_pred.shape} must be equal 1-D shapes")
    if y_true.size == 0:
        raise ValueError(f"{what}: no objects to score")
    return y_true, y_pred


def _f1(tp: np.ndarray, n_true: np.ndarray, n_predicted: np.ndarray) -> np.ndarray:
    """F1 = 2·TP / (#true + #predicted) per class; 0 where a class is neither true nor predicted."""
    denominator = n_true + n_predicted
    return np.where(denominator > 0, 2.0 * tp / np.maximum(denominator, 1), 0.0)


def binary_classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, positive_score: np.ndarray
) -> dict[str, float]:
    """Accuracy, balanced accuracy (the mean of the two classes' recalls: the accuracy a test set
    with as many positives as negatives would give), ROC-AUC (from ``positive_score``, P(class 1))
    and F1 of the positive class 1.

    ROC-AUC is the Mann-Whitney statistic: the probability that a positive outscores a negative,
    ties counting a half (the area under the ROC curve with tied scores joined by a straight line).
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "binary classification")
    y_true, y_pred = y_true.astype(int), y_pred.astype(int)
    score = np.asarray(positive_score, dtype=np.float64)
    if score.shape != y_true.shape:
        raise ValueError(f"binary classification: {score.size} scores for {y_true.size} objects")
    positive = y_true == 1
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if n_positive == 0 or n_negative == 0:
        raise ValueError(f"ROC-AUC needs both classes in the truth; it holds only class {int(y_true[0])}")
    ranks = rankdata(score)  # average ranks: a tie counts a half
    auc = (ranks[positive].sum() - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative)
    tp = np.sum(positive & (y_pred == 1))
    tn = np.sum(~positive & (y_pred == 0))
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "balanced_accuracy": float(0.5 * (tp / n_positive + tn / n_negative)),
        "roc_auc": float(auc),
        "f1": float(_f1(tp, n_positive, np.sum(y_pred == 1))),
    }


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (unweighted mean of per-class F1 over ``labels``; by default the classes
    present in truth or prediction; a class never predicted and never true is not averaged)."""
    y_true, y_pred = _check_pair(y_true, y_pred, "classification")
    classes = np.union1d(y_true, y_pred) if labels is None else np.asarray(labels)
    # per class: objects truly of it, predicted as it, and both (values outside ``labels`` count for none)
    n_true = np.array([np.sum(y_true == c) for c in classes])
    n_predicted = np.array([np.sum(y_pred == c) for c in classes])
    tp = np.array([np.sum((y_true == c) & (y_pred == c)) for c in classes])
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(np.mean(_f1(tp, n_true, n_predicted))),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² and RMSE = sqrt(mean((y − ŷ)²))."""
    y_true, y_pred = _check_pair(np.asarray(y_true, float), np.asarray(y_pred, float), "regression")
    if np.all(y_true == y_true[0]):
        raise ValueError("R² is undefined when every true value is the same")
    residual = y_true - y_pred
    return {
        "r2": float(1.0 - np.sum(residual**2) / np.sum((y_true - y_true.mean()) ** 2)),
        "rmse": float(np.sqrt(np.mean(residual**2))),
    }


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """MAE = mean(|y − ŷ|)."""
    y_true, y_pred = _check_pair(np.asarray(y_true, float), np.asarray(y_pred, float), "regression")
    return float(np.mean(np.abs(y_true - y_pred)))


def per_class_report(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> dict[int, dict[str, float]]:
    """Per class of ``classes``: precision, recall, F1 and support (scikit-learn's
    ``classification_report`` with ``zero_division=0``: a class never predicted has precision 0)."""
    y_true, y_pred = _check_pair(y_true, y_pred, "classification")
    report = {}
    for c in np.asarray(classes).tolist():
        n_true, n_predicted = int(np.sum(y_true == c)), int(np.sum(y_pred == c))
        tp = int(np.sum((y_true == c) & (y_pred == c)))
        report[int(c)] = {
            "precision": tp / n_predicted if n_predicted else 0.0,
            "recall": tp / n_true if n_true else 0.0,
            "f1": float(_f1(np.array(tp), np.array(n_true), np.array(n_predicted))),
            "support": n_true,
        }
    return report


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean over the classes present in the truth of each class's recall (scikit-learn's
    ``balanced_accuracy_score``): answering the majority class everywhere scores 1 / n_classes."""
    y_true, y_pred = _check_pair(y_true, y_pred, "classification")
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))
