"""Metric functions against worked examples computed by hand (the hand computation is in each comment)."""

import numpy as np
import pytest

from astrobench.tasks import metrics


# -- redshift -----------------------------------------------------------------------------------


def test_redshift_metrics_odd_count_worked_example():
    z_spec = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    z_phot = np.array([0.01, -0.02, 0.0, 0.1, 1.2])
    # Δz = [0.01, -0.02, 0.0, 0.1, 0.2 / 2 = 0.1]; median(Δz) = 0.01
    # |Δz - 0.01| = [0, 0.03, 0.01, 0.09, 0.09] -> median 0.03 -> σ_MAD = 1.4826 * 0.03 = 0.044478
    # |Δz| > 0.05: 0.1 and 0.1 -> 2 of 5 = 40 %; bias = (0.01 - 0.02 + 0 + 0.1 + 0.1) / 5 = 0.038
    out = metrics.redshift_metrics(z_phot, z_spec)
    assert out["sigma_mad"] == pytest.approx(0.044478, abs=1e-9)
    assert out["eta_percent"] == pytest.approx(40.0)
    assert out["bias"] == pytest.approx(0.038)
    assert metrics.delta_z(z_phot, z_spec)[-1] == pytest.approx(0.1)


def test_redshift_metrics_even_count_and_strict_outlier_threshold():
    z_spec = np.zeros(4)
    z_phot = np.array([0.0, 0.02, 0.04, 0.1])
    # Δz = z_phot; median = (0.02 + 0.04) / 2 = 0.03; |Δz - 0.03| = [0.03, 0.01, 0.01, 0.07]
    # -> median (0.01 + 0.03) / 2 = 0.02 -> σ_MAD = 0.029652; η = 1 of 4 = 25 %; bias = 0.16 / 4 = 0.04
    out = metrics.redshift_metrics(z_phot, z_spec)
    assert out == pytest.approx({"sigma_mad": 0.029652, "eta_percent": 25.0, "bias": 0.04})
    # |Δz| = 0.05 exactly is not an outlier (strictly greater); 0.0501 is
    edge = metrics.redshift_metrics(np.array([0.05, 0.0501, -0.05]), np.zeros(3))
    assert edge["eta_percent"] == pytest.approx(100.0 / 3.0)
    # a custom threshold
    assert metrics.redshift_metrics(z_phot, z_spec, outlier_threshold=0.03)["eta_percent"] == pytest.approx(50.0)


def test_redshift_metrics_perfect_and_constant_offset():
    z = np.array([0.1, 0.2, 0.3])
    assert metrics.redshift_metrics(z, z) == {"sigma_mad": 0.0, "eta_percent": 0.0, "bias": 0.0}
    # z_phot = z_spec + 0.01 (1 + z_spec): Δz = 0.01 for all -> σ_MAD 0, bias 0.01
    out = metrics.redshift_metrics(z + 0.01 * (1 + z), z)
    assert out["sigma_mad"] == pytest.approx(0.0, abs=1e-12)
    assert out["bias"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "z_phot, z_spec, message",
    [
        (np.array([]), np.array([]), "empty"),
        (np.array([0.1, 0.2]), np.array([0.1]), "z_spec has 1"),
        (np.array([np.nan]), np.array([0.1]), "non-finite"),
        (np.array([0.1]), np.array([-1.0]), "> -1"),
    ],
)
def test_redshift_metrics_bad_input(z_phot, z_spec, message):
    with pytest.raises(ValueError, match=message):
        metrics.redshift_metrics(z_phot, z_spec)


def test_crps_of_uniform_pdf_by_hand():
    # one bin [0, 1] holding all the probability: F(z) = z on [0, 1]
    # CRPS(y = 0.5) = ∫0^0.5 z² dz + ∫0.5^1 (1 - z)² dz = 1/24 + 1/24 = 1/12
    p, edges = np.array([[1.0]]), np.array([0.0, 1.0])
    assert metrics.crps_binned(p, edges, np.array([0.5]))[0] == pytest.approx(1 / 12)
    # truth below the edges, y = -1: ∫-1^0 (0 - 1)² dz + ∫0^1 (z - 1)² dz = 1 + 1/3
    assert metrics.crps_binned(p, edges, np.array([-1.0]))[0] == pytest.approx(4 / 3)
    # truth above, y = 3: ∫0^1 z² dz + ∫1^3 (1 - 0)² dz = 1/3 + 2
    assert metrics.crps_binned(p, edges, np.array([3.0]))[0] == pytest.approx(7 / 3)


