"""Morphology: majority answers, per-question scores, vote-fraction regression, custom questions."""

import json

import numpy as np
import pytest

from astrobench.datasets.schema import DataError
from astrobench.registry import TASKS
from astrobench.tasks.base import EmbeddingInputs
from astrobench.tasks.morphology import BUILTIN_QUESTIONS, MorphologyTask, Question


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _inputs(n: int = 600, seed: int = 0) -> EmbeddingInputs:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    featured = _sigmoid(2.5 * x[:, 0]).astype(np.float32)
    labels = {
        "gz_featured": featured,
        "gz_smooth": (1 - featured) * 0.95,  # 5 % of votes went to "artefact"
        "gz_edge_on": _sigmoid(2.5 * x[:, 1] - 0.5).astype(np.float32),
        "gz_spiral": _sigmoid(2.5 * x[:, 2]).astype(np.float32),
        "gz_bar": _sigmoid(2.5 * x[:, 3] - 1).astype(np.float32),
        "gz_merger": _sigmoid(2.5 * x[:, 4] - 1.5).astype(np.float32),
        "morphology": rng.integers(0, 7, n),
    }
    labels["gz_bar"][:50] = np.nan  # question not asked of some galaxies
    order = rng.permutation(n)
    return EmbeddingInputs(x, np.array([f"m{i}" for i in range(n)]), labels,
                           {"train": order[: n // 2], "val": order[n // 2 : 3 * n // 5], "test": order[3 * n // 5 :]})


def test_majority_answers_by_hand():
    labels = {"gz_featured": np.array([0.6, 0.4, 0.45, np.nan]), "gz_smooth": np.array([0.3, 0.5, 0.45, 0.2]),
              "gz_bar": np.array([0.51, 0.5, 0.2, np.nan]), "ring": np.array([1, 0, -1, 1])}
    # featured vs smooth: 0.6 > 0.3 yes; 0.4 < 0.5 no; tie 0.45 = 0.45 -> no (smooth); NaN -> missing
    assert BUILTIN_QUESTIONS["smooth_or_featured"].answers(labels).tolist() == [1, 0, 0, -1]
    # fraction > 0.5, strictly: 0.51 yes, 0.5 no, 0.2 no, NaN missing
    assert BUILTIN_QUESTIONS["bar"].answers(labels).tolist() == [1, 0, 0, -1]
    # 0/1 labels with -1 missing
    assert BUILTIN_QUESTIONS["ring"].answers(labels).tolist() == [1, 0, -1, 1]
    with pytest.raises(DataError, match="'gz_spiral'"):
        BUILTIN_QUESTIONS["spiral"].answers(labels)


def test_default_questions_scores_and_directions():
    assert TASKS.get("morphology") is MorphologyTask
    task = MorphologyTask()
    result = task.evaluate(_inputs(), protocol="linear", seed=0, label_budget=None)
    names = ["smooth_or_featured", "edge_on", "spiral", "bar", "merger"]
    for q in names:
        assert 0.8 < result.scores[f"accuracy_{q}"] <= 1.0
        assert f"macro_f1_{q}" in result.scores
    assert result.scores["accuracy"] == pytest.approx(np.mean([result.scores[f"accuracy_{q}"] for q in names]))
    # ridge regression of every vote fraction (the float labels the questions use)
    assert result.details["vote_fractions"] == ["gz_featured", "gz_smooth", "gz_edge_on", "gz_spiral", "gz_bar", "gz_merger"]
    assert result.scores["r2_gz_featured"] > 0.7
    assert set(result.scores) <= set(task.higher_is_better)
    assert task.higher_is_better["rmse"] is False and task.main_score == "accuracy"
    frame = result.predictions
    assert {"object_id", "label_bar", "predicted_bar", "probability_bar", "gz_bar", "gz_bar_predicted"} <= set(frame.columns)
    json.dumps(result.scores), json.dumps(result.details), json.dumps(task.params())


def test_knn_protocol_and_label_budget():
    task = MorphologyTask(questions=("smooth_or_featured", "spiral"), vote_fractions=("gz_spiral",))
    data = _inputs()
    a = task.evaluate(data, protocol="knn", seed=0, label_budget=60)
    b = task.evaluate(data, protocol="knn", seed=0, label_budget=60)
    c = task.evaluate(data, protocol="knn", seed=5, label_budget=60)
    assert a.scores == b.scores and a.scores != c.scores
    assert a.details["n_train"] == {"smooth_or_featured": 60, "spiral": 60}
    assert set(a.scores) == {"accuracy", "macro_f1", "accuracy_smooth_or_featured", "macro_f1_smooth_or_featured",
                             "accuracy_spiral", "macro_f1_spiral", "r2_gz_spiral", "rmse_gz_spiral", "r2", "rmse"}


def test_gz_rings_style_custom_questions():
    # the Galaxy Zoo rings catalogue: `ring` 0/1 plus vote fractions under their own column names
    data = _inputs()
    featured = data.labels["gz_featured"]
    labels = {"ring": (data.embeddings[:, 5] > 0).astype(np.int64),
              "smooth-or-featured_featured-or-disk_fraction": featured}
    custom = EmbeddingInputs(data.embeddings, data.object_id, labels, data.splits)
    task = MorphologyTask(questions=["ring", {"name": "featured", "label": "smooth-or-featured_featured-or-disk_fraction"}])
    assert task.required_labels == ("ring", "smooth-or-featured_featured-or-disk_fraction")
    result = task.evaluate(custom, protocol="linear", seed=0, label_budget=None)
    assert result.scores["accuracy_ring"] > 0.9
    # the 0/1 ring label is a question, not a vote fraction to regress
    assert result.details["vote_fractions"] == ["smooth-or-featured_featured-or-disk_fraction"]
    assert MorphologyTask(questions=[Question("q", "ring")], vote_fractions=()).evaluate(
        custom, protocol="linear", seed=0, label_budget=None).details["vote_fractions"] == []


def test_clear_errors():
    data = _inputs()
    with pytest.raises(DataError, match="'gz_merger'"):
        MorphologyTask().evaluate(
            EmbeddingInputs(data.embeddings, data.object_id, {k: v for k, v in data.labels.items() if k != "gz_merger"}, data.splits),
            protocol="linear", seed=0, label_budget=None)
    one_class = dict(data.labels, gz_merger=np.zeros(600, np.float32))
    with pytest.raises(DataError, match="question 'merger'.*single class"):
        MorphologyTask().evaluate(EmbeddingInputs(data.embeddings, data.object_id, one_class, data.splits),
                                  protocol="linear", seed=0, label_budget=None)
    with pytest.raises(ValueError, match="unknown morphology question 'rings'"):
        MorphologyTask(questions=["rings"])
    with pytest.raises(ValueError, match="unknown keys"):
        MorphologyTask(questions=[{"name": "x", "column": "y"}])
    targets, n = MorphologyTask().supervised_targets(data.labels)
    assert n == 7 and targets.max() < 7
    with pytest.raises(DataError, match="'morphology'"):
        MorphologyTask().supervised_targets({"gz_bar": np.ones(3)})


def test_real_gz_rings_catalogue_columns(real_data):
    import pandas as pd

    catalog = pd.read_csv(real_data / "gz_rings" / "catalog.csv")
    fractions = [c for c in catalog.columns if c.endswith("_fraction")]
    labels = {"ring": catalog["ring"].to_numpy(np.int64), **{c: catalog[c].to_numpy(np.float32) for c in fractions}}
    n = len(catalog)
    rng = np.random.default_rng(0)
    inputs = EmbeddingInputs(rng.normal(size=(n, 8)).astype(np.float32), catalog["iauname"].to_numpy(str), labels,
                             {"train": np.arange(0, 60), "val": np.arange(60, 80), "test": np.arange(80, n)})
    task = MorphologyTask(questions=["ring"], vote_fractions=fractions)
    result = task.evaluate(inputs, protocol="linear", seed=0, label_budget=None)
    assert {"accuracy_ring", "accuracy", *[f"r2_{c}" for c in fractions]} <= set(result.scores)
    assert set(result.scores) <= set(task.higher_is_better)
    # every galaxy there has more than half "no spiral arms" votes: a majority question on it has one answer
    with pytest.raises(DataError, match="'no_spiral'.*single class"):
        MorphologyTask(questions=[{"name": "no_spiral", "label": "has-spiral-arms_no_fraction"}], vote_fractions=()).evaluate(
            inputs, protocol="linear", seed=0, label_budget=None)
