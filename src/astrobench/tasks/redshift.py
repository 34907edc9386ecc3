"""Photometric redshift (Hayat et al. 2021, following Pasquet et al. 2019).

Redshifts are binned into ``n_bins`` equal bins over [z_min, z_max) (default 180 over 0 < z < 0.4;
quasars need e.g. ``z_max=7.2``). A redshift at or above ``z_max`` goes to the last bin; one
below ``z_min`` is an error (it means the range is wrong for the data, and silently clipping would
hide that).

Protocols (the target is binned: redshifts and their bins; each probe predicts in its own form):
- ``linear``: multinomial logistic regression over the bins on frozen embeddings. Only bins that
  occur in the training labels become classes; their probabilities are put back into the full
  ``n_bins`` vector (absent bins get 0). Point estimate z_phot = Σ_i p_i · centre_i; the binned
  PDF also gives ``crps`` (mean over test objects, in units of z) and PIT values (histogram in
  ``details``).
- ``knn``: z_phot = mean redshift of the 20 cosine-nearest labelled training objects (no PDF, so
  no CRPS).
- any registered probe that fits binned targets (e.g. a plugin's MLP): scored like ``linear``
  when it predicts bin probabilities, like ``knn`` when it predicts values.
- ``finetune``: the backbone plus a linear head over the bins, cross-entropy; scored like ``linear``.

Scores: ``sigma_mad``, ``eta_percent`` (percentage of |Δz| > ``outlier_threshold``), ``bias`` =
mean Δz, ``abs_bias`` = |bias|, and ``crps`` where a PDF exists. ``bias`` is signed and has no
better direction, so it is the one score key not in ``higher_is_better``: rank by ``abs_bias``
(lower is better) and show ``bias`` unranked. ``score`` recomputes them from the predictions frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from astrobench.datasets.schema import DataError
from astrobench.registry import register_task
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs, FinetuneInputs, Task, TaskResult
from astrobench.tasks.finetune import finetune_classifier
from astrobench.tasks.probes import (
    BINNED,
    KNN_K,
    Target,
    device_embeddings,
    draw_labelled_subset,
    fit_probe,
    labelled_mask,
    labelled_split,
    probe_seed,
    repeat_seed,
    require_label,
    take,
)

LABEL = "redshift"
PIT_HISTOGRAM_BINS = 10


@register_task("redshift")
class RedshiftTask(Task):
    version: ClassVar[str] = "1"
    required_labels: ClassVar[tuple[str, ...]] = (LABEL,)
    main_score: ClassVar[str] = "sigma_mad"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "sigma_mad": False,
        "eta_percent": False,
        "abs_bias": False,
        "crps": False,
    }
    probe_targets: ClassVar[frozenset[str]] = frozenset({BINNED})
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)

    def __init__(
        self,
        n_bins: int = 180,
        z_min: float = 0.0,
        z_max: float = 0.4,
        outlier_threshold: float = 0.05,
        knn_k: int = KNN_K,
        C: float = 1.0,
        probe_options: dict[str, dict[str, Any]] | None = None,
    ):
        if n_bins < 2:
            raise ValueError(f"redshift: n_bins must be >= 2, got {n_bins}")
        if not z_max > z_min:
            raise ValueError(f"redshift: z_max ({z_max}) must exceed z_min ({z_min})")
        if not outlier_threshold > 0:
            raise ValueError(f"redshift: outlier_threshold must be > 0, got {outlier_threshold}")
        self.n_bins = int(n_bins)
        self.z_min = float(z_min)
        self.z_max = float(z_max)
        self.outlier_threshold = float(outlier_threshold)
        self.knn_k = int(knn_k)
        self.C = float(C)
        self.probe_options = {name: dict(options) for name, options in (probe_options or {}).items()}

    def probe_defaults(self) -> dict[str, dict[str, Any]]:
        return {"linear": {"C": self.C}, "knn": {"k": self.knn_k}}

    # -- binning ---------------------------------------------------------------------------------
    @property
    def bin_edges(self) -> np.ndarray:
        return np.linspace(self.z_min, self.z_max, self.n_bins + 1)

    @property
    def bin_centres(self) -> np.ndarray:
        edges = self.bin_edges
        return 0.5 * (edges[:-1] + edges[1:])

    def to_bins(self, z: np.ndarray) -> np.ndarray:
        """Bin index per redshift; z >= z_max -> last bin; NaN -> -1; z < z_min is a DataError."""
        z = np.asarray(z, dtype=np.float64)
        present = np.isfinite(z)
        if np.any(z[present] < self.z_min):
            low = z[present][z[present] < self.z_min]
            raise DataError(
                f"task 'redshift': {low.size} redshifts below z_min={self.z_min} (lowest {low.min():.4g}); "
                "set z_min/z_max to the range of the data"
            )
        bins = np.full(z.shape, -1, dtype=np.int64)
        # bin i holds edges[i] <= z < edges[i+1]; searchsorted on the edges avoids rounding at an edge
        bins[present] = np.minimum(np.searchsorted(self.bin_edges, z[present], side="right") - 1, self.n_bins - 1)
        return bins

    def check_data(self, data) -> None:
        """Before any work: the labels must fit the bins. Any below ``z_min`` is an error (as in
        ``to_bins``); so is a range that misses most of the data (more than half at or above
        ``z_max`` would pile into the last bin, e.g. quasars at z 2.8-7 with the default 0-0.4)."""
        super().check_data(data)
        z = np.asarray(data.labels[LABEL], dtype=np.float64)
        z = z[np.isfinite(z)]
        if z.size == 0:
            raise DataError(f"task 'redshift': no object of {data.origin} has a redshift")
        below, above = int((z < self.z_min).sum()), int((z >= self.z_max).sum())
        if below or above > z.size / 2:
            raise DataError(
                f"task 'redshift': of {z.size} labelled redshifts (range {z.min():.4g} to {z.max():.4g}) {below} lie "
                f"below z_min={self.z_min:g} and {above} at or above z_max={self.z_max:g} (those go to the last bin); "
                "set --task-option z_min=... --task-option z_max=... to the range of the data"
            )

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """Redshift bin indices (-1 where the redshift is missing) and ``n_bins``."""
        return self.to_bins(require_label(labels, LABEL, "task 'redshift'")), self.n_bins

    # -- protocols -------------------------------------------------------------------------------
    def _redshifts(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        z = require_label(labels, LABEL, "task 'redshift'").astype(np.float64)
        if z.ndim != 1:
            raise DataError(f"label 'redshift' must be one value per object, got shape {z.shape}")
        return z, self.to_bins(z)

    def evaluate(
        self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None
    ) -> TaskResult:
        probe = self.probe(protocol)
        z, bins = self._redshifts(inputs.labels)
        present = labelled_mask(z)
        x = device_embeddings(inputs)
        test = labelled_split(inputs.splits, "test", present, LABEL)
        train = labelled_split(inputs.splits, "train", present, LABEL)
        subset = draw_labelled_subset(train, z, label_budget, repeat_seed(seed, 0), label_name=LABEL)
        target = Target.of_binned(z[subset], bins[subset], self.n_bins)
        fitted = fit_probe(probe, take(x, subset), target, seed=probe_seed(seed))
        prediction = fitted.predict(take(x, test))
        details = {"protocol": protocol, "probe": type(probe).__name__, "probe_info": fitted.info,
                   "n_train": int(subset.size), "n_test": int(test.size), "n_bins_in_train": int(np.unique(bins[subset]).size)}
        if prediction.probabilities is None:  # a probe that predicts redshifts (knn): no PDF
            return self._result(inputs.object_id[test], z[test], prediction.values, None, details)
        probabilities = prediction.probabilities
        return self._result(inputs.object_id[test], z[test], probabilities @ self.bin_centres, probabilities, details)

    def finetune(self, inputs: FinetuneInputs, *, seed: int, label_budget: int | None) -> TaskResult:
        z, bins = self._redshifts(inputs.data.labels)
        present = labelled_mask(z)
        test = labelled_split(inputs.splits, "test", present, LABEL)
        train = labelled_split(inputs.splits, "train", present, LABEL)
        subset = draw_labelled_subset(train, z, label_budget, repeat_seed(seed, 0), label_name=LABEL)
        out = finetune_classifier(inputs, bins, [self.n_bins], subset, seed=seed, eval_split="test")
        keep = np.isin(out.eval_indices, test)
        rows, probabilities = out.eval_indices[keep], out.probabilities[0][keep]
        details = {"protocol": "finetune", **out.details(), "n_test": int(rows.size)}
        return self._result(inputs.data.object_id[rows], z[rows], probabilities @ self.bin_centres, probabilities, details)

    def _result(
        self,
        object_id: np.ndarray,
        z_spec: np.ndarray,
        z_phot: np.ndarray,
        probabilities: np.ndarray | None,
        details: dict,
    ) -> TaskResult:
        predictions = pd.DataFrame({"object_id": object_id, "z_spec": z_spec, "z_phot": z_phot})
        if probabilities is not None:
            predictions["crps"] = metrics.crps_binned(probabilities, self.bin_edges, z_spec)
            predictions["pit"] = pit = metrics.pit_values(probabilities, self.bin_edges, z_spec)
            counts, _ = np.histogram(pit, bins=PIT_HISTOGRAM_BINS, range=(0.0, 1.0))
            details["pit_histogram"] = counts.tolist()
        details["bins"] = {"n_bins": self.n_bins, "z_min": self.z_min, "z_max": self.z_max}
        return TaskResult(self.score(predictions), predictions, details)

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        """σ_MAD, η, bias and |bias| from ``z_phot`` and ``z_spec``; ``crps`` from its per-object column."""
        scores = metrics.redshift_metrics(predictions["z_phot"].to_numpy(), predictions["z_spec"].to_numpy(),
                                          self.outlier_threshold)
        scores["abs_bias"] = abs(scores["bias"])
        if "crps" in predictions:
            scores["crps"] = float(predictions["crps"].mean())
        return {k: float(v) for k, v in scores.items()}