def test_crps_two_bins_by_hand():
    edges = np.array([0.0, 1.0, 2.0])
    # p = [1, 0], y = 1.5: F = z on [0, 1], 1 on [1, 2]; ∫0^1 z² + ∫1^1.5 1² + ∫1.5^2 0 = 1/3 + 1/2
    # p = [.5, .5], y = 1: F = z/2; ∫0^1 (z/2)² + ∫1^2 (z/2 - 1)² = 1/12 + 1/12 = 1/6
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert metrics.crps_binned(p, edges, np.array([1.5, 1.0])) == pytest.approx([5 / 6, 1 / 6])


def test_crps_narrow_bin_approaches_point_mass():
    # all mass in [0.5, 0.5001], y = 0.8: ∫ over the bin of F² = 0.0001 / 3, then ∫0.5001^0.8 1 = 0.2999
    edges = np.array([0.0, 0.5, 0.5001, 1.0])
    out = metrics.crps_binned(np.array([[0.0, 1.0, 0.0]]), edges, np.array([0.8]))
    assert out[0] == pytest.approx(0.2999 + 0.0001 / 3, rel=1e-9)


def test_pit_values_by_hand():
    edges = np.array([0.0, 1.0, 2.0])
    p = np.array([[0.5, 0.5]] * 4)
    # F(z) = z / 2 inside [0, 2]; 0 below, 1 above
    assert metrics.pit_values(p, edges, np.array([1.5, 0.25, -1.0, 5.0])) == pytest.approx([0.75, 0.125, 0.0, 1.0])


def test_binned_pdf_input_checks():
    edges = np.array([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="sum to 1"):
        metrics.crps_binned(np.array([[0.5, 0.2]]), edges, np.array([1.0]))
    with pytest.raises(ValueError, match="shape"):
        metrics.crps_binned(np.array([[1.0]]), edges, np.array([1.0]))
    with pytest.raises(ValueError, match="increasing"):
        metrics.pit_values(np.array([[0.5, 0.5]]), np.array([0.0, 1.0, 1.0]), np.array([1.0]))


# -- retrieval ----------------------------------------------------------------------------------

RANKING = np.array(
    [
        [1, 0, 1, 0, 0],  # query A: relevant at ranks 1 and 3
        [0, 0, 0, 1, 1],  # query B: relevant at ranks 4 and 5
    ],
    dtype=bool,
)


def test_precision_at_k_on_known_ranking():
    # P@1: A 1/1, B 0/1 -> 0.5; P@3: A 2/3, B 0 -> 1/3; P@5: A 2/5, B 2/5 -> 0.4
    assert metrics.precision_at_k(RANKING, 1) == pytest.approx(0.5)
    assert metrics.precision_at_k(RANKING, 3) == pytest.approx(1 / 3)
    assert metrics.precision_at_k(RANKING, 5) == pytest.approx(0.4)
    assert metrics.precision_at_k_per_query(RANKING, 3) == pytest.approx([2 / 3, 0.0])


def test_average_precision_on_known_ranking():
    # A: (P@1 + P@3) / 2 = (1 + 2/3) / 2 = 5/6; B: (P@4 + P@5) / 2 = (1/4 + 2/5) / 2 = 0.325
    assert metrics.average_precision(RANKING) == pytest.approx([5 / 6, 0.325])
    assert metrics.mean_average_precision(RANKING) == pytest.approx((5 / 6 + 0.325) / 2)
    # every item relevant -> AP 1; a single relevant item at rank r -> AP 1/r
    assert metrics.mean_average_precision(np.ones((3, 4), bool)) == 1.0
    assert metrics.average_precision(np.array([[0, 0, 0, 1]])) == pytest.approx([0.25])


def test_retrieval_edge_cases():
    with pytest.raises(ValueError, match="no queries"):
        metrics.mean_average_precision(np.zeros((0, 5), bool))
    with pytest.raises(ValueError, match="no queries"):
        metrics.precision_at_k(np.zeros((0, 5), bool), 1)
    with pytest.raises(ValueError, match="no relevant item"):
        metrics.average_precision(np.array([[1, 0], [0, 0]], bool))
    with pytest.raises(ValueError, match="k=6"):
        metrics.precision_at_k(RANKING, 6)
    with pytest.raises(ValueError, match="k=0"):
        metrics.precision_at_k(RANKING, 0)
    # 0/1 integers are accepted as relevance
    assert metrics.precision_at_k(RANKING.astype(int), 1) == pytest.approx(0.5)


# -- classification and regression ---------------------------------------------------------------


def test_binary_classification_by_hand():
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])
    predicted = (score > 0.5).astype(int)  # [0, 0, 0, 1]
    # accuracy 3/4; AUC: positive-negative pairs ranked right: 0.35>0.1, 0.8>0.1, 0.8>0.4 (0.35<0.4) -> 3/4
    # F1 of class 1: TP 1, FP 0, FN 1 -> precision 1, recall 1/2 -> F1 2/3
    # balanced accuracy: recall of class 0 2/2, of class 1 1/2 -> 3/4
    assert metrics.binary_classification_metrics(y, predicted, score) == pytest.approx(
        {"accuracy": 0.75, "balanced_accuracy": 0.75, "roc_auc": 0.75, "f1": 2 / 3}
    )
    # answering the majority class everywhere: accuracy is the majority's share, balanced accuracy 1/2
    y = np.array([0, 0, 0, 1])
    chance = metrics.binary_classification_metrics(y, np.zeros(4, int), np.full(4, 0.5))
    assert chance["accuracy"] == 0.75 and chance["balanced_accuracy"] == 0.5
    # tied scores count a half in the AUC: all scores equal -> 0.5
    assert metrics.binary_classification_metrics(y, predicted, np.full(4, 0.3))["roc_auc"] == 0.5


