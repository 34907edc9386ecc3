"""Probes: per-seed clones, labelled-subset draws, and the torch probe agreeing with scikit-learn."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from astrobench.datasets.schema import DataError
from astrobench.tasks import probes


def _blobs(n: int, n_classes: int, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    x = rng.normal(size=(n, dim))
    x[:, :3] += 0.8 * y[:, None]
    return x, y


def test_labelled_mask_conventions():
    assert probes.labelled_mask(np.array([0.1, np.nan, 0.0])).tolist() == [True, False, True]
    assert probes.labelled_mask(np.array([2, -1, 0])).tolist() == [True, False, True]
    assert probes.labelled_mask(np.array([True, False])).tolist() == [True, True]
    assert probes.labelled_mask(np.array([[0.1, np.nan], [0.2, 0.3]])).tolist() == [False, True]


def test_class_targets_and_binary_targets():
    assert probes.class_targets(np.array([1.0, np.nan, 0.0]), "ring").tolist() == [1, -1, 0]
    assert probes.binary_targets(np.array([True, False]), "dwarf").tolist() == [1, 0]
    with pytest.raises(DataError, match="'ring' holds non-integer"):
        probes.class_targets(np.array([0.5]), "ring")
    with pytest.raises(DataError, match="'dwarf' must be 0/1"):
        probes.binary_targets(np.array([0, 2]), "dwarf")


def test_draw_is_reproducible_and_seed_dependent():
    train = np.arange(0, 1000, 2)  # even rows are the train split
    labels = np.where(np.arange(1000) % 10 == 0, np.nan, 1.0)  # every 10th row unlabelled
    a = probes.draw_labelled_subset(train, labels, 50, seed=3)
    b = probes.draw_labelled_subset(train, labels, 50, seed=3)
    c = probes.draw_labelled_subset(train, labels, 50, seed=4)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    assert a.size == 50 and np.all(a % 2 == 0) and np.all(a % 10 != 0)
    assert np.all(np.diff(a) > 0)
    # None and an oversized budget take every labelled train row
    everything = probes.draw_labelled_subset(train, labels, None, seed=0)
    assert everything.size == 400
    assert probes.draw_labelled_subset(train, labels, 10_000, seed=0).tolist() == everything.tolist()


def test_balanced_draw_is_50_50_and_capped_by_the_rarer_class():
    labels = np.array([1] * 30 + [0] * 300 + [-1] * 20)
    train = np.arange(labels.size)
    subset = probes.draw_labelled_subset(train, labels, 40, seed=0, balanced=True)
    assert (labels[subset] == 1).sum() == 20 and (labels[subset] == 0).sum() == 20
    # 200 per class asked, 30 dwarfs exist: 30 + 30
    capped = probes.draw_labelled_subset(train, labels, 400, seed=0, balanced=True)
    assert (labels[capped] == 1).sum() == 30 and (labels[capped] == 0).sum() == 30
    with pytest.raises(DataError, match="'dwarf': only 30 training objects of class 1"):
        probes.draw_labelled_subset(train, labels, 400, seed=0, balanced=True, min_per_class=50, label_name="dwarf")
    with pytest.raises(DataError, match="single class"):
        probes.draw_labelled_subset(train[:10], np.zeros(10, int), 4, seed=0, balanced=True, label_name="dwarf")
    with pytest.raises(DataError, match="no training object has label 'dwarf'"):
        probes.draw_labelled_subset(train[:5], np.full(labels.size, -1), 4, seed=0, label_name="dwarf")


def test_fit_probe_clones_and_never_touches_the_prototype():
    x, y = _blobs(200, 3)
    prototype = probes.sklearn_linear_classifier()
    first = probes.fit_probe(prototype, x[:100], y[:100])
    second = probes.fit_probe(prototype, x[100:], y[100:])
    assert first is not prototype and second is not first
    with pytest.raises(NotFittedError):
        check_is_fitted(prototype)
    assert not np.allclose(first[-1].coef_, second[-1].coef_)
    # same data, same fit (the solver is deterministic)
    again = probes.fit_probe(prototype, x[:100], y[:100])
    assert np.array_equal(first[-1].coef_, again[-1].coef_)


def test_fit_probe_caps_knn_k_and_rejects_one_class():
    x, y = _blobs(10, 2)
    knn = probes.fit_probe(probes.knn_classifier(20), x, y)
    assert knn.n_neighbors == 10
    with pytest.raises(DataError, match="single class"):
        probes.fit_probe(probes.sklearn_linear_classifier(), x, np.zeros(10, int))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_torch_probe_agrees_with_sklearn(n_classes):
    x, y = _blobs(300, n_classes)
    x_new = np.random.default_rng(1).normal(size=(100, x.shape[1]))
    # the same objective solved tightly: scikit-learn at tol 1e-10 vs the torch probe in float64
    exact = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000)).fit(x, y)
    torch64 = probes.fit_probe(probes.TorchLinearProbe(C=0.5, dtype="float64", device="cpu", tol=1e-10), x, y)
    assert np.abs(exact.predict_proba(x_new) - torch64.predict_proba(x_new)).max() < 1e-4
    # defaults (float32 torch, scikit-learn at its default tolerance): the same predictions
    default = probes.fit_probe(probes.sklearn_linear_classifier(C=0.5), x, y)
    torch32 = probes.fit_probe(probes.TorchLinearProbe(C=0.5, device="cpu"), x, y)
    assert np.abs(default.predict_proba(x_new) - torch32.predict_proba(x_new)).max() < 5e-3
    assert np.mean(default.predict(x_new) == torch32.predict(x_new)) >= 0.98
    assert torch32.classes_.tolist() == list(range(n_classes))


def test_torch_probe_keeps_original_class_values():
    x, y = _blobs(120, 2)
    labels = np.where(y == 1, 7, 3)
    probe = probes.TorchLinearProbe(device="cpu").fit(x, labels)
    assert set(probe.predict(x).tolist()) <= {3, 7}
    assert probe.predict_proba(x).sum(axis=1) == pytest.approx(np.ones(len(x)))


def test_linear_backend_resolution():
    assert isinstance(probes.linear_classifier("torch"), probes.TorchLinearProbe)
    assert not isinstance(probes.linear_classifier("sklearn"), probes.TorchLinearProbe)
    # auto on a CPU-only machine (or few rows) is scikit-learn
    assert not isinstance(probes.linear_classifier("auto", n_train=10), probes.TorchLinearProbe)
    with pytest.raises(ValueError, match="backend"):
        probes.linear_classifier("jax")
