"""Task.score re-scores a saved predictions frame; bootstrap_std resamples test objects (queries)."""

import numpy as np
import pandas as pd
import pytest

from astrobench.tasks.base import EmbeddingInputs, Task, TaskResult, bootstrap_std
from astrobench.tasks.dwarfs import DwarfTask
from astrobench.tasks.morphology import MorphologyTask
from astrobench.tasks.redshift import RedshiftTask
from astrobench.tasks.similarity import SimilarityTask
from astrobench.testing import TinySizeTask


def _inputs(n: int = 800, seed: int = 0) -> EmbeddingInputs:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.01, 0.39, n)
    dwarf = rng.random(n) < 0.3
    x = rng.normal(size=(n, 10))
    x[:, 0] += 2.0 * dwarf
    x[:, 1] += 10 * z
    featured = 1 / (1 + np.exp(-2 * x[:, 2]))
    labels = {"redshift": z.astype(np.float32), "dwarf": dwarf, "gz_featured": featured, "gz_smooth": 1 - featured,
              "morphology": (x[:, 3] > 0).astype(np.int64) + 2 * (x[:, 2] > 0)}
    order = rng.permutation(n)
    splits = {"train": order[: n // 2], "val": order[n // 2 : 5 * n // 8], "test": order[5 * n // 8 :]}
    return EmbeddingInputs(x.astype(np.float32), np.array([f"o{i}" for i in range(n)]), labels, splits)


CASES = [
    (DwarfTask(per_class=60, n_repeats=3), "linear"),
    (DwarfTask(per_class=60, n_repeats=1), "knn"),
    (RedshiftTask(n_bins=30), "linear"),
    (RedshiftTask(n_bins=30), "knn"),
    (MorphologyTask(questions=("smooth_or_featured",)), "linear"),
    (SimilarityTask(ks=(1, 5)), "search"),
]


@pytest.mark.parametrize("task, protocol", CASES)
def test_score_recomputes_the_scores_from_the_predictions(task, protocol):
    result = task.evaluate(_inputs(), protocol=protocol, seed=0, label_budget=None)
    rescored = task.score(result.predictions)
    # every score except those read from the embeddings (the dwarf search) and a single draw's spread
    expected = {k: v for k, v in result.scores.items() if k != "dwarf_search_fraction"}
    if isinstance(task, DwarfTask) and task.n_repeats == 1:
        expected = {k: v for k, v in expected.items() if not k.endswith("_std")}
    assert rescored == pytest.approx(expected, rel=1e-12)
    spread = bootstrap_std(task, result.predictions, n_boot=50, seed=0)
    assert set(spread) == set(rescored)
    assert all(value > 0 for value in spread.values())
    assert spread[task.main_score] < 0.25 * abs(result.scores[task.main_score])  # hundreds of test objects
    assert spread == bootstrap_std(task, result.predictions, n_boot=50, seed=0)
    assert spread != bootstrap_std(task, result.predictions, n_boot=50, seed=1)


def test_bootstrap_std_of_a_mean_is_its_standard_error():
    """bias = mean(Δz): the bootstrap std must be std(Δz) / sqrt(n) (to the bootstrap's ~5% noise)."""
    rng = np.random.default_rng(0)
    z_spec = rng.uniform(0.01, 0.39, 400)
    z_phot = z_spec + rng.normal(0, 0.02, 400)
    frame = pd.DataFrame({"object_id": np.arange(400).astype(str), "z_spec": z_spec, "z_phot": z_phot})
    dz = (z_phot - z_spec) / (1 + z_spec)
    spread = bootstrap_std(RedshiftTask(), frame, n_boot=400, seed=0)
    assert spread["bias"] == pytest.approx(dz.std() / np.sqrt(400), rel=0.12)
    assert spread["abs_bias"] <= spread["bias"] * 1.05  # |bias| varies no more than bias itself
    # accuracy of 1,000 objects at p = 0.8: sqrt(p (1 - p) / n) = 0.0126
    label = rng.random(1000) < 0.5
    correct = rng.random(1000) < 0.8
    dwarfs = pd.DataFrame({"object_id": np.arange(1000).astype(str), "repeat": 0, "label": label.astype(int),
                           "predicted": np.where(correct, label, ~label).astype(int), "probability": rng.random(1000)})
    assert bootstrap_std(DwarfTask(), dwarfs, n_boot=400)["accuracy"] == pytest.approx(0.0126, rel=0.12)


class _Recorder(Task):
    """Records the frames it is asked to score."""

    main_score = "mean"
    higher_is_better = {"mean": True}
    protocols = ("none",)

    def __init__(self):
        self.frames: list[pd.DataFrame] = []

    def evaluate(self, inputs, *, protocol, seed, label_budget) -> TaskResult:
        raise NotImplementedError

    def score(self, predictions: pd.DataFrame) -> dict[str, float]:
        self.frames.append(predictions)
        if predictions["value"].nunique() == 1:
            raise ValueError("one value: unscorable")  # such resamples are left out
        return {"mean": float(predictions["value"].mean())}


def test_objects_are_resampled_with_all_their_rows():
    # three draws per object (one row each), as the dwarf probe writes them
    frame = pd.DataFrame({"object_id": np.repeat(["a", "b", "c", "d"], 3), "repeat": np.tile([0, 1, 2], 4),
                          "value": np.repeat([1.0, 2.0, 3.0, 4.0], 3)})
    recorder = _Recorder()
    spread = bootstrap_std(recorder, frame, n_boot=100, seed=0)
    assert len(recorder.frames) == 100
    for resample in recorder.frames:
        assert len(resample) == 12
        # a drawn object brings each of its draws as many times as it was drawn
        per_draw = pd.crosstab(resample["object_id"], resample["repeat"]).to_numpy()
        assert (per_draw == per_draw[:, :1]).all() and per_draw.sum() == 12
    assert 0 < spread["mean"] < 1.5


def test_nothing_to_resample_gives_an_empty_dict():
    assert bootstrap_std(RedshiftTask(), None) == {}
    frame = pd.DataFrame({"object_id": ["a", "b"], "size": [1.0, 2.0], "predicted": [1.0, 2.0]})
    assert bootstrap_std(TinySizeTask(), frame) == {}  # a task that cannot re-score its predictions
    with pytest.raises(ValueError, match="n_boot >= 2"):
        bootstrap_std(RedshiftTask(), frame, n_boot=1)