def test_binary_classification_one_class_is_an_error():
    with pytest.raises(ValueError, match="only class 1"):
        metrics.binary_classification_metrics(np.ones(3), np.ones(3), np.ones(3))


def test_multiclass_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    # accuracy 4/6; F1: class 0 P 1/2 R 1/2 -> 1/2; class 1 P 2/3 R 1 -> 0.8; class 2 P 1 R 1/2 -> 2/3
    out = metrics.multiclass_metrics(y, predicted)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_regression_by_hand():
    # residuals [0, 0, 0, -2]: SS_res 4; mean 1.5, SS_tot 2.25 + 0.25 + 0.25 + 2.25 = 5 -> R² 0.2; RMSE sqrt(4/4) = 1
    out = metrics.regression_metrics(np.array([0.0, 1, 2, 3]), np.array([0.0, 1, 2, 5]))
    assert out == pytest.approx({"r2": 0.2, "rmse": 1.0})
    with pytest.raises(ValueError, match="same"):
        metrics.regression_metrics(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="no objects"):
        metrics.regression_metrics(np.array([]), np.array([]))


def test_classification_metrics_match_scikit_learn():
    """The NumPy implementations compute scikit-learn's definitions (ties, missing classes included)."""
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 300))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        score = np.round(rng.random(n), 1)  # coarse scores: many ties
        predicted = rng.integers(0, 2, n) if trial % 3 else np.zeros(n, int)  # some never predict class 1
        ours = metrics.binary_classification_metrics(y, predicted, score)
        assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-15)
        assert ours["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted), abs=1e-15)
        assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
        assert ours["f1"] == pytest.approx(skm.f1_score(y, predicted, zero_division=0.0), abs=1e-15)
        truth, guess = rng.integers(0, 4, n), rng.integers(1, 5, n)  # class 0 never predicted, 4 never true
        assert metrics.multiclass_metrics(truth, guess)["macro_f1"] == pytest.approx(
            skm.f1_score(truth, guess, average="macro", zero_division=0.0), abs=1e-15)
        labels = np.array([0, 1, 2, 7])  # a label absent from both, and classes 3, 4 left out
        assert metrics.multiclass_metrics(truth, guess, labels)["macro_f1"] == pytest.approx(
            skm.f1_score(truth, guess, labels=labels, average="macro", zero_division=0.0), abs=1e-15)
