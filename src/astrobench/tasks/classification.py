"""Classification of any categorical label (MTEB style: the label is a task option).

``--task classification --task-option label=ring``: the label may hold integer or bool classes,
whole floats, text, or numbers cut into classes by ``bin_edges`` (``tasks/labels.py``); it is
checked before any training (``check_data``), and an error says which values it holds.

Protocols: every registered probe that fits classes (``linear``, ``knn``, plugins' own) on a
uniform draw of ``label_budget`` labelled training objects (all of them by default), and
``finetune``. Scores on the labelled test objects: ``balanced_accuracy`` (the main score: the mean
recall over the classes in the test split, so answering the majority class scores 1 / n_classes),
``accuracy`` and ``macro_f1`` (over the classes in truth or prediction); ``details["per_class"]``
holds each class's precision, recall, F1 and support under its name in the data.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from astrobench.registry import register_task
from astrobench.tasks import labels as label_checks
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs, FinetuneInputs, Task, TaskResult
from astrobench.tasks.finetune import finetune_classifier
from astrobench.tasks.probes import (
    CLASSES,
    KNN_K,
    Target,
    device_embeddings,
    fit_probe,
    labelled_split,
    probe_seed,
    take,
)


@register_task("classification")
class ClassificationTask(Task):
    version: ClassVar[str] = "1"
    main_score: ClassVar[str] = "balanced_accuracy"
    higher_is_better: ClassVar[dict[str, bool]] = {"balanced_accuracy": True, "accuracy": True, "macro_f1": True}
    probe_targets: ClassVar[frozenset[str]] = frozenset({CLASSES})
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)

    def __init__(
        self,
        label: str | None = None,
        bin_edges: Sequence[float] | None = None,
        knn_k: int = KNN_K,
        C: float = 1.0,
        probe_options: dict[str, dict[str, Any]] | None = None,
    ):
        if not label:
            raise ValueError("task 'classification' needs the option 'label' (e.g. --task-option label=ring)")
        if knn_k < 1 or not C > 0:
            raise ValueError(f"classification: knn_k must be >= 1 and C > 0, got knn_k={knn_k}, C={C}")
        self.label = str(label)
        self.bin_edges = [float(e) for e in bin_edges] if bin_edges is not None else None
        self.knn_k = int(knn_k)
        self.C = float(C)
        self.probe_options = {name: dict(options) for name, options in (probe_options or {}).items()}
        self.required_labels = (self.label,)  # type: ignore[misc]

    def probe_defaults(self) -> dict[str, dict[str, Any]]:
        return {"linear": {"C": self.C}, "knn": {"k": self.knn_k}}

    @property
    def _who(self) -> str:
        return f"task 'classification' (label {self.label!r})"

    def categories(self, labels: dict[str, np.ndarray]) -> label_checks.Categories:
        values = label_checks.require(labels, self.label, self._who)
        return label_checks.categorical(values, self.label, self._who, self.bin_edges)

    def check_data(self, data: Any) -> None:
        self.categories(data.labels)  # raises, naming the values the label holds

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        categories = self.categories(labels)
        return categories.targets, categories.n_classes

    def evaluate(self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None) -> TaskResult:
        probe = self.probe(protocol)
        categories = self.categories(inputs.labels)
        targets = categories.targets
        x = device_embeddings(inputs)
        test = labelled_split(inputs.splits, "test", targets >= 0, self.label)
        subset = self.training_rows(inputs.labels, inputs.splits, seed, label_budget)
        fitted = fit_probe(probe, take(x, subset), Target.of_classes(targets[subset], categories.n_classes),
                           seed=probe_seed(seed))
        probabilities = fitted.predict(take(x, test)).probabilities
        details = {"protocol": protocol, "probe": type(probe).__name__, "probe_info": fitted.info,
                   "n_train": int(subset.size)}
        return self._result(inputs.object_id[test], targets[test], probabilities, categories, details)

    def finetune(self, inputs: FinetuneInputs, *, seed: int, label_budget: int | None) -> TaskResult:
        categories = self.categories(inputs.data.labels)
        targets = categories.targets
        test = labelled_split(inputs.splits, "test", targets >= 0, self.label)
        subset = self.training_rows(inputs.data.labels, inputs.splits, seed, label_budget)
        out = finetune_classifier(inputs, targets, [categories.n_classes], subset, seed=seed, eval_split="test")
        keep = np.isin(out.eval_indices, test)
        rows = out.eval_indices[keep]
        details = {"protocol": "finetune", **out.details(), "n_train": int(subset.size)}
        return self._result(inputs.data.object_id[rows], targets[rows], out.probabilities[0][keep], categories, details)

    def _result(self, object_id: np.ndarray, truth: np.ndarray, probabilities: np.ndarray,
                categories: label_checks.Categories, details: dict[str, Any]) -> TaskResult:
        predicted = np.argmax(probabilities, axis=1).astype(np.int64)
        predictions = pd.DataFrame({
            "object_id": object_id, "label": truth, "predicted": predicted,
            "probability": probabilities[np.arange(len(predicted)), predicted],
        })
        report = metrics.per_class_report(truth, predicted, np.arange(categories.n_classes))
        details.update(
            label=self.label, classes=list(categories.names), n_test=int(truth.size),
            per_class={categories.names[c]: values for c, values in report.items()},
        )
        return TaskResult(self.score(predictions), predictions, details)

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Balanced accuracy, accuracy and macro-F1 from the ``label`` and ``predicted`` columns."""
        truth, predicted = predictions["label"].to_numpy(), predictions["predicted"].to_numpy()
        return {**metrics.multiclass_metrics(truth, predicted), "balanced_accuracy": metrics.balanced_accuracy(truth, predicted)}
