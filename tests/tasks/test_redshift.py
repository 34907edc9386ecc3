"""The redshift task: binning, the linear (binned PDF) and kNN protocols, configurable ranges."""

import json

import numpy as np
import pytest

from astrobench.datasets.schema import DataError
from astrobench.registry import TASKS
from astrobench.tasks.base import EmbeddingInputs
from astrobench.tasks.redshift import RedshiftTask


def _inputs(n: int = 800, z_low: float = 0.01, z_high: float = 0.39, seed: int = 0, noise: float = 0.02) -> EmbeddingInputs:
    rng = np.random.default_rng(seed)
    z = rng.uniform(z_low, z_high, n).astype(np.float32)
    t = (z - z_low) / (z_high - z_low)  # 0..1
    # a smooth nonlinear code of z plus noise dimensions: a linear classifier over bins can read it
    x = np.concatenate([np.stack([np.cos(np.pi * t), np.sin(np.pi * t), t], 1) + noise * rng.normal(size=(n, 3)),
                        0.1 * rng.normal(size=(n, 5))], axis=1).astype(np.float32)
    z[:10] = np.nan  # a few unlabelled objects
    order = rng.permutation(n)
    return EmbeddingInputs(x, np.array([f"g{i}" for i in range(n)]), {"redshift": z},
                           {"train": order[: n // 2], "val": order[n // 2 : 5 * n // 8], "test": order[5 * n // 8 :]})


def test_bins_by_hand():
    task = RedshiftTask()  # 180 bins of width 0.4 / 180 = 0.0022222 over [0, 0.4)
    z = np.array([0.0, 0.4 / 180, 0.0033, 0.39999, 0.4, 0.55, np.nan])
    # 0 -> bin 0; the first inner edge -> bin 1; 0.0033 / 0.0022222 = 1.485 -> 1; just below 0.4 -> 179;
    # at and above z_max -> the last bin 179; NaN -> -1 (missing)
    assert task.to_bins(z).tolist() == [0, 1, 1, 179, 179, 179, -1]
    assert task.bin_centres[0] == pytest.approx(0.4 / 360)
    assert len(task.bin_edges) == 181
    with pytest.raises(DataError, match="below z_min=0.0"):
        task.to_bins(np.array([-0.01, 0.1]))
    targets, n = task.supervised_targets({"redshift": z})
    assert n == 180 and targets[-1] == -1


def test_linear_protocol_scores_pdf_and_predictions():
    assert TASKS.get("redshift") is RedshiftTask
    task = RedshiftTask(n_bins=40)
    result = task.evaluate(_inputs(), protocol="linear", seed=0, label_budget=None)
    assert set(result.scores) == {"sigma_mad", "eta_percent", "bias", "abs_bias", "crps"}
    assert set(result.scores) - {"bias"} == set(task.higher_is_better)
    assert result.scores["sigma_mad"] < 0.03
    assert result.scores["abs_bias"] == pytest.approx(abs(result.scores["bias"]))
    frame = result.predictions
    assert list(frame.columns) == ["object_id", "z_spec", "z_phot", "crps", "pit"]
    assert frame["z_spec"].notna().all()  # unlabelled objects are not scored
    assert frame["z_phot"].between(0.0, 0.4).all()
    assert sum(result.details["pit_histogram"]) == len(frame)
    json.dumps(result.scores), json.dumps(result.details), json.dumps(task.params())


def test_knn_protocol_is_mean_of_neighbour_redshifts():
    # 1-D embeddings on a circle: the cosine neighbours of a test object are known
    angles = np.linspace(0, np.pi / 2, 12)
    x = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    z = np.linspace(0.05, 0.27, 12).astype(np.float32)
    train, test = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11]), np.array([4])
    inputs = EmbeddingInputs(x, np.array([str(i) for i in range(12)]), {"redshift": z},
                             {"train": train, "val": np.array([], int), "test": test})
    result = RedshiftTask(knn_k=2).evaluate(inputs, protocol="knn", seed=0, label_budget=None)
    # the two nearest train objects of row 4 are rows 3 and 5: z_phot = (z3 + z5) / 2 = z4 (even spacing)
    assert result.predictions["z_phot"].iloc[0] == pytest.approx((z[3] + z[5]) / 2, abs=1e-6)
    assert "crps" not in result.scores  # no PDF from kNN regression


def test_configurable_range_for_quasars():
    task = RedshiftTask(n_bins=50, z_min=2.5, z_max=7.5)
    result = task.evaluate(_inputs(z_low=2.75, z_high=7.1), protocol="linear", seed=0, label_budget=None)
    assert result.predictions["z_phot"].between(2.5, 7.5).all()
    assert result.scores["sigma_mad"] < 0.1
    with pytest.raises(DataError, match="below z_min=0.0"):
        RedshiftTask().evaluate(_inputs(z_low=-0.2), protocol="knn", seed=0, label_budget=None)


def test_seeds_and_label_budgets():
    task = RedshiftTask(n_bins=30)
    data = _inputs()
    a = task.evaluate(data, protocol="linear", seed=0, label_budget=100)
    b = task.evaluate(data, protocol="linear", seed=0, label_budget=100)
    c = task.evaluate(data, protocol="linear", seed=1, label_budget=100)
    assert a.scores == b.scores
    assert a.scores != c.scores
    assert a.details["n_train"] == 100
    # bins absent from a small training draw get zero probability, the rest still sums to one
    assert a.details["n_bins_in_train"] <= 30
    full = task.evaluate(data, protocol="linear", seed=0, label_budget=None)
    assert full.details["n_train"] == int(np.isfinite(data.labels["redshift"][data.splits["train"]]).sum())


def test_missing_label_is_named():
    data = _inputs()
    with pytest.raises(DataError, match="label 'redshift'"):
        RedshiftTask().evaluate(EmbeddingInputs(data.embeddings, data.object_id, {"dwarf": np.ones(800, bool)}, data.splits),
                                protocol="linear", seed=0, label_budget=None)
    with pytest.raises(ValueError, match="z_max"):
        RedshiftTask(z_min=0.5, z_max=0.4)


def test_real_sdss_quasars_with_a_configured_range(real_data):
    h5py = pytest.importorskip("h5py")
    with h5py.File(real_data / "sdss_quasars" / "sdss_quasars_ugriz64.h5") as f:
        z = f["specz"][:].astype(np.float32)
        mags = np.stack([f[f"mag_{b}"][:] for b in "ugriz"], 1).astype(np.float32)
    colours = np.diff(mags, axis=1)  # u-g, g-r, r-i, i-z: the classic photometric-redshift features
    n = len(z)
    inputs = EmbeddingInputs(colours, np.arange(n).astype(str), {"redshift": z},
                             {"train": np.arange(0, 200), "val": np.arange(200, 220), "test": np.arange(220, n)})
    task = RedshiftTask(n_bins=60, z_min=2.5, z_max=7.5)
    # high-redshift quasars drop out of the blue bands: missing magnitudes are a clear error, not a crash
    with pytest.raises(ValueError, match="embeddings hold NaN"):
        task.evaluate(inputs, protocol="linear", seed=0, label_budget=None)
    inputs.embeddings = np.nan_to_num(colours, nan=0.0)
    for protocol in ("linear", "knn"):
        result = task.evaluate(inputs, protocol=protocol, seed=0, label_budget=None)
        assert result.predictions["z_phot"].between(2.5, 7.5).all()
        assert np.isfinite(list(result.scores.values())).all()


def test_training_rows_default_draws_the_budget_from_labelled_training_objects():
    from astrobench.tasks.redshift import RedshiftTask

    rng = np.random.default_rng(0)
    z = rng.uniform(0.01, 0.39, 300).astype(np.float32)
    z[:30] = np.nan  # unlabelled
    splits = {"train": np.arange(200), "val": np.arange(200, 250), "test": np.arange(250, 300)}
    task = RedshiftTask()
    rows = task.training_rows({"redshift": z}, splits, seed=0, label_budget=50)
    assert len(rows) == 50 and np.isfinite(z[rows]).all() and rows.max() < 200
    everything = task.training_rows({"redshift": z}, splits, seed=0, label_budget=None)
    assert len(everything) == 170
