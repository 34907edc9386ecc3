"""Galaxy-Zoo-style morphology (Hayat et al. 2021 used Galaxy Zoo 2).

Each *question* is a yes/no answer read from vote fractions by majority:
- with ``versus``: yes (1) iff fraction[label] > fraction[versus] (smooth or featured: yes =
  featured iff gz_featured > gz_smooth; an exact tie is "no", i.e. smooth);
- otherwise: yes iff fraction[label] > ``threshold`` (default 0.5, strict: exactly 0.5 is "no").
A 0/1 label (``ring``) is a question too: 1 > 0.5. Missing values (NaN, or -1 for integers) leave
the answer missing. Built-in questions: smooth_or_featured (gz_featured vs gz_smooth), edge_on
(gz_edge_on), spiral (gz_spiral), bar (gz_bar), merger (gz_merger), ring (ring). Other data name
their own columns: ``questions=[{"name": "featured", "label": "smooth-or-featured_featured-or-disk_fraction"}]``
(the Galaxy Zoo rings folder, whose vote fractions all exceed 0.5 on two of its columns, is best
evaluated with ``questions=["ring"]`` plus ``vote_fractions=[...its fraction columns...]``).

Scores per question q: ``accuracy_<q>``, ``macro_f1_<q>`` (macro over the two answers), and their
means over questions ``accuracy`` (the main score) and ``macro_f1``. Vote-fraction regression
(``linear``: standardised ridge; ``knn``: mean of 20 cosine neighbours) scores ``r2_<f>`` and
``rmse_<f>`` per fraction column f, and their means ``r2`` and ``rmse``. ``vote_fractions=None``
regresses every float-valued question label (so not a 0/1 ``ring``); ``()`` turns regression off.
The ``finetune`` protocol trains one backbone with a two-way head per question and reports the
classification scores only. Other registered probes run when they fit classes, and values too
unless regression is off (``vote_fractions=()``). ``score`` recomputes every score from the
predictions frame.

Label budget: a subset of that many training galaxies is drawn (with the seed) among those that
answer at least one question; each question then trains on the galaxies of the subset that have
its answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from astrobench.datasets.schema import DataError
from astrobench.registry import register_task
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs, FinetuneInputs, Task, TaskResult
from astrobench.tasks.finetune import finetune_classifier
from astrobench.tasks.probes import (
    CLASSES,
    KNN_K,
    VALUES,
    Target,
    class_targets,
    device_embeddings,
    draw_labelled_subset,
    fit_probe,
    labelled_mask,
    probe_seed,
    repeat_seed,
    require_label,
    take,
)

MORPHOLOGY_CLASSES = ("elliptical", "lenticular", "spiral", "barred_spiral", "edge_on", "irregular", "merger")


@dataclass(frozen=True)
class Question:
    """A yes/no question: yes iff ``label`` > ``versus`` (when given), else iff ``label`` > ``threshold``."""

    name: str
    label: str
    versus: str | None = None
    threshold: float = 0.5

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.label,) if self.versus is None else (self.label, self.versus)

    def answers(self, labels: dict[str, np.ndarray]) -> np.ndarray:
        """(N,) int: 1 yes, 0 no, -1 where a needed label is missing."""
        who = f"morphology question {self.name!r}"
        value = require_label(labels, self.label, who).astype(np.float64)
        present = labelled_mask(np.asarray(labels[self.label]))
        if self.versus is None:
            yes = value > self.threshold
        else:
            other = require_label(labels, self.versus, who).astype(np.float64)
            present &= labelled_mask(np.asarray(labels[self.versus]))
            yes = value > other
        return np.where(present, yes.astype(np.int64), -1)


BUILTIN_QUESTIONS: dict[str, Question] = {
    "smooth_or_featured": Question("smooth_or_featured", "gz_featured", versus="gz_smooth"),
    "edge_on": Question("edge_on", "gz_edge_on"),
    "spiral": Question("spiral", "gz_spiral"),
    "bar": Question("bar", "gz_bar"),
    "merger": Question("merger", "gz_merger"),
    "ring": Question("ring", "ring"),
}
DEFAULT_QUESTIONS = ("smooth_or_featured", "edge_on", "spiral", "bar", "merger")


def _as_question(spec: str | Question | dict[str, Any]) -> Question:
    if isinstance(spec, Question):
        return spec
    if isinstance(spec, str):
        if spec not in BUILTIN_QUESTIONS:
            raise ValueError(f"unknown morphology question {spec!r}; built-in: {sorted(BUILTIN_QUESTIONS)} (or give a dict)")
        return BUILTIN_QUESTIONS[spec]
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"name", "label", "versus", "threshold"})
        if unknown:
            raise ValueError(f"morphology question {spec}: unknown keys {unknown}")
        return Question(**spec)
    raise ValueError(f"a morphology question is a name, a Question or a dict, got {spec!r}")


def _directions(questions: Sequence[Question], fractions: Sequence[str]) -> dict[str, bool]:
    out = {"accuracy": True, "macro_f1": True, "r2": True, "rmse": False}
    for q in questions:
        out[f"accuracy_{q.name}"] = True
        out[f"macro_f1_{q.name}"] = True
    for f in fractions:
        out[f"r2_{f}"] = True
        out[f"rmse_{f}"] = False
    return out


_DEFAULT = [BUILTIN_QUESTIONS[name] for name in DEFAULT_QUESTIONS]


@register_task("morphology")
class MorphologyTask(Task):
    version: ClassVar[str] = "1"
    required_labels: ClassVar[tuple[str, ...]] = tuple(c for q in _DEFAULT for c in q.columns)
    main_score: ClassVar[str] = "accuracy"
    # per-question keys of other question sets follow the same prefixes (set per instance)
    higher_is_better: ClassVar[dict[str, bool]] = _directions(_DEFAULT, tuple(c for q in _DEFAULT for c in q.columns))
    probe_targets: ClassVar[frozenset[str]] = frozenset({CLASSES, VALUES})
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)

    def __init__(
        self,
        questions: Sequence[str | Question | dict[str, Any]] = DEFAULT_QUESTIONS,
        vote_fractions: Sequence[str] | None = None,
        knn_k: int = KNN_K,
        C: float = 1.0,
        ridge_alpha: float = 1.0,
        probe_options: dict[str, dict[str, Any]] | None = None,
    ):
        parsed = tuple(_as_question(q) for q in questions)
        if not parsed:
            raise ValueError("morphology: give at least one question")
        names = [q.name for q in parsed]
        if len(set(names)) != len(names):
            raise ValueError(f"morphology: question names must be unique, got {names}")
        self.questions = parsed
        self.vote_fractions = None if vote_fractions is None else tuple(vote_fractions)
        self.knn_k = int(knn_k)
        self.C = float(C)
        self.ridge_alpha = float(ridge_alpha)
        self.probe_options = {name: dict(options) for name, options in (probe_options or {}).items()}
        # vote-fraction regression asks the probe for values as well as classes
        self.probe_targets = frozenset({CLASSES} if self.vote_fractions == () else {CLASSES, VALUES})  # type: ignore[misc]
        columns = [c for q in parsed for c in q.columns] + list(self.vote_fractions or ())
        # instance values shadow the class defaults: the question set decides them
        self.required_labels = tuple(dict.fromkeys(columns))  # type: ignore[misc]
        candidate_fractions = self.vote_fractions if self.vote_fractions is not None else self.required_labels
        self.higher_is_better = _directions(parsed, candidate_fractions)  # type: ignore[misc]

    def params(self) -> dict[str, Any]:
        return {
            "questions": [asdict(q) for q in self.questions],
            "vote_fractions": None if self.vote_fractions is None else list(self.vote_fractions),
            "knn_k": self.knn_k,
            "C": self.C,
            "ridge_alpha": self.ridge_alpha,
            "probe_options": self.probe_options,
        }

    def probe_defaults(self) -> dict[str, dict[str, Any]]:
        return {"linear": {"C": self.C, "ridge_alpha": self.ridge_alpha}, "knn": {"k": self.knn_k}}

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """The ``morphology`` class index (one of ``MORPHOLOGY_CLASSES``; -1 = unknown)."""
        targets = class_targets(require_label(labels, "morphology", "task 'morphology' (supervised baseline)"), "morphology")
        if targets.max(initial=-1) >= len(MORPHOLOGY_CLASSES):
            raise DataError(f"label 'morphology' holds class {int(targets.max())}; classes are 0..{len(MORPHOLOGY_CLASSES) - 1}")
        return targets, len(MORPHOLOGY_CLASSES)

    # -- helpers ---------------------------------------------------------------------------------
    def _answers(self, labels: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([q.answers(labels) for q in self.questions], axis=1)

    def _fractions(self, labels: dict[str, np.ndarray]) -> tuple[str, ...]:
        if self.vote_fractions is not None:
            for name in self.vote_fractions:
                require_label(labels, name, "task 'morphology' (vote-fraction regression)")
            return self.vote_fractions
        return tuple(c for c in self.required_labels if np.issubdtype(np.asarray(labels[c]).dtype, np.floating))

    def _subset(self, splits, answers: np.ndarray, label_budget: int | None, seed: int) -> np.ndarray:
        any_answer = np.where((answers >= 0).any(axis=1), 1, -1)
        if "train" not in splits:
            raise DataError(f"the data has no 'train' split (it has {sorted(splits)})")
        return draw_labelled_subset(splits["train"], any_answer, label_budget, repeat_seed(seed, 0), label_name="morphology answers")

    def _test_rows(self, splits, answers: np.ndarray) -> np.ndarray:
        if "test" not in splits:
            raise DataError(f"the data has no 'test' split (it has {sorted(splits)})")
        rows = np.asarray(splits["test"])
        rows = rows[(answers[rows] >= 0).any(axis=1)]
        if rows.size == 0:
            raise DataError(f"no test object answers any of the questions {[q.name for q in self.questions]}")
        return rows

    # -- protocols -------------------------------------------------------------------------------
    def evaluate(
        self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None
    ) -> TaskResult:
        probe = self.probe(protocol)
        x = device_embeddings(inputs)
        answers = self._answers(inputs.labels)
        subset = self._subset(inputs.splits, answers, label_budget, seed)
        test = self._test_rows(inputs.splits, answers)
        x_test = take(x, test)
        predictions = pd.DataFrame({"object_id": inputs.object_id[test]})
        details: dict[str, Any] = {"protocol": protocol, "probe": type(probe).__name__, "n_train": {}, "n_test": {}}

        for g, q in enumerate(self.questions):
            train_q = subset[answers[subset, g] >= 0]
            test_q = answers[test, g] >= 0
            if train_q.size == 0 or not test_q.any():
                raise DataError(f"morphology question {q.name!r}: no labelled {'training' if train_q.size == 0 else 'test'} object")
            try:
                fitted = fit_probe(probe, take(x, train_q), Target.of_classes(answers[train_q, g], 2), seed=probe_seed(seed, g))
            except DataError as exc:
                raise DataError(f"morphology question {q.name!r}: {exc}") from exc
            prediction = fitted.predict(x_test)
            self._record_question(q, answers[test, g], prediction.predicted_classes(), prediction.probabilities[:, 1], predictions)
            details["n_train"][q.name], details["n_test"][q.name] = int(train_q.size), int(test_q.sum())

        fractions = self._fractions(inputs.labels)
        for name in fractions:
            y = np.asarray(inputs.labels[name], dtype=np.float64)
            train_f, test_f = subset[np.isfinite(y[subset])], np.isfinite(y[test])
            if train_f.size == 0 or not test_f.any():
                raise DataError(f"vote fraction {name!r}: no labelled {'training' if train_f.size == 0 else 'test'} object")
            fitted = fit_probe(probe, take(x, train_f), Target.of_values(y[train_f]), seed=probe_seed(seed, len(self.questions)))
            predictions[name], predictions[f"{name}_predicted"] = y[test], fitted.predict(x_test).values
        details["vote_fractions"] = list(fractions)
        return TaskResult(self.score(predictions), predictions, details)

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Per question (``label_<q>``, ``predicted_<q>``; -1 = unanswered) accuracy and macro-F1, per
        vote fraction (``<f>``, ``<f>_predicted``; NaN = missing) R² and RMSE, and their means."""
        scores: dict[str, float] = {}
        questions = [q.name for q in self.questions if f"label_{q.name}" in predictions]
        for name in questions:
            truth, predicted = predictions[f"label_{name}"].to_numpy(), predictions[f"predicted_{name}"].to_numpy()
            have = truth >= 0
            result = metrics.multiclass_metrics(truth[have], predicted[have])
            scores[f"accuracy_{name}"], scores[f"macro_f1_{name}"] = result["accuracy"], result["macro_f1"]
        if questions:
            self._average(scores, "accuracy", "macro_f1", questions)
        fractions = [c for c in predictions.columns if f"{c}_predicted" in predictions.columns]
        for name in fractions:
            truth, predicted = predictions[name].to_numpy(np.float64), predictions[f"{name}_predicted"].to_numpy(np.float64)
            have = np.isfinite(truth)
            result = metrics.regression_metrics(truth[have], predicted[have])
            scores[f"r2_{name}"], scores[f"rmse_{name}"] = result["r2"], result["rmse"]
        if fractions:
            self._average(scores, "r2", "rmse", fractions)
        return scores

    def finetune(self, inputs: FinetuneInputs, *, seed: int, label_budget: int | None) -> TaskResult:
        answers = self._answers(inputs.data.labels)
        subset = self._subset(inputs.splits, answers, label_budget, seed)
        test = self._test_rows(inputs.splits, answers)
        for g, q in enumerate(self.questions):
            if np.unique(answers[subset, g][answers[subset, g] >= 0]).size < 2:
                raise DataError(f"morphology question {q.name!r}: the labelled training subset holds a single answer")
        out = finetune_classifier(inputs, answers, [2] * len(self.questions), subset, seed=seed, eval_split="test")
        keep = np.isin(out.eval_indices, test)
        rows = out.eval_indices[keep]
        predictions = pd.DataFrame({"object_id": inputs.data.object_id[rows]})
        for g, q in enumerate(self.questions):
            p_yes = out.probabilities[g][keep, 1]
            self._record_question(q, answers[rows, g], (p_yes > 0.5).astype(np.int64), p_yes, predictions)
        return TaskResult(self.score(predictions), predictions, {"protocol": "finetune", **out.details(), "n_test": int(rows.size)})

    @staticmethod
    def _record_question(q: Question, truth: np.ndarray, predicted: np.ndarray, p_yes: np.ndarray,
                         predictions: pd.DataFrame) -> None:
        predictions[f"label_{q.name}"] = truth
        predictions[f"predicted_{q.name}"] = predicted
        predictions[f"probability_{q.name}"] = p_yes

    @staticmethod
    def _average(scores: dict[str, float], first: str, second: str, names: list[str]) -> None:
        scores[first] = float(np.mean([scores[f"{first}_{n}"] for n in names]))
        scores[second] = float(np.mean([scores[f"{second}_{n}"] for n in names]))
