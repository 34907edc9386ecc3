"""The dwarf task: balanced repeated probes, the search form, seeds, errors."""

import json

import numpy as np
import pytest

from astrobench.datasets.schema import DataError
from astrobench.registry import TASKS
from astrobench.tasks.base import EmbeddingInputs, bootstrap_std, score_bootstrap_std
from astrobench.tasks.dwarfs import DwarfTask


def _inputs(n: int = 600, separation: float = 1.5, seed: int = 0, dwarf_fraction: float = 0.3) -> EmbeddingInputs:
    rng = np.random.default_rng(seed)
    dwarf = rng.random(n) < dwarf_fraction
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += separation * dwarf
    order = rng.permutation(n)
    return EmbeddingInputs(
        embeddings=x,
        object_id=np.array([f"obj{i}" for i in range(n)]),
        labels={"dwarf": dwarf},
        splits={"train": order[: n // 2], "val": order[n // 2 : 3 * n // 5], "test": order[3 * n // 5 :]},
    )


def test_registered_and_directions_cover_scores():
    assert TASKS.get("dwarfs") is DwarfTask
    task = DwarfTask(per_class=40, n_repeats=3)
    result = task.evaluate(_inputs(separation=3.0), protocol="linear", seed=0, label_budget=None)
    assert set(result.scores) == set(DwarfTask.higher_is_better)
    assert DwarfTask.main_score in result.scores
    json.dumps(result.scores), json.dumps(result.details), json.dumps(task.params())
    assert result.details["n_train_per_repeat"] == [80, 80, 80]
    assert 0.85 < result.scores["accuracy"] <= 1.0
    assert result.scores["roc_auc"] > 0.9
    assert result.scores["accuracy_std"] > 0.0  # three different draws
    frame = result.predictions
    assert list(frame.columns) == ["object_id", "repeat", "label", "predicted", "probability"]
    assert len(frame) == 3 * 240 and sorted(frame["repeat"].unique()) == [0, 1, 2]


def test_same_seed_same_scores_different_seed_different_draws():
    task = DwarfTask(per_class=30, n_repeats=2)
    data = _inputs(separation=0.8)
    a = task.evaluate(data, protocol="linear", seed=1, label_budget=None)
    b = task.evaluate(data, protocol="linear", seed=1, label_budget=None)
    c = task.evaluate(data, protocol="linear", seed=2, label_budget=None)
    assert a.scores == b.scores
    assert a.details["per_repeat"] != c.details["per_repeat"]
    assert a.details["search"]["query_rows"] == c.details["search"]["query_rows"]  # every test dwarf
    drawn = DwarfTask(per_class=30, n_repeats=1, n_search_queries=10)
    assert (drawn.evaluate(data, protocol="linear", seed=1, label_budget=None).details["search"]["query_rows"]
            != drawn.evaluate(data, protocol="linear", seed=2, label_budget=None).details["search"]["query_rows"])


def test_label_budget_is_total_and_balanced():
    task = DwarfTask(n_repeats=1)
    result = task.evaluate(_inputs(), protocol="knn", seed=0, label_budget=50)
    assert result.details["n_train_per_repeat"] == [50]  # 25 + 25
    # default 200 + 200 capped by the ~45 dwarfs of the train split, still balanced
    capped = task.evaluate(_inputs(), protocol="knn", seed=0, label_budget=None)
    n = capped.details["n_train_per_repeat"][0]
    assert n % 2 == 0 and n < 400


def test_search_fraction_with_tied_embeddings_follows_row_order():
    # every embedding identical: neighbours are the other test rows in order (documented tie rule)
    n = 40
    dwarf = np.zeros(n, bool)
    dwarf[[0, 1, 2, 10, 11, 12, 13, 14, 15]] = True
    data = EmbeddingInputs(
        embeddings=np.ones((n, 4), np.float32),
        object_id=np.array([str(i) for i in range(n)]),
        labels={"dwarf": dwarf},
        splits={"train": np.arange(10, 40), "val": np.array([], int), "test": np.arange(0, 10)},
    )
    task = DwarfTask(per_class=5, n_repeats=1, n_search_queries=1, search_k=5, min_per_class=3)
    result = task.evaluate(data, protocol="knn", seed=0, label_budget=None)
    # test rows 0..9, dwarfs 0, 1, 2; the query is one of them; its 5 neighbours are the first 5 other rows,
    # which hold the 2 other dwarfs -> 2/5
    assert result.scores["dwarf_search_fraction"] == pytest.approx(0.4)


def test_search_fraction_on_separated_embeddings_is_one():
    result = DwarfTask(per_class=40, n_repeats=1).evaluate(_inputs(separation=50.0), protocol="linear", seed=0, label_budget=None)
    assert result.scores["dwarf_search_fraction"] == 1.0
    assert result.scores["accuracy"] == 1.0


def test_clear_errors():
    data = _inputs()
    with pytest.raises(DataError, match="label 'dwarf'"):
        DwarfTask().evaluate(
            EmbeddingInputs(data.embeddings, data.object_id, {"redshift": np.ones(600)}, data.splits),
            protocol="linear", seed=0, label_budget=None,
        )
    few = _inputs(dwarf_fraction=0.005, seed=3)
    with pytest.raises(DataError, match="'dwarf': only"):
        DwarfTask(min_per_class=5).evaluate(few, protocol="linear", seed=0, label_budget=None)
    with pytest.raises(ValueError, match="no protocol 'ridge'"):
        DwarfTask().evaluate(data, protocol="ridge", seed=0, label_budget=None)
    assert DwarfTask().supervised_targets({"dwarf": np.array([True, False])})[1] == 2


def test_training_rows_are_the_first_balanced_probe_draw():
    """The supervised baseline trains on these rows: the same labels the probe's first draw sees."""
    task = DwarfTask(per_class=20, n_repeats=1)
    data = _inputs()
    rows = task.training_rows(data.labels, data.splits, seed=3, label_budget=None)
    assert len(rows) == 40 and data.labels["dwarf"][rows].sum() == 20
    assert set(rows) <= set(data.splits["train"])
    assert np.array_equal(rows, task.training_rows(data.labels, data.splits, seed=3, label_budget=None))
    assert not np.array_equal(rows, task.training_rows(data.labels, data.splits, seed=4, label_budget=None))
    probe = task.evaluate(data, protocol="linear", seed=3, label_budget=None)
    first_draw = probe.details["n_train_per_repeat"][0]
    assert first_draw == len(rows)


def test_search_fraction_carries_its_bootstrap_over_the_queries():
    data = _inputs(separation=1.0)
    task = DwarfTask(per_class=40, n_repeats=1)
    result = task.evaluate(data, protocol="knn", seed=3, label_budget=None)
    per_query = np.asarray(result.details["search"]["per_query"])
    # by default every labelled test dwarf is a query; n_search_queries draws fewer with the seed
    test_dwarfs = np.sort(data.splits["test"][data.labels["dwarf"][data.splits["test"]]])
    assert result.details["search"]["query_rows"] == test_dwarfs.tolist() and per_query.std() > 0
    fewer = DwarfTask(per_class=40, n_repeats=1, n_search_queries=20).evaluate(data, protocol="knn", seed=3, label_budget=None)
    assert len(fewer.details["search"]["query_rows"]) == 20
    assert set(fewer.details["search"]["query_rows"]) < set(test_dwarfs.tolist())
    spread = result.score_std["dwarf_search_fraction"]
    assert spread == result.details["search"]["fraction_bootstrap_std"]
    # the bootstrap of a mean is its standard error, std / sqrt(n), up to the resampling noise
    assert spread == pytest.approx(per_query.std() / np.sqrt(per_query.size), rel=0.2)
    # the result's uncertainty joins it to the probe scores' bootstrap over resampled predictions
    stds = score_bootstrap_std(task, result, n_boot=50)
    assert set(stds) == set(bootstrap_std(task, result.predictions, n_boot=50)) | {"dwarf_search_fraction"}
    assert stds["dwarf_search_fraction"] == spread and stds["balanced_accuracy"] > 0
