"""Retrieval by any categorical label (MTEB style: the label is a task option).

``--task retrieval --task-option label=ring``: do an object's cosine-nearest neighbours among the
labelled test objects share its class? The search and its scores (``precision_at_<k>``,
``mean_average_precision``, per-class details) are the ``similarity`` task's, written once there;
this task adds what a user's own label needs: any categorical column (integer, bool, whole float,
text, or a number cut at ``bin_edges``, as in ``classification``), checked before any work with an
error that says which values it holds.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from astrobench.registry import register_task
from astrobench.tasks import labels as label_checks
from astrobench.tasks.similarity import DEFAULT_KS, SimilarityTask


@register_task("retrieval")
class RetrievalTask(SimilarityTask):
    def __init__(self, label: str | None = None, ks: Sequence[int] = DEFAULT_KS,
                 bin_edges: Sequence[float] | None = None):
        if not label:
            raise ValueError("task 'retrieval' needs the option 'label' (e.g. --task-option label=ring)")
        super().__init__(label=str(label), ks=ks)
        self.bin_edges = [float(e) for e in bin_edges] if bin_edges is not None else None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "bin_edges": self.bin_edges}

    def check_data(self, data: Any) -> None:
        self.supervised_targets(data.labels)  # raises, naming the values the label holds

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        who = f"task 'retrieval' (label {self.label!r})"
        categories = label_checks.categorical(label_checks.require(labels, self.label, who), self.label, who, self.bin_edges)
        return categories.targets, categories.n_classes
