"""Dwarf galaxies against the rest (the UNIONS masked-autoencoder study).

Probe form: a classifier trained on a *balanced* labelled subset of the train split (default 200
dwarfs + 200 non-dwarfs; the label budget is the total, split 50/50 and capped by the rarer class),
repeated over ``n_repeats`` independent random draws of that subset. Scores on the labelled test
objects: ``balanced_accuracy`` (the main score: the mean of the dwarfs' and the others' recall,
i.e. the accuracy on a test set of as many dwarfs as non-dwarfs, as in the UNIONS study),
``accuracy`` (on the test split as it is: 16% dwarfs on the simulated survey, so answering "not a
dwarf" everywhere scores 0.84 there), ``roc_auc`` and ``f1`` (positive class = dwarf), each the
mean over draws, with ``*_std`` the sample standard deviation over draws (ddof=1; 0 for a single
draw).

Search form: ``dwarf_search_fraction`` = mean over the query dwarfs (every labelled test dwarf by
default; ``n_search_queries`` draws that many with the seed) of the fraction of dwarfs among each query's
``search_k`` = 25 cosine-nearest labelled test objects (the query itself excluded); its bootstrap
over the queries is the result's test-object uncertainty (``TaskResult.score_std``). The UNIONS
study searched from a handful of dwarfs; the mean over every test dwarf has the same expectation
and a fraction of the noise (5 queries, the default before version 3: a bootstrap standard
deviation of 0.05-0.11 on the quick survey, as large as the differences between methods). It reads the
embeddings directly, so it is the same for every probe protocol; the ``finetune`` protocol does
not report it (it produces class probabilities, not embeddings).

Protocols: every registered probe that fits classes (``linear``, ``knn``, plugins' own; options
through ``C``, ``knn_k`` and ``probe_options``), and ``finetune``. ``score`` recomputes the probe
scores from the predictions frame (one row per test object and draw; ``*_std`` only with more
than one draw in it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from astrobench.registry import register_task
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs, FinetuneInputs, Task, TaskResult, bootstrap_std_of_mean
from astrobench.tasks.finetune import finetune_classifier
from astrobench.tasks.probes import (
    CLASSES,
    KNN_K,
    Target,
    binary_targets,
    device_embeddings,
    draw_labelled_subset,
    fit_probe,
    labelled_split,
    probe_seed,
    repeat_seed,
    require_label,
    take,
)
from astrobench.tasks.search import cosine_topk

if TYPE_CHECKING:
    import torch

LABEL = "dwarf"
_PROBE_STREAM, _SEARCH_STREAM = 0, 1
_METRICS = ("balanced_accuracy", "accuracy", "roc_auc", "f1")


def _spread(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


@register_task("dwarfs")
class DwarfTask(Task):
    version: ClassVar[str] = "3"  # 2: balanced accuracy, the main score; 3: every test dwarf a search query
    required_labels: ClassVar[tuple[str, ...]] = (LABEL,)
    # accuracy on the imbalanced test split rewards the majority answer (the constant baseline
    # scored 0.84, above every learned representation): the balanced one does not
    main_score: ClassVar[str] = "balanced_accuracy"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "balanced_accuracy": True,
        "balanced_accuracy_std": False,
        "accuracy": True,
        "accuracy_std": False,
        "roc_auc": True,
        "roc_auc_std": False,
        "f1": True,
        "f1_std": False,
        "dwarf_search_fraction": True,
    }
    probe_targets: ClassVar[frozenset[str]] = frozenset({CLASSES})
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)

    def __init__(
        self,
        per_class: int = 200,
        n_repeats: int = 10,
        min_per_class: int = 5,
        n_search_queries: int | None = None,
        search_k: int = 25,
        knn_k: int = KNN_K,
        C: float = 1.0,
        probe_options: dict[str, dict[str, Any]] | None = None,
    ):
        if per_class < 1 or n_repeats < 1 or min_per_class < 1 or search_k < 1 or knn_k < 1 or (
                n_search_queries is not None and n_search_queries < 1):
            raise ValueError("dwarfs: per_class, n_repeats, min_per_class, n_search_queries (or None: every test "
                             "dwarf), search_k and knn_k must be >= 1")
        self.per_class = int(per_class)
        self.n_repeats = int(n_repeats)
        self.min_per_class = int(min_per_class)
        self.n_search_queries = None if n_search_queries is None else int(n_search_queries)
        self.search_k = int(search_k)
        self.knn_k = int(knn_k)
        self.C = float(C)
        self.probe_options = {name: dict(options) for name, options in (probe_options or {}).items()}

    def probe_defaults(self) -> dict[str, dict[str, Any]]:
        return {"linear": {"C": self.C}, "knn": {"k": self.knn_k}}

    def _budget(self, label_budget: int | None) -> int:
        return 2 * self.per_class if label_budget is None else int(label_budget)

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """1 = dwarf, 0 = not a dwarf, -1 = unknown."""
        return binary_targets(require_label(labels, LABEL, "task 'dwarfs'"), LABEL), 2

    def evaluate(
        self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None
    ) -> TaskResult:
        probe = self.probe(protocol)
        targets = self.supervised_targets(inputs.labels)[0]
        present = targets >= 0
        x = device_embeddings(inputs)
        test = labelled_split(inputs.splits, "test", present, LABEL)
        train = labelled_split(inputs.splits, "train", present, LABEL)
        budget = self._budget(label_budget)
        x_test = take(x, test)

        frames, n_train, probe_info = [], [], []
        for repeat in range(self.n_repeats):
            subset = draw_labelled_subset(
                train, targets, budget, repeat_seed(seed, _PROBE_STREAM, repeat),
                balanced=True, min_per_class=self.min_per_class, label_name=LABEL,
            )
            fitted = fit_probe(probe, take(x, subset), Target.of_classes(targets[subset], 2), seed=probe_seed(seed, repeat))
            prediction = fitted.predict(x_test)
            n_train.append(int(subset.size))
            probe_info.append(fitted.info)
            frames.append(pd.DataFrame({
                "object_id": inputs.object_id[test], "repeat": repeat, "label": targets[test],
                "predicted": prediction.predicted_classes(), "probability": prediction.probabilities[:, 1],
            }))
        predictions = pd.concat(frames, ignore_index=True)

        per_repeat = self._per_repeat(predictions)
        scores = self._summarise(per_repeat)
        for key in _METRICS:
            scores.setdefault(f"{key}_std", 0.0)  # one draw: no spread
        search = self._search_fraction(x, targets, test, seed)
        scores["dwarf_search_fraction"] = search["fraction"]
        details = {
            "protocol": protocol,
            "probe": type(probe).__name__,
            "probe_info": probe_info,
            "label_budget": budget,
            "n_train_per_repeat": n_train,
            "n_test": int(test.size),
            "per_repeat": per_repeat,
            "search": search,
        }
        return TaskResult(scores, predictions, details,
                          score_std={"dwarf_search_fraction": search["fraction_bootstrap_std"]})

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Accuracy, ROC-AUC and F1: means over the draws (``repeat``); ``*_std`` over more than one."""
        return self._summarise(self._per_repeat(predictions))

    @staticmethod
    def _per_repeat(predictions: pd.DataFrame) -> dict[str, list[float]]:
        repeat = predictions["repeat"].to_numpy()
        label, predicted = predictions["label"].to_numpy(), predictions["predicted"].to_numpy()
        probability = predictions["probability"].to_numpy()
        out: dict[str, list[float]] = {key: [] for key in _METRICS}
        for r in np.unique(repeat):
            rows = repeat == r
            for key, value in metrics.binary_classification_metrics(label[rows], predicted[rows], probability[rows]).items():
                out[key].append(value)
        return out

    @staticmethod
    def _summarise(per_repeat: dict[str, list[float]]) -> dict[str, float]:
        scores = {key: float(np.mean(values)) for key, values in per_repeat.items()}
        if len(per_repeat["accuracy"]) > 1:
            scores.update({f"{key}_std": _spread(values) for key, values in per_repeat.items()})
        return scores

    def _search_fraction(self, x: "torch.Tensor", targets: np.ndarray, test: np.ndarray, seed: int) -> dict:
        dwarfs = test[targets[test] == 1]
        if dwarfs.size == 0:
            raise ValueError("task 'dwarfs': the test split holds no labelled dwarf to use as a search query")
        if test.size - 1 < self.search_k:
            raise ValueError(
                f"task 'dwarfs': the search needs {self.search_k} neighbours but the test split has only "
                f"{test.size} labelled objects"
            )
        if self.n_search_queries is None or self.n_search_queries >= dwarfs.size:
            queries = np.sort(dwarfs)
        else:
            rng = np.random.default_rng(repeat_seed(seed, _SEARCH_STREAM))
            queries = np.sort(rng.choice(dwarfs, size=self.n_search_queries, replace=False))
        position = {row: i for i, row in enumerate(test.tolist())}
        exclude = np.array([position[row] for row in queries.tolist()])
        _, neighbours = cosine_topk(take(x, queries), take(x, test), self.search_k, exclude=exclude, device=x.device)
        is_dwarf = targets[test][neighbours] == 1
        per_query = metrics.precision_at_k_per_query(is_dwarf, self.search_k)
        return {
            "fraction": float(per_query.mean()),
            # over the queries (the searched objects held fixed): the seed's test-object uncertainty
            "fraction_bootstrap_std": bootstrap_std_of_mean(per_query, seed=seed),
            "k": self.search_k,
            "query_rows": queries.tolist(),
            "per_query": per_query.tolist(),
        }

    def training_rows(self, labels: dict[str, np.ndarray], splits: dict[str, np.ndarray], seed: int,
                      label_budget: int | None) -> np.ndarray:
        """The first of the probe's balanced draws (what fine-tuning and the supervised baseline use)."""
        targets = self.supervised_targets(labels)[0]
        train = labelled_split(splits, "train", targets >= 0, LABEL)
        return draw_labelled_subset(
            train, targets, self._budget(label_budget), repeat_seed(seed, _PROBE_STREAM, 0),
            balanced=True, min_per_class=self.min_per_class, label_name=LABEL,
        )

    def finetune(self, inputs: FinetuneInputs, *, seed: int, label_budget: int | None) -> TaskResult:
        """One balanced draw (fine-tuning is too costly to repeat); no ``*_std`` and no search score."""
        targets = self.supervised_targets(inputs.data.labels)[0]
        test = labelled_split(inputs.splits, "test", targets >= 0, LABEL)
        subset = self.training_rows(inputs.data.labels, inputs.splits, seed, label_budget)
        out = finetune_classifier(inputs, targets, [2], subset, seed=seed, eval_split="test")
        keep = np.isin(out.eval_indices, test)
        rows, p_dwarf = out.eval_indices[keep], out.probabilities[0][keep, 1]
        predicted = (p_dwarf > 0.5).astype(np.int64)
        predictions = pd.DataFrame({
            "object_id": inputs.data.object_id[rows], "repeat": 0, "label": targets[rows],
            "predicted": predicted, "probability": p_dwarf,
        })
        return TaskResult(self.score(predictions), predictions, {"protocol": "finetune", **out.details(), "n_test": int(rows.size)})
