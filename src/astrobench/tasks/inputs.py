"""What an evaluation protocol gets: embeddings for the probes, a model for fine-tuning.

Its own module, below both ``tasks/base.py`` and ``tasks/probes.py``, so that neither imports the
other for these types; tasks and plugins import them from ``astrobench.tasks.base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # keep `astrobench ls` free of torch
    import torch

    from astrobench.datasets.schema import SurveyData
    from astrobench.methods.base import Method


@dataclass
class EmbeddingInputs:
    """What a probe protocol gets: embeddings of every object plus labels and splits."""

    embeddings: np.ndarray  # (N, D) float32
    object_id: np.ndarray  # (N,) str
    labels: dict[str, np.ndarray]  # each (N,) or (N, K)
    splits: dict[str, np.ndarray]  # "train" / "val" / "test" -> row indices
    device: "torch.device | str" = "cpu"  # where probes run (the run's device)


@dataclass
class FinetuneInputs:
    """What the fine-tuning protocol gets: a copy of the pretrained model it may modify."""

    model: "Method"
    data: "SurveyData"
    splits: dict[str, np.ndarray]
    device: "torch.device"
    profile: str
