"""Flags for results that should not be read as a method's merit (pure functions, no torch).

``result_flags(predictions, loss_curve)`` returns a sorted list of any of:

``"constant_predictions"``: every target the predictions frame holds is predicted (near) constant.
Targets are found by the column conventions of the built-in tasks:

- classification pairs ``label``/``predicted`` and ``label_<q>``/``predicted_<q>`` (truth < 0 or
  NaN = unlabelled, ignored): constant when one class is predicted for at least
  ``MAJORITY_FRACTION`` (99%) of the labelled rows while the truth's own majority class is below it;
- regression pairs ``z_spec``/``z_phot`` and ``<name>``/``<name>_predicted`` (NaN truth ignored):
  constant when the central 80% range of the predictions (10th to 90th percentile) is below
  ``SPREAD_FRACTION`` (0.3) of the truth's. Since std(truth − prediction) >= std(truth) −
  std(prediction), predictions that narrow leave at least ~70% of a constant prediction's scatter;
  percentiles, not the std, so that a few wild predictions do not hide a collapse.

A frame with a ``repeat`` column holds several probes, one per label draw (the dwarf task's
balanced draws), and each is judged on its own rows: a target is constant when it is constant in
every draw, so that probes that each answer one class, a different one per draw (a kNN on identical
embeddings breaks its ties by the draw's order), are flagged rather than averaged into "varied".

A target whose truth is itself (near) constant says nothing and is skipped. All targets, not any:
an honest probe predicts "no" for every object on a rare class (at ``quick``, 99-100% "not
edge-on", "no bar", "no merger" while 89-95% of the truth is "no"), which must not flag a
morphology result whose other answers vary. A frame with no recognised target (similarity search,
a plugin's own columns) is never flagged.

``"loss_not_decreasing"``: the pretraining loss did not fall over training. The curve (``(step,
loss)`` pairs, every logged step) is cut into windows of ``w = max(1, round(0.1 n))`` points: the
first ``w`` (start), ``w`` points from a quarter of the way (quarter), the last ``w`` (end). The
flag is raised unless the end mean lies below both the start mean and the quarter mean by a margin
``max(0.05 × range, 3 × σ √(2/w))``: ``range`` is the span of the curve's running mean over ``w``
points (so the margin scales with the loss, whatever its units or sign) and σ the step-to-step
noise, 1.4826 × MAD of the first differences / √2 (robust to a trend and to outliers), so that a
noisy flat curve is flagged and a noisy falling one is not. The quarter window catches a loss that
falls from its initial value to a trivial plateau and stays there (MAE at ``quick``: 1.56 → 0.99
by step 30 of 150, then 0.99 ± 0.003: the normalised-pixel loss of predicting each patch's mean);
the start window catches one that ends above where it began. Curves of fewer than ``MIN_POINTS``
(10) points are too short to judge and never flagged; a method with no curve (the non-trainable
baselines) never is.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

CONSTANT_PREDICTIONS = "constant_predictions"
LOSS_NOT_DECREASING = "loss_not_decreasing"

MAJORITY_FRACTION = 0.99
SPREAD_FRACTION = 0.3
SPREAD_QUANTILES = (10.0, 90.0)
MIN_POINTS = 10
WINDOW_FRACTION = 0.1
RELATIVE_MARGIN = 0.05
NOISE_Z = 3.0


def result_flags(predictions: Any | None, loss_curve: Sequence[Sequence[float]] | None = None) -> list[str]:
    """The flags of one result: its predictions frame (or None) and pretraining loss curve (or None)."""
    flags = []
    if predictions is not None and constant_predictions(predictions):
        flags.append(CONSTANT_PREDICTIONS)
    if loss_curve is not None and loss_not_decreasing(loss_curve):
        flags.append(LOSS_NOT_DECREASING)
    return sorted(flags)


# -- constant predictions -------------------------------------------------------------------------
def prediction_targets(columns: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(kind, truth column, prediction column)`` for each target a predictions frame holds;
    kind is ``"class"`` or ``"value"``."""
    names = list(columns)
    present = set(names)
    targets = []
    for name in names:
        if name == "predicted" and "label" in present:
            targets.append(("class", "label", name))
        elif name.startswith("predicted_") and f"label_{name[len('predicted_'):]}" in present:
            targets.append(("class", f"label_{name[len('predicted_'):]}", name))
        elif name == "z_phot" and "z_spec" in present:
            targets.append(("value", "z_spec", name))
        elif name.endswith("_predicted") and name[: -len("_predicted")] in present:
            targets.append(("value", name[: -len("_predicted")], name))
    return targets


