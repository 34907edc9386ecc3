"""The generic tasks (classification, regression, retrieval): a user's own label, checked up front,
scored against scikit-learn on a toy folder and run on real ring PNGs and SDSS quasars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from astrobench.datasets.images import ImageFolderSource
from astrobench.datasets.schema import DataError
from astrobench.datasets.splits import split_indices
from astrobench.registry import TASKS
from astrobench.tasks.base import EmbeddingInputs, bootstrap_std
from astrobench.tasks.classification import ClassificationTask
from astrobench.tasks.regression import RegressionTask
from astrobench.tasks.retrieval import RetrievalTask
from astrobench.tasks.similarity import SimilarityTask

CLASS_NAMES = ["elliptical", "spiral", "barred", "irregular", "merger", "edge-on"]


def _six_class_folder(tmp_path, n=240, text=False):
    """A Galaxy-Zoo-like export: Imagenes/<OBJID>.jpeg and a CSV of OBJID, CLASS (6 classes) and
    nothing else; each class has its own mean colour, blurred by noise so the probe errs sometimes."""
    rng = np.random.default_rng(1)
    (tmp_path / "Imagenes").mkdir()
    colours = rng.uniform(120, 140, size=(6, 3))  # close colours: classes overlap
    classes = rng.integers(0, 6, n)
    ids = rng.choice(10**9, size=n, replace=False) + 10**12
    for objid, c in zip(ids, classes):
        pixels = colours[c] + rng.normal(0, 60, size=(12, 12, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(tmp_path / "Imagenes" / f"{objid}.jpeg", quality=95)
    labels = [CLASS_NAMES[c] for c in classes] if text else classes
    pd.DataFrame({"OBJID": ids, "CLASS": labels}).to_csv(tmp_path / "gz.csv", index=False)
    return tmp_path


def _inputs(data, embeddings):
    return EmbeddingInputs(np.asarray(embeddings, np.float32), data.object_id, data.labels, split_indices(data))


def _colour_features(data):
    """Per-band mean and std: the embedding a toy test needs (no training)."""
    return np.concatenate([data.image.mean(axis=(2, 3)), data.image.std(axis=(2, 3))], axis=1)


def test_classification_on_a_six_class_folder_agrees_with_scikit_learn(tmp_path):
    from sklearn import metrics as skm
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    folder = _six_class_folder(tmp_path)
    data = ImageFolderSource(str(folder), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.jpeg").load()
    assert data.labels["CLASS"].dtype == np.int64 and set(data.labels) == {"CLASS"}  # OBJID is the id, not a label
    x = _colour_features(data)
    inputs = _inputs(data, x)
    task = TASKS.get("classification")(label="CLASS")
    task.check_data(data)
    result = task.evaluate(inputs, protocol="linear", seed=0, label_budget=None)

    train, test = inputs.splits["train"], inputs.splits["test"]
    y = data.labels["CLASS"]
    scaler = StandardScaler().fit(x[train])
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(x[train]), y[train])
    expected = reference.predict(scaler.transform(x[test]))
    predicted = result.predictions["predicted"].to_numpy()  # class indices = the sorted class values 0..5
    assert result.predictions["object_id"].tolist() == data.object_id[test].tolist()
    assert result.details["n_train"] == train.size and result.details["n_test"] == test.size
    assert np.mean(predicted == expected) >= 0.97  # the documented agreement of the two solvers
    assert abs(result.scores["accuracy"] - skm.accuracy_score(y[test], expected)) <= 0.02
    assert 0.4 < result.scores["accuracy"] < 1.0  # the noise leaves the toy problem neither trivial nor hopeless
    # every score is scikit-learn's definition applied to our predictions
    assert result.scores["accuracy"] == pytest.approx(skm.accuracy_score(y[test], predicted))
    assert result.scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y[test], predicted))
    assert result.scores["macro_f1"] == pytest.approx(skm.f1_score(y[test], predicted, average="macro"))
    report = skm.classification_report(y[test], predicted, output_dict=True, zero_division=0)
    for name in map(str, range(6)):
        for key in ("precision", "recall", "f1-score"):
            assert result.details["per_class"][name][key.replace("-score", "")] == pytest.approx(report[name][key])
        assert result.details["per_class"][name]["support"] == report[name]["support"]
    assert task.score(result.predictions) == result.scores
    assert set(bootstrap_std(task, result.predictions, n_boot=20)) == set(result.scores)


def test_text_classes_keep_their_names(tmp_path):
    folder = _six_class_folder(tmp_path, n=120, text=True)
    data = ImageFolderSource(str(folder), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.jpeg",
                             label_columns=["CLASS"]).load()
    assert data.labels["CLASS"].dtype.kind == "U"
    result = ClassificationTask(label="CLASS").evaluate(_inputs(data, _colour_features(data)), protocol="knn", seed=0,
                                                        label_budget=None)
    assert result.details["classes"] == sorted(CLASS_NAMES)
    assert set(result.details["per_class"]) == set(CLASS_NAMES)
    retrieval = RetrievalTask(label="CLASS", ks=(1, 5)).evaluate(_inputs(data, _colour_features(data)), protocol="search",
                                                                  seed=0, label_budget=None)
    assert 0 < retrieval.scores["mean_average_precision"] <= 1


def test_labels_are_checked_up_front_with_the_values_they_hold():
    from astrobench.datasets.schema import SurveyData

    n = 20
    labels = {"z": np.linspace(2.8, 5.0, n), "kind": np.array([0] * n), "ring": np.arange(n) % 2}
    data = SurveyData(np.array([f"o{i}" for i in range(n)]), np.zeros((n, 1, 4, 4), np.float32),
                      np.zeros((n, 1, 4, 4), bool), ("r",), np.ones(n, np.float32), np.ones((n, 1), np.float32),
                      np.zeros(n, np.float32), np.zeros(n), np.zeros(n), labels=labels)
    with pytest.raises(DataError, match=r"continuous \(20 of 20 objects labelled; 20 distinct values from 2\.8 to 5\).*bin_edges"):
        ClassificationTask(label="z").check_data(data)
    with pytest.raises(DataError, match=r"no label 'CLASS'; it has \['kind', 'ring', 'z'\]"):
        ClassificationTask(label="CLASS").check_data(data)
    with pytest.raises(DataError, match=r"at least two classes; it holds 20 of 20 objects labelled; values \{0: 20\}"):
        RetrievalTask(label="kind").check_data(data)
    with pytest.raises(DataError, match=r"at least two different values"):
        RegressionTask(label="kind").check_data(data)
    with pytest.raises(DataError, match=r"2 value\(s\) below the first bin edge 3 and 0 above the last 6"):
        ClassificationTask(label="z", bin_edges=[3, 4, 6]).check_data(data)
    with pytest.raises(ValueError, match="needs the option 'label'"):
        TASKS.get("regression")()
    ClassificationTask(label="z", bin_edges=[2, 4, 6]).check_data(data)  # ranges make it a class label
    RegressionTask(label="z").check_data(data)


def test_regression_matches_ridge_and_adds_redshift_scores_for_a_redshift():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from astrobench.datasets.schema import SurveyData
    from astrobench.tasks import metrics

    rng = np.random.default_rng(3)
    n = 300
    x = rng.normal(size=(n, 6))
    z = np.clip(1.0 + x @ np.array([0.3, -0.2, 0.1, 0.0, 0.05, 0.0]) + rng.normal(0, 0.05, n), 0.01, None)
    data = SurveyData(np.array([f"q{i}" for i in range(n)]), np.zeros((n, 1, 2, 2), np.float32),
                      np.zeros((n, 1, 2, 2), bool), ("r",), np.ones(n, np.float32), np.ones((n, 1), np.float32),
                      np.zeros(n, np.float32), np.zeros(n), np.zeros(n), labels={"specz": z, "flux": z * 2})
    inputs = _inputs(data, x)
    task = RegressionTask(label="specz")
    assert task.redshift and task.main_score == "sigma_mad"
    result = task.evaluate(inputs, protocol="linear", seed=0, label_budget=None)
    train, test = inputs.splits["train"], inputs.splits["test"]
    scaler = StandardScaler().fit(x[train])
    expected = Ridge(alpha=1.0).fit(scaler.transform(x[train]), z[train]).predict(scaler.transform(x[test]))
    np.testing.assert_allclose(result.predictions["predicted"], expected, rtol=1e-5, atol=1e-6)
    ref = metrics.redshift_metrics(expected, z[test])
    assert result.scores["sigma_mad"] == pytest.approx(ref["sigma_mad"], rel=1e-4)
    assert result.scores["r2"] > 0.9 and result.scores["mae"] == pytest.approx(np.mean(np.abs(expected - z[test])), rel=1e-4)
    plain = RegressionTask(label="flux").evaluate(inputs, protocol="knn", seed=0, label_budget=50)
    assert plain.details["n_train"] == 50 and "sigma_mad" not in plain.scores and set(plain.scores) == {"r2", "mae", "rmse"}


def test_retrieval_is_the_similarity_search_on_any_label():
    from astrobench.datasets.schema import SurveyData

    rng = np.random.default_rng(5)
    n = 120
    kind = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)) + 2.0 * np.eye(8)[kind]
    data = SurveyData(np.array([f"g{i}" for i in range(n)]), np.zeros((n, 1, 2, 2), np.float32),
                      np.zeros((n, 1, 2, 2), bool), ("r",), np.ones(n, np.float32), np.ones((n, 1), np.float32),
                      np.zeros(n, np.float32), np.zeros(n), np.zeros(n), labels={"morphology": kind, "size": kind * 1.5 + 0.1})
    inputs = _inputs(data, x)
    ours = RetrievalTask(label="morphology", ks=(1, 5)).evaluate(inputs, protocol="search", seed=0, label_budget=None)
    reference = SimilarityTask(ks=(1, 5)).evaluate(inputs, protocol="search", seed=0, label_budget=None)
    assert ours.scores == reference.scores and ours.scores["mean_average_precision"] > 0.5
    binned = RetrievalTask(label="size", ks=(1, 5), bin_edges=[0, 1, 2, 3.5]).evaluate(inputs, protocol="search", seed=0,
                                                                                       label_budget=None)
    assert binned.scores == reference.scores  # the same three classes, named by ranges


def test_generic_tasks_on_real_ring_pngs(real_file):
    folder = real_file("gz_rings_16")
    data = ImageFolderSource(str(folder), size=16).load()
    features = _colour_features(data)
    inputs = EmbeddingInputs(features.astype(np.float32), data.object_id, data.labels,
                             split_indices(data, {"train": 0.5, "test": 0.5}))
    cls = ClassificationTask(label="ring")
    cls.check_data(data)
    result = cls.evaluate(inputs, protocol="linear", seed=0, label_budget=None)
    assert result.details["classes"] == ["0", "1"] and 0 <= result.scores["balanced_accuracy"] <= 1
    assert len(result.predictions) == inputs.splits["test"].size
    fraction = "smooth-or-featured_featured-or-disk_fraction"
    reg = RegressionTask(label=fraction).evaluate(inputs, protocol="knn", seed=0, label_budget=None)
    assert not RegressionTask(label=fraction).redshift and np.isfinite(reg.scores["r2"])
    ret = RetrievalTask(label="ring", ks=(1, 3)).evaluate(inputs, protocol="search", seed=0, label_budget=None)
    assert 0 < ret.scores["mean_average_precision"] <= 1


def test_generic_tasks_on_real_quasars(real_file):
    from astrobench.datasets.hdf5 import HDF5Source

    path = real_file("sdss_quasars/sdss_quasars_ugriz64_first50.h5")
    data = HDF5Source(str(path), label_keys={"specz": "specz"}).load()
    x = np.arcsinh(data.image[:, :, 28:36, 28:36].mean(axis=(2, 3)) * 10)  # central colours
    inputs = EmbeddingInputs(x.astype(np.float32), data.object_id, data.labels, split_indices(data))
    reg = RegressionTask(label="specz").evaluate(inputs, protocol="knn", seed=0, label_budget=None)
    assert reg.details["redshift"] and 0 < reg.scores["sigma_mad"] < 2
    with pytest.raises(DataError, match="continuous"):
        ClassificationTask(label="specz").check_data(data)
    edges = [2.0, 3.5, 8.0]
    cls = ClassificationTask(label="specz", bin_edges=edges).evaluate(inputs, protocol="knn", seed=0, label_budget=None)
    assert cls.details["classes"] == ["[2, 3.5)", "[3.5, 8]"]
    ret = RetrievalTask(label="specz", bin_edges=edges, ks=(1, 5)).evaluate(inputs, protocol="search", seed=0, label_budget=None)
    assert 0 < ret.scores["precision_at_1"] <= 1
