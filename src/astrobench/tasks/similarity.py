"""Similarity search (Stein et al. 2021): do cosine neighbours in embedding space share a class?

Queries are all labelled test objects; for each, the gallery is every *other* labelled test
object, ranked by cosine similarity of the embeddings (exact, chunked matrix product, GPU when
present; equal similarities rank by lower row index, see ``search``). A gallery object is
relevant when its class equals the query's.

Scores: ``precision_at_<k>`` for each k in ``ks`` (mean over queries of the fraction of
relevant objects among the first k) and ``mean_average_precision`` (the main score; per query
average precision over the full ranking of the gallery, then the mean over queries). A query
whose class has no other member in the gallery has no defined average precision; such queries
are left out of every score and counted in ``details["n_queries_without_match"]``. Per-class
scores (over the queries of each class) are in ``details["per_class"]``.

No probe is trained, so there is one protocol, ``search``, and no label budget. The search runs
on the run's device (``EmbeddingInputs.device``). ``score`` recomputes the scores from the per-query
columns of the predictions frame (so a bootstrap resamples queries).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from astrobench.datasets.schema import DataError
from astrobench.registry import register_task
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs, Task, TaskResult
from astrobench.tasks.probes import checked_embeddings, class_targets, labelled_split, require_label
from astrobench.tasks.search import cosine_ranking

DEFAULT_KS = (1, 5, 10, 25)


def _directions(ks: Sequence[int]) -> dict[str, bool]:
    return {"mean_average_precision": True, **{f"precision_at_{k}": True for k in ks}}


@register_task("similarity")
class SimilarityTask(Task):
    version: ClassVar[str] = "1"
    required_labels: ClassVar[tuple[str, ...]] = ("morphology",)
    main_score: ClassVar[str] = "mean_average_precision"
    higher_is_better: ClassVar[dict[str, bool]] = _directions(DEFAULT_KS)
    protocols: ClassVar[tuple[str, ...]] = ("search",)
    default_protocols: ClassVar[tuple[str, ...]] = ("search",)
    supports_label_budget: ClassVar[bool] = False

    def __init__(self, label: str = "morphology", ks: Sequence[int] = DEFAULT_KS):
        ks = tuple(int(k) for k in ks)
        if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
            raise ValueError(f"similarity: ks must be distinct integers >= 1, got {ks}")
        self.label = label
        self.ks = tuple(sorted(ks))
        # instance values shadow the class defaults: the label and ks decide them
        self.required_labels = (label,)  # type: ignore[misc]
        self.higher_is_better = _directions(self.ks)  # type: ignore[misc]

    def params(self) -> dict[str, Any]:
        return {"label": self.label, "ks": list(self.ks)}

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """The class label searched for (-1 = unknown)."""
        targets = class_targets(require_label(labels, self.label, "task 'similarity'"), self.label)
        return targets, int(targets.max(initial=-1)) + 1

    def evaluate(
        self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None
    ) -> TaskResult:
        self.check_protocol(protocol)
        if label_budget is not None:
            raise ValueError("task 'similarity' trains nothing, so it takes no label budget")
        targets = self.supervised_targets(inputs.labels)[0]
        test = labelled_split(inputs.splits, "test", targets >= 0, self.label)
        classes = np.unique(targets[test])
        if classes.size < 2:
            raise DataError(
                f"task 'similarity': every labelled test object has {self.label}={classes[0]}; "
                "retrieval by class needs at least two classes"
            )
        if test.size - 1 < max(self.ks):
            raise DataError(
                f"task 'similarity': precision@{max(self.ks)} needs {max(self.ks)} gallery objects but the test "
                f"split has only {test.size} labelled objects"
            )
        y = targets[test]
        counts = dict(zip(*np.unique(y, return_counts=True)))
        has_match = np.array([counts[c] > 1 for c in y])
        if not has_match.any():
            raise DataError(f"task 'similarity': no test object shares its {self.label!r} class with another")

        kmax = max(self.ks)
        ap = np.full(test.size, np.nan)
        p_at = {k: np.full(test.size, np.nan) for k in self.ks}
        neighbours = np.empty((test.size, kmax), dtype=np.int64)
        x = checked_embeddings(inputs.embeddings, len(inputs.object_id))[test]
        for start, ranked in cosine_ranking(x, x, exclude=np.arange(test.size), device=inputs.device):
            rows = np.arange(start, start + len(ranked))
            neighbours[rows] = ranked[:, :kmax]
            keep = has_match[rows]
            relevance = y[ranked[keep]] == y[rows[keep]][:, None]
            if keep.any():
                ap[rows[keep]] = metrics.average_precision(relevance)
                for k in self.ks:
                    p_at[k][rows[keep]] = metrics.precision_at_k_per_query(relevance, k)

        per_class = {}
        for c in classes:
            members = (y == c) & has_match
            if members.any():
                per_class[str(int(c))] = {
                    "n_queries": int(members.sum()),
                    "mean_average_precision": float(ap[members].mean()),
                    **{f"precision_at_{k}": float(p_at[k][members].mean()) for k in self.ks},
                }
        predictions = pd.DataFrame({
            "object_id": inputs.object_id[test],
            "label": y,
            "average_precision": ap,
            **{f"precision_at_{k}": p_at[k] for k in self.ks},
            "neighbours": [inputs.object_id[test][row].tolist() for row in neighbours],
        })
        scores = self.score(predictions)
        details = {
            "protocol": protocol,
            "label": self.label,
            "n_queries": int(has_match.sum()),
            "n_queries_without_match": int((~has_match).sum()),
            "gallery_size": int(test.size - 1),
            "per_class": per_class,
        }
        return TaskResult(scores, predictions, details)

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Means over the queries that have a match (``average_precision`` not NaN) of the per-query columns."""
        ap = predictions["average_precision"].to_numpy(np.float64)
        matched = np.isfinite(ap)
        if not matched.any():
            raise ValueError("task 'similarity': no query in these predictions has a match to score")
        scores = {"mean_average_precision": float(ap[matched].mean())}
        for k in self.ks:
            scores[f"precision_at_{k}"] = float(predictions[f"precision_at_{k}"].to_numpy(np.float64)[matched].mean())
        return scores
