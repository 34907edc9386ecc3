"""Similarity search: a tiny ranking computed by hand, ties, and errors."""

import json

import numpy as np
import pytest

from astrobench.datasets.schema import DataError
from astrobench.registry import TASKS
from astrobench.tasks.base import EmbeddingInputs
from astrobench.tasks.similarity import SimilarityTask


def _circle(angles_deg, classes, label="morphology", extra_train=0):
    angles = np.deg2rad(np.asarray(angles_deg, float))
    x = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    n = len(x)
    return EmbeddingInputs(x, np.array([f"s{i}" for i in range(n)]), {label: np.asarray(classes)},
                           {"train": np.array([], int), "val": np.array([], int), "test": np.arange(n)})


def test_tiny_ranking_by_hand():
    assert TASKS.get("similarity") is SimilarityTask
    # objects at 0, 10, 30, 100, 120 degrees; classes 0, 0, 1, 1, 1. Rankings by angular distance:
    #   s0: s1 s2 s3 s4 -> classes 0 1 1 1 -> relevance 1 0 0 0 -> AP 1,      P@1 1, P@2 1/2
    #   s1: s0 s2 s3 s4 -> 0 1 1 1          -> 1 0 0 0         -> AP 1,      P@1 1, P@2 1/2
    #   s2: s1 s0 s3 s4 -> 0 0 1 1          -> 0 0 1 1         -> AP (1/3 + 2/4)/2 = 5/12, P@1 0, P@2 0
    #   s3: s4 s2 s1 s0 -> 1 1 0 0          -> 1 1 0 0         -> AP 1,      P@1 1, P@2 1
    #   s4: s3 s2 s1 s0 -> 1 1 0 0          -> 1 1 0 0         -> AP 1,      P@1 1, P@2 1
    # mAP = (4 + 5/12) / 5 = 0.883333; P@1 = 4/5; P@2 = (1/2 + 1/2 + 0 + 1 + 1) / 5 = 0.6
    task = SimilarityTask(ks=(1, 2))
    result = task.evaluate(_circle([0, 10, 30, 100, 120], [0, 0, 1, 1, 1]), protocol="search", seed=0, label_budget=None)
    assert result.scores == pytest.approx({"mean_average_precision": (4 + 5 / 12) / 5, "precision_at_1": 0.8, "precision_at_2": 0.6})
    per_class = result.details["per_class"]
    assert per_class["0"]["mean_average_precision"] == pytest.approx(1.0)
    assert per_class["1"]["mean_average_precision"] == pytest.approx((5 / 12 + 2) / 3)
    assert per_class["1"]["precision_at_1"] == pytest.approx(2 / 3)
    assert result.predictions["neighbours"].iloc[2] == ["s1", "s0"]
    assert result.predictions["average_precision"].tolist() == pytest.approx([1, 1, 5 / 12, 1, 1])
    assert set(result.scores) == set(task.higher_is_better)
    json.dumps(result.scores), json.dumps(result.details), json.dumps(task.params())


def test_ties_rank_by_row_order_and_singletons_are_left_out():
    # all embeddings identical: each ranking is the other test rows in order
    # classes 0 1 0 1 2: s0 -> s1 s2 s3 s4 -> rel 0 1 0 0 -> AP 1/2; s1 -> s0 s2 s3 s4 -> 0 0 1 0 -> AP 1/3
    #   s2 -> s0 s1 s3 s4 -> 1 0 0 0 -> AP 1; s3 -> s0 s1 s2 s4 -> 0 1 0 0 -> AP 1/2; s4 is alone in class 2: left out
    data = _circle([0, 0, 0, 0, 0], [0, 1, 0, 1, 2], label="ring")
    result = SimilarityTask(label="ring", ks=(1,)).evaluate(data, protocol="search", seed=0, label_budget=None)
    assert result.scores["mean_average_precision"] == pytest.approx((0.5 + 1 / 3 + 1 + 0.5) / 4)
    assert result.scores["precision_at_1"] == pytest.approx(0.25)
    assert result.details["n_queries_without_match"] == 1
    assert np.isnan(result.predictions["average_precision"].iloc[4])


def test_clear_errors():
    with pytest.raises(DataError, match="at least two classes"):
        SimilarityTask(ks=(1,)).evaluate(_circle([0, 10, 20], [1, 1, 1]), protocol="search", seed=0, label_budget=None)
    with pytest.raises(DataError, match="label 'dwarf'"):
        SimilarityTask(label="dwarf").evaluate(_circle([0, 10], [0, 1]), protocol="search", seed=0, label_budget=None)
    with pytest.raises(DataError, match="no object of the 'test' split"):
        SimilarityTask().evaluate(_circle([0, 10, 20], [-1, -1, -1]), protocol="search", seed=0, label_budget=None)
    with pytest.raises(DataError, match="precision@25"):
        SimilarityTask().evaluate(_circle([0, 10, 20], [0, 1, 0]), protocol="search", seed=0, label_budget=None)
    with pytest.raises(DataError, match="shares its"):
        SimilarityTask(ks=(1,)).evaluate(_circle([0, 10, 20], [0, 1, 2]), protocol="search", seed=0, label_budget=None)
    with pytest.raises(ValueError, match="label budget"):
        SimilarityTask(ks=(1,)).evaluate(_circle([0, 10, 20], [0, 1, 0]), protocol="search", seed=0, label_budget=50)
    with pytest.raises(ValueError, match="ks"):
        SimilarityTask(ks=(0, 1))
