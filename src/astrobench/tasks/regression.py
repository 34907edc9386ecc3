"""Regression of any numeric label (MTEB style: the label is a task option).

``--task regression --task-option label=redshift``: the label is checked before any training
(``check_data``: present, numeric, not constant; the error says what it holds).

Protocols: every registered probe that fits values (``linear``: ridge regression on standardised
embeddings, ``ridge_alpha``; ``knn``: the mean of the k cosine-nearest training values; plugins'
own), on a uniform draw of ``label_budget`` labelled training objects (all by default).

Scores on the labelled test objects: ``r2`` (the main score), ``mae`` and ``rmse``. When the label
is a redshift (``redshift=True``, or by default when it is named redshift, specz, z_spec, zspec,
photoz or z) also the photometric-redshift scores of ``tasks/metrics.py``: ``sigma_mad`` (then the
main score), ``eta_percent`` (|Δz| > ``outlier_threshold``), ``bias`` (signed, unranked) and
``abs_bias``. Unlike the ``redshift`` task there are no bins, so no range to set and no PDF.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from astrobench.datasets.schema import DataError
from astrobench.registry import register_task
from astrobench.tasks import labels as label_checks
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs, Task, TaskResult
from astrobench.tasks.probes import (
    KNN_K,
    VALUES,
    Target,
    device_embeddings,
    draw_labelled_subset,
    fit_probe,
    labelled_split,
    probe_seed,
    repeat_seed,
    take,
)

REDSHIFT_NAMES = frozenset({"redshift", "specz", "z_spec", "zspec", "photoz", "z"})
_REGRESSION = {"r2": True, "mae": False, "rmse": False}
_REDSHIFT = {"sigma_mad": False, "eta_percent": False, "abs_bias": False}


@register_task("regression")
class RegressionTask(Task):
    version: ClassVar[str] = "1"
    main_score: ClassVar[str] = "r2"
    higher_is_better: ClassVar[dict[str, bool]] = dict(_REGRESSION)
    probe_targets: ClassVar[frozenset[str]] = frozenset({VALUES})
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)

    def __init__(
        self,
        label: str | None = None,
        redshift: bool | None = None,
        outlier_threshold: float = 0.05,
        knn_k: int = KNN_K,
        ridge_alpha: float = 1.0,
        probe_options: dict[str, dict[str, Any]] | None = None,
    ):
        if not label:
            raise ValueError("task 'regression' needs the option 'label' (e.g. --task-option label=redshift)")
        if knn_k < 1 or not ridge_alpha > 0 or not outlier_threshold > 0:
            raise ValueError(
                f"regression: knn_k must be >= 1, ridge_alpha and outlier_threshold > 0; got knn_k={knn_k}, "
                f"ridge_alpha={ridge_alpha}, outlier_threshold={outlier_threshold}"
            )
        self.label = str(label)
        self.redshift = self.label.lower() in REDSHIFT_NAMES if redshift is None else bool(redshift)
        self.outlier_threshold = float(outlier_threshold)
        self.knn_k = int(knn_k)
        self.ridge_alpha = float(ridge_alpha)
        self.probe_options = {name: dict(options) for name, options in (probe_options or {}).items()}
        # instance values shadow the class defaults: the label decides them
        self.required_labels = (self.label,)  # type: ignore[misc]
        self.main_score = "sigma_mad" if self.redshift else "r2"  # type: ignore[misc]
        self.higher_is_better = {**_REGRESSION, **(_REDSHIFT if self.redshift else {})}  # type: ignore[misc]

    def probe_defaults(self) -> dict[str, dict[str, Any]]:
        return {"linear": {"ridge_alpha": self.ridge_alpha}, "knn": {"k": self.knn_k}}

    def values(self, labels: dict[str, np.ndarray]) -> np.ndarray:
        who = f"task 'regression' (label {self.label!r})"
        x = label_checks.numeric(label_checks.require(labels, self.label, who), self.label, who)
        if self.redshift and np.any(x[np.isfinite(x)] <= -1.0):
            raise DataError(f"{who}: a redshift must be > -1 (Δz divides by 1 + z); {label_checks.describe(x)}")
        return x

    def check_data(self, data: Any) -> None:
        self.values(data.labels)

    def training_rows(self, labels: dict[str, np.ndarray], splits: dict[str, np.ndarray], seed: int,
                      label_budget: int | None) -> np.ndarray:
        return draw_labelled_subset(splits["train"], self.values(labels), label_budget, repeat_seed(seed, 0),
                                    label_name=self.label)

    def evaluate(self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None) -> TaskResult:
        probe = self.probe(protocol)
        y = self.values(inputs.labels)
        x = device_embeddings(inputs)
        test = labelled_split(inputs.splits, "test", np.isfinite(y), self.label)
        subset = self.training_rows(inputs.labels, inputs.splits, seed, label_budget)
        fitted = fit_probe(probe, take(x, subset), Target.of_values(y[subset]), seed=probe_seed(seed))
        predicted = fitted.predict(take(x, test)).values
        predictions = pd.DataFrame({"object_id": inputs.object_id[test], "label": y[test], "predicted": predicted})
        details = {"protocol": protocol, "probe": type(probe).__name__, "probe_info": fitted.info, "label": self.label,
                   "redshift": self.redshift, "n_train": int(subset.size), "n_test": int(test.size)}
        return TaskResult(self.score(predictions), predictions, details)

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        """R², MAE and RMSE (and σ_MAD, η, bias for a redshift) from ``label`` and ``predicted``."""
        truth, predicted = predictions["label"].to_numpy(np.float64), predictions["predicted"].to_numpy(np.float64)
        scores = {**metrics.regression_metrics(truth, predicted), "mae": metrics.mean_absolute_error(truth, predicted)}
        if self.redshift:
            scores.update(metrics.redshift_metrics(predicted, truth, self.outlier_threshold))
            scores["abs_bias"] = abs(scores["bias"])
        return scores
