"""The small interface every task shares (MTEB-style: metadata + evaluate on cached embeddings).

A task never sees a model for its probe protocols: the runner embeds each dataset once per
checkpoint and every task, protocol, label budget and seed reuses those embeddings. Probes are
registered protocols (``tasks/probes.py``): a task says which target kinds it asks for
(``probe_targets``), supplies targets, splits and scoring, and gets its probe by name
(``Task.probe``); ``Task.protocol_problem`` is the one place that decides whether a task supports
a protocol. Protocols that train the encoder (``finetune``: ``needs_model``) get the model through
``FinetuneInputs`` and ``Task.finetune``.

``Task.score`` re-scores a saved predictions frame; ``bootstrap_std`` resamples its test objects.
A score that the frame cannot give (the dwarf search, read from the embeddings) carries its own
bootstrap in ``TaskResult.score_std``; ``score_bootstrap_std`` joins the two for a result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

# the protocols' inputs live in their own module, which probes.py imports too; plugins take them from here
from astrobench.tasks.inputs import EmbeddingInputs, FinetuneInputs

if TYPE_CHECKING:  # keep `astrobench ls` free of torch
    import pandas as pd

    from astrobench.datasets.schema import SurveyData
    from astrobench.tasks.probes import Probe


@dataclass
class TaskResult:
    """Scores of one (task, protocol, label budget, seed) evaluation.

    ``scores``: metric name -> value (the task's ``higher_is_better`` says the direction).
    ``predictions``: one row per evaluated object (``object_id`` + truth + prediction columns),
    saved beside the scores so metrics can be recomputed without re-running.
    ``details``: JSON-serialisable extras (per-repeat values, curves, PIT histogram).
    ``score_std``: bootstrap standard deviation over test objects of the scores that ``Task.score``
    cannot recompute from ``predictions`` (the task resamples those itself, e.g. with
    ``bootstrap_std_of_mean``); ``score_bootstrap_std`` adds the predictions' bootstrap for the rest.
    """

    scores: dict[str, float]
    predictions: "pd.DataFrame | None" = None
    details: dict[str, Any] = field(default_factory=dict)
    score_std: dict[str, float] = field(default_factory=dict)


class Task(ABC):
    """Base class of every registered task; constructor parameters are its options."""

    registered_name: ClassVar[str]
    version: ClassVar[str] = "1"
    required_labels: ClassVar[tuple[str, ...]] = ()
    main_score: ClassVar[str]
    higher_is_better: ClassVar[dict[str, bool]]
    # target kinds the task's probes fit ("classes", "values", "binned"; see probes.Target)
    probe_targets: ClassVar[frozenset[str]] = frozenset()
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)
    # label budgets: None = every labelled training object
    supports_label_budget: ClassVar[bool] = True

    def check_data(self, data: "SurveyData") -> None:
        data.require_labels(self.required_labels, who=f"task {self.registered_name!r}")

    @property
    def protocols(self) -> tuple[str, ...]:
        """Every registered protocol this task supports (a task without probes may set its own tuple)."""
        from astrobench.registry import PROBES

        return tuple(name for name in PROBES.names() if self.protocol_problem(name) is None)

    def protocol_problem(self, protocol: str) -> str | None:
        """Why this task cannot run ``protocol``, or None when it can: the one place that decides.

        A protocol that needs the model runs if the task implements ``finetune``; a probe on
        embeddings runs if it handles every target kind in ``probe_targets``.
        """
        from astrobench.registry import PROBES

        if protocol not in PROBES:
            return "no such protocol is registered"
        probe = PROBES.get(protocol)
        if getattr(probe, "needs_model", False):
            return None if type(self).finetune is not Task.finetune else "the task implements no fine-tuning"
        if not self.probe_targets:
            return "the task trains no probe"
        missing = sorted(self.probe_targets - frozenset(getattr(probe, "handles", ())))
        return f"probe {protocol!r} cannot fit targets of kind {missing}" if missing else None

    def check_protocol(self, protocol: str) -> None:
        supported = self.protocols
        if protocol not in supported:
            # a task with its own protocol tuple (no probes) has no registry reason to give
            why = self.protocol_problem(protocol) if isinstance(getattr(type(self), "protocols"), property) else None
            raise ValueError(
                f"task {self.registered_name!r} has no protocol {protocol!r}{f' ({why})' if why else ''}; "
                f"it has {list(supported)}"
            )

    def probe(self, protocol: str) -> "Probe":
        """The registered probe ``protocol`` with this task's options for it: ``probe_defaults()``
        (from the task's own parameters, e.g. ``C``) updated by ``probe_options[protocol]``."""
        from astrobench.tasks.probes import make_probe, needs_model

        self.check_protocol(protocol)
        if needs_model(protocol):
            raise ValueError(
                f"task {self.registered_name!r}: protocol {protocol!r} trains the model; it runs through finetune(), not evaluate()"
            )
        options = {**self.probe_defaults().get(protocol, {}), **(getattr(self, "probe_options", None) or {}).get(protocol, {})}
        return make_probe(protocol, options, who=f"task {self.registered_name!r}")

    def probe_defaults(self) -> dict[str, dict[str, Any]]:
        """Options the task's own parameters give each probe, e.g. ``{"knn": {"k": self.knn_k}}``."""
        return {}

    def score(self, predictions: "pd.DataFrame") -> dict[str, float]:
        """Scores recomputed from a predictions frame (``TaskResult.predictions``) alone."""
        raise NotImplementedError(f"task {self.registered_name!r} cannot re-score its predictions")

    @abstractmethod
    def evaluate(
        self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None
    ) -> TaskResult:
        """Score embeddings under a probe protocol (``linear``, ``knn``, ...)."""

    def finetune(
        self, inputs: FinetuneInputs, *, seed: int, label_budget: int | None
    ) -> TaskResult:
        raise ValueError(f"task {self.registered_name!r} has no fine-tuning protocol")

    def training_rows(self, labels: dict[str, np.ndarray], splits: dict[str, np.ndarray], seed: int,
                      label_budget: int | None) -> np.ndarray:
        """The labelled training objects this task's probe uses for (seed, budget): the supervised
        baseline trains on exactly these, so both see the same labels. Default: a uniform draw of
        ``label_budget`` training objects with a supervised target (all of them for None)."""
        from astrobench.tasks.probes import draw_labelled_subset, repeat_seed

        targets, _ = self.supervised_targets(labels)
        return draw_labelled_subset(splits["train"], targets, label_budget, repeat_seed(seed, 0),
                                    label_name=f"{self.registered_name} target")

    def supervised_targets(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """(N,) int class targets (-1 = unlabelled) and the class count, for the supervised baseline."""
        raise ValueError(f"task {self.registered_name!r} defines no target for the supervised baseline")

    def params(self) -> dict[str, Any]:
        """Constructor parameters, for result hashes and provenance."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def bootstrap_std(task: Task, predictions: "pd.DataFrame | None", n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Standard deviation (ddof=1) of each score of ``task.score`` over ``n_boot`` bootstrap resamples.

    The test objects are resampled with replacement: rows are grouped by ``object_id`` (a dwarf
    probe has one row per object and draw, similarity search one row per query) and a drawn object
    brings all its rows. Resamples that cannot be scored (e.g. one class drawn, so no ROC-AUC) are
    left out. Returns {} when there are no predictions or the task cannot re-score them.
    """
    import pandas as pd

    if n_boot < 2:
        raise ValueError(f"bootstrap needs n_boot >= 2, got {n_boot}")
    if predictions is None or len(predictions) == 0 or type(task).score is Task.score:
        return {}
    codes, uniques = pd.factorize(predictions["object_id"])
    order = np.argsort(codes, kind="stable")  # rows of each object, contiguous
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        drawn = rng.integers(0, len(uniques), len(uniques))
        lengths = counts[drawn]
        # every row of every drawn object: its start plus 0..count-1
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = order[np.repeat(starts[drawn], lengths) + offsets]
        try:
            scores = task.score(predictions.iloc[rows].reset_index(drop=True))
        except ValueError:
            continue
        for key, value in scores.items():
            samples.setdefault(key, []).append(float(value))
    out = {}
    for key, values in samples.items():
        finite = np.asarray(values)[np.isfinite(values)]
        if finite.size >= 2:
            out[key] = float(np.std(finite, ddof=1))
    return out


def bootstrap_std_of_mean(values: Any, n_boot: int = 200, seed: int = 0) -> float:
    """Standard deviation (ddof=1) of the mean of ``values`` over ``n_boot`` resamples with
    replacement (the bootstrap of ``bootstrap_std``, for a score that is a mean over test objects);
    0 for a single value."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if n_boot < 2:
        raise ValueError(f"bootstrap needs n_boot >= 2, got {n_boot}")
    if values.size == 0:
        raise ValueError("bootstrap of a mean needs at least one value")
    drawn = np.random.default_rng(seed).integers(0, values.size, (n_boot, values.size))
    return float(np.std(values[drawn].mean(axis=1), ddof=1))


def score_bootstrap_std(task: Task, result: TaskResult, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Bootstrap standard deviation over the test objects of each score of ``result``: resampled
    predictions (``bootstrap_std``), and the task's own for the scores they cannot give."""
    return {**bootstrap_std(task, result.predictions, n_boot, seed), **result.score_std}