def constant_predictions(predictions: Any) -> bool:
    """True when every recognised, informative target of the frame is predicted (near) constant
    (in every label draw, where the frame has a ``repeat`` column)."""
    if "repeat" in predictions.columns:
        repeat = np.asarray(predictions["repeat"])
        draws = [repeat == value for value in np.unique(repeat)]
    else:
        draws = [np.ones(len(predictions), dtype=bool)]
    verdicts = []
    for kind, truth_col, pred_col in prediction_targets(predictions.columns):
        truth = np.asarray(predictions[truth_col], dtype=np.float64)
        predicted = np.asarray(predictions[pred_col], dtype=np.float64)
        judge = _constant_classes if kind == "class" else _constant_values
        per_draw = [v for v in (judge(truth[rows], predicted[rows]) for rows in draws) if v is not None]
        if per_draw:
            verdicts.append(all(per_draw))
    return bool(verdicts) and all(verdicts)


def _majority_share(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float(counts.max() / values.size)


def _constant_classes(truth: np.ndarray, predicted: np.ndarray) -> bool | None:
    keep = np.isfinite(truth) & (truth >= 0)
    if keep.sum() < 2 or _majority_share(truth[keep]) >= MAJORITY_FRACTION:
        return None  # nothing to learn: a constant answer would be right
    return _majority_share(predicted[keep]) >= MAJORITY_FRACTION


def _spread(values: np.ndarray) -> float:
    low, high = np.percentile(values, SPREAD_QUANTILES)
    return float(high - low)


def _constant_values(truth: np.ndarray, predicted: np.ndarray) -> bool | None:
    keep = np.isfinite(truth)
    if keep.sum() < 2:
        return None
    truth_spread = _spread(truth[keep])
    if not truth_spread > 0:
        return None
    predicted = predicted[keep]
    if not np.isfinite(predicted).all():
        return False  # non-finite predictions are another failure, not this one
    return _spread(predicted) < SPREAD_FRACTION * truth_spread


# -- loss curve -----------------------------------------------------------------------------------
def loss_not_decreasing(loss_curve: Sequence[Sequence[float]]) -> bool:
    """True when the loss curve (``(step, loss)`` pairs) did not fall; see the module docstring."""
    curve = np.asarray(loss_curve, dtype=np.float64).reshape(-1, 2)
    curve = curve[np.isfinite(curve).all(axis=1)]
    values = curve[np.argsort(curve[:, 0], kind="stable"), 1]
    n = values.size
    if n < MIN_POINTS:
        return False
    w = max(1, int(round(WINDOW_FRACTION * n)))
    start = values[:w].mean()
    quarter_at = int(0.25 * n)
    quarter = values[quarter_at : quarter_at + w].mean()
    end = values[-w:].mean()
    running = np.convolve(values, np.ones(w) / w, mode="valid")
    differences = np.diff(values)
    sigma = 1.4826 * np.median(np.abs(differences - np.median(differences))) / np.sqrt(2.0)
    margin = max(RELATIVE_MARGIN * float(running.max() - running.min()), NOISE_Z * sigma * np.sqrt(2.0 / w))
    fell = end < start - margin and end < quarter - margin
    return not fell
