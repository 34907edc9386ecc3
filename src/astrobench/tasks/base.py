"""The small interface every task shares (MTEB-style: metadata + evaluate on cached embeddings).

A task never sees a model for its probe protocols: the runner embeds each dataset once per
checkpoint and every task, protocol, label budget and seed reuses those embeddings. Fine-tuning is
the one protocol that needs the model, and receives it through ``FinetuneInputs``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # keep `astrobench ls` free of torch
    import pandas as pd
    import torch

    from astrobench.datasets.schema import SurveyData
    from astrobench.methods.base import Method


@dataclass
class TaskResult:
    """Scores of one (task, protocol, label budget, seed) evaluation.

    ``scores``: metric name -> value (the task's ``higher_is_better`` says the direction).
    ``predictions``: one row per evaluated object (``object_id`` + truth + prediction columns),
    saved beside the scores so metrics can be recomputed without re-running.
    ``details``: JSON-serialisable extras (per-repeat values, curves, PIT histogram).
    """

    scores: dict[str, float]
    predictions: "pd.DataFrame | None" = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingInputs:
    """What a probe protocol gets: embeddings of every object plus labels and splits."""

    embeddings: np.ndarray  # (N, D) float32
    object_id: np.ndarray  # (N,) str
    labels: dict[str, np.ndarray]  # each (N,) or (N, K)
    splits: dict[str, np.ndarray]  # "train" / "val" / "test" -> row indices


@dataclass
class FinetuneInputs:
    """What the fine-tuning protocol gets: a copy of the pretrained model it may modify."""

    model: "Method"
    data: "SurveyData"
    splits: dict[str, np.ndarray]
    device: "torch.device"
    profile: str


class Task(ABC):
    """Base class of every registered task; constructor parameters are its options."""

    registered_name: ClassVar[str]
    version: ClassVar[str] = "1"
    required_labels: ClassVar[tuple[str, ...]] = ()
    main_score: ClassVar[str]
    higher_is_better: ClassVar[dict[str, bool]]
    protocols: ClassVar[tuple[str, ...]] = ("linear", "knn")
    default_protocols: ClassVar[tuple[str, ...]] = ("linear",)
    # label budgets: None = every labelled training object
    supports_label_budget: ClassVar[bool] = True

    def check_data(self, data: "SurveyData") -> None:
        data.require_labels(self.required_labels, who=f"task {self.registered_name!r}")

    def check_protocol(self, protocol: str) -> None:
        if protocol not in self.protocols:
            raise ValueError(
                f"task {self.registered_name!r} has no protocol {protocol!r}; it has {list(self.protocols)}"
            )

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
