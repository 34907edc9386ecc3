"""Probes: labelled-subset draws, torch probes agreeing with scikit-learn, fresh fits, the registry."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astrobench.datasets.schema import DataError
from astrobench.registry import PROBES, UnknownNameError
from astrobench.tasks import probes
from astrobench.tasks.dwarfs import DwarfTask
from astrobench.tasks.linear_probe import LinearProbe
from astrobench.tasks.probes import KNNProbe, Target, fit_probe
from astrobench.tasks.similarity import SimilarityTask


def _blobs(n: int, n_classes: int, dim: int = 12, seed: int = 0, separation: float = 0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    x = rng.normal(size=(n, dim))
    x[:, :3] += separation * y[:, None]
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim) + np.eye(dim)  # correlated features
    return (x @ mixing).astype(np.float32), y


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


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


def test_every_fit_is_fresh_and_never_touches_the_probe():
    """A probe holds options only (what clone() gave with scikit-learn): fits share no state."""
    x, y = _blobs(200, 3)
    probe = LinearProbe()
    options = dict(vars(probe))
    first = fit_probe(probe, _t(x[:100]), Target.of_classes(y[:100], 3))
    second = fit_probe(probe, _t(x[100:]), Target.of_classes(y[100:], 3))
    assert vars(probe) == options
    assert not torch.allclose(first.weight, second.weight)
    # same data, same fit (the solver is deterministic)
    again = fit_probe(probe, _t(x[:100]), Target.of_classes(y[:100], 3))
    assert torch.equal(first.weight, again.weight)


def test_knn_k_is_capped_and_one_class_is_rejected():
    x, y = _blobs(10, 2)
    knn = fit_probe(KNNProbe(k=20), _t(x), Target.of_classes(y, 2))
    assert knn.info["k"] == 10
    assert knn.predict(_t(x)).probabilities.sum(axis=1) == pytest.approx(np.ones(10))
    for probe in (LinearProbe(), KNNProbe()):
        with pytest.raises(DataError, match="single class"):
            fit_probe(probe, _t(x), Target.of_classes(np.zeros(10, int), 2))
    # a binned target whose draw holds one bin cannot train a classifier over bins
    with pytest.raises(DataError, match="single class"):
        fit_probe(LinearProbe(), _t(x), Target.of_binned(np.full(10, 0.1), np.full(10, 3), 5))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_linear_probe_agrees_with_sklearn(n_classes):
    x, y = _blobs(300, n_classes)
    x_new, y_new = _blobs(1000, n_classes, seed=1)
    target = Target.of_classes(y, n_classes)
    # the same objective solved tightly: scikit-learn at tol 1e-10, the torch probe in float64 at 1e-8,
    # with and without the whitened basis (a change of variables: the same minimiser)
    exact = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000)).fit(x.astype(np.float64), y)
    reference = exact.predict_proba(x_new.astype(np.float64))
    for precondition in (True, False):
        tight = fit_probe(LinearProbe(C=0.5, dtype="float64", tol=1e-8, max_iter=10_000, precondition=precondition), _t(x), target)
        assert tight.info["converged"] and tight.info["preconditioned"] is precondition
        assert np.abs(tight.predict(_t(x_new)).probabilities - reference).max() < 1e-5
    # the defaults of both (float32 here): both stop at max |gradient| <= 1e-4, in the same flat valley
    default = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(x, y)
    fitted = fit_probe(LinearProbe(C=0.5), _t(x), target)
    ours, theirs = fitted.predict(_t(x_new)), default.predict_proba(x_new)
    assert fitted.info["converged"] and fitted.info["grad_max"] <= 1e-4
    assert np.abs(ours.probabilities - theirs).max() < 0.03
    assert np.mean(ours.predicted_classes() == theirs.argmax(1)) >= 0.99
    assert abs(np.mean(ours.predicted_classes() == y_new) - np.mean(theirs.argmax(1) == y_new)) <= 0.005
    assert ours.probabilities.shape == (1000, n_classes)


def test_many_classes_with_absent_ones_agree_with_sklearn():
    """Redshift-like: 12 classes of which the draw holds 10; absent classes get probability 0."""
    x, y = _blobs(600, 10, dim=24, seed=2, separation=0.5)
    x_new, y_new = _blobs(1000, 10, dim=24, seed=3, separation=0.5)
    shifted = np.where(y >= 5, y + 2, y)  # classes 5 and 6 never occur
    default = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, shifted)
    theirs = np.zeros((1000, 12))
    theirs[:, default[-1].classes_] = default.predict_proba(x_new)
    ours = fit_probe(LinearProbe(), _t(x), Target.of_classes(shifted, 12)).predict(_t(x_new))
    assert np.all(ours.probabilities[:, [5, 6]] == 0.0)
    assert ours.probabilities.sum(axis=1) == pytest.approx(np.ones(1000))
    assert np.abs(ours.probabilities - theirs).max() < 0.03
    assert np.mean(ours.predicted_classes() == theirs.argmax(1)) >= 0.99
    truth = np.where(y_new >= 5, y_new + 2, y_new)
    assert abs(np.mean(ours.predicted_classes() == truth) - np.mean(theirs.argmax(1) == truth)) <= 0.005


def test_ridge_for_values_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10)) * np.arange(1, 11)
    x[:, 9] = 3.0  # a constant feature: scale 1, as StandardScaler
    y = x[:, 0] - 0.02 * x[:, 3] + rng.normal(0, 0.5, 400)
    expected = make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(x, y).predict(x[:50])
    fitted = fit_probe(LinearProbe(ridge_alpha=2.0), torch.as_tensor(x), Target.of_values(y))
    assert fitted.predict(torch.as_tensor(x[:50])).values == pytest.approx(expected, abs=1e-6)


def test_knn_agrees_with_sklearn():
    x, y = _blobs(300, 3, seed=4)
    x_new, _ = _blobs(200, 3, seed=5)
    z = np.random.default_rng(6).uniform(0, 0.4, 300)
    classifier = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute").fit(x, y)
    ours = fit_probe(KNNProbe(k=7, chunk_size=64), _t(x), Target.of_classes(y, 3)).predict(_t(x_new))
    assert ours.probabilities == pytest.approx(classifier.predict_proba(x_new))
    assert np.array_equal(ours.predicted_classes(), classifier.predict(x_new))
    regressor = KNeighborsRegressor(n_neighbors=7, metric="cosine", algorithm="brute").fit(x, z)
    for target in (Target.of_values(z), Target.of_binned(z, np.minimum((z / 0.1).astype(int), 3), 4)):
        values = fit_probe(KNNProbe(k=7), _t(x), target).predict(_t(x_new)).values
        assert values == pytest.approx(regressor.predict(x_new), abs=1e-12)


def test_binary_probabilities_keep_the_class_order():
    x, y = _blobs(120, 2)
    prediction = fit_probe(LinearProbe(), _t(x), Target.of_classes(y, 2)).predict(_t(x))
    assert prediction.probabilities.shape == (120, 2)
    assert prediction.probabilities.sum(axis=1) == pytest.approx(np.ones(120))
    assert np.mean(prediction.predicted_classes() == y) > 0.7  # class 1 sits at larger x[:, :3]


def test_targets_are_checked():
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        Target.of_classes(np.array([0, 3]), 3)
    with pytest.raises(DataError, match="finite"):
        Target.of_values(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="2 targets"):
        fit_probe(LinearProbe(), _t(np.zeros((3, 2))), Target.of_classes(np.array([0, 1]), 2))
    with pytest.raises(ValueError, match="C must be > 0"):
        LinearProbe(C=0)


def test_registered_protocols_and_the_one_place_that_decides():
    assert PROBES.get("linear") is LinearProbe and PROBES.get("knn") is KNNProbe
    assert probes.needs_model("finetune") and not probes.needs_model("linear") and not probes.needs_model("search")
    task = DwarfTask()
    assert {"linear", "knn", "finetune"} <= set(task.protocols)
    assert SimilarityTask().protocols == ("search",)  # a task without probes keeps its own tuple
    assert task.probe("knn").k == task.knn_k
    assert DwarfTask(C=0.25).probe("linear").C == 0.25
    assert DwarfTask(probe_options={"linear": {"max_iter": 7}}).probe("linear").max_iter == 7
    with pytest.raises(ValueError, match="probe 'linear' has no option 'hidden'"):
        DwarfTask(probe_options={"linear": {"hidden": 3}}).probe("linear")
    with pytest.raises(ValueError, match="runs through finetune"):
        task.probe("finetune")
    with pytest.raises(ValueError, match="no protocol 'ridge' .no such protocol is registered."):
        task.check_protocol("ridge")
    with pytest.raises(UnknownNameError, match="Did you mean 'linear'"):
        probes.make_probe("lineer")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_probes_on_cuda_match_the_cpu():
    x, y = _blobs(500, 5, dim=32)
    target = Target.of_classes(y, 5)
    probe = LinearProbe(dtype="float64", tol=1e-8, max_iter=10_000)
    cpu = fit_probe(probe, _t(x), target).predict(_t(x)).probabilities
    gpu = fit_probe(probe, _t(x).cuda(), target).predict(_t(x).cuda()).probabilities
    assert np.abs(cpu - gpu).max() < 1e-5
    knn_cpu = fit_probe(KNNProbe(), _t(x), target).predict(_t(x)).probabilities
    assert np.array_equal(knn_cpu, fit_probe(KNNProbe(), _t(x).cuda(), target).predict(_t(x).cuda()).probabilities)
