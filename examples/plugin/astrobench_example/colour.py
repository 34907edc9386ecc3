"""A colour-regression task: predict g - r from embeddings with a ridge probe."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astrobench import register_task
from astrobench.tasks.base import EmbeddingInputs, Task, TaskResult


@register_task("colour")
class ColourTask(Task):
    version = "1"
    main_score = "r2"
    higher_is_better = {"r2": True, "rmse": False}
    protocols = ("linear",)
    default_protocols = ("linear",)

    def __init__(self, blue: str = "g", red: str = "r", alpha: float = 1.0):
        self.blue, self.red, self.alpha = blue, red, alpha

    @property
    def required_labels(self) -> tuple[str, ...]:  # depends on the chosen bands
        return (f"mag_{self.blue}", f"mag_{self.red}")

    def evaluate(self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None) -> TaskResult:
        colour = inputs.labels[f"mag_{self.blue}"] - inputs.labels[f"mag_{self.red}"]
        train = inputs.splits["train"][np.isfinite(colour[inputs.splits["train"]])]
        test = inputs.splits["test"][np.isfinite(colour[inputs.splits["test"]])]
        if label_budget is not None and label_budget < len(train):
            train = np.sort(np.random.default_rng(seed).choice(train, label_budget, replace=False))
        probe = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(inputs.embeddings[train], colour[train])
        predicted = probe.predict(inputs.embeddings[test])
        scores = {
            "r2": float(r2_score(colour[test], predicted)),
            "rmse": float(np.sqrt(mean_squared_error(colour[test], predicted))),
        }
        predictions = pd.DataFrame({"object_id": inputs.object_id[test], "colour": colour[test], "predicted": predicted})
        return TaskResult(scores, predictions)
