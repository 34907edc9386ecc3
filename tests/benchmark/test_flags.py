"""Result flags: constant predictions and a pretraining loss that did not fall."""

import json

import numpy as np
import pandas as pd

from astrobench.benchmark.flags import (
    CONSTANT_PREDICTIONS,
    LOSS_NOT_DECREASING,
    constant_predictions,
    loss_not_decreasing,
    prediction_targets,
    result_flags,
)


def _redshift_frame(z_phot, z_spec):
    return pd.DataFrame({"object_id": [f"o{i}" for i in range(len(z_spec))], "z_spec": z_spec, "z_phot": z_phot})


Z = np.random.default_rng(0).uniform(0.0, 0.4, 1000)  # central 80% range 0.32


def test_regression_flag_is_the_spread_of_predictions_against_the_truths():
    mean = Z.mean()
    assert result_flags(_redshift_frame(np.full(Z.size, 0.12), Z)) == [CONSTANT_PREDICTIONS]
    # shrunk towards the mean: 25% of the truth's spread is flagged, 35% is not (threshold 30%)
    assert constant_predictions(_redshift_frame(mean + 0.25 * (Z - mean), Z))
    assert not constant_predictions(_redshift_frame(mean + 0.35 * (Z - mean), Z))
    assert result_flags(_redshift_frame(Z + 0.01, Z)) == []
    # 5% wild predictions do not hide a collapse (their std would: 0.1 of a 0.115 truth std)
    wild = np.full(Z.size, 0.12)
    wild[::20] = np.random.default_rng(1).uniform(0, 0.4, wild[::20].size)
    assert np.std(wild) > 0.25 * np.std(Z)
    assert constant_predictions(_redshift_frame(wild, Z))
    # missing truths are ignored; a truth without spread says nothing
    truth = Z.copy()
    truth[:500] = np.nan
    assert constant_predictions(_redshift_frame(np.where(np.isnan(truth), Z, 0.12), truth))
    assert not constant_predictions(_redshift_frame(np.full(Z.size, 0.1), np.full(Z.size, 0.1)))


def _dwarf_frame(predicted, label):
    return pd.DataFrame({"object_id": np.arange(len(label)).astype(str), "repeat": 0, "label": label,
                         "predicted": predicted, "probability": 0.3})


def test_classification_flag_is_one_class_for_99_percent_of_labelled_rows():
    label = (np.arange(1000) % 100 < 16).astype(int)  # 16% dwarfs
    assert constant_predictions(_dwarf_frame(np.zeros(1000, int), label))
    predicted = np.zeros(1000, int)
    predicted[:5] = 1  # 99.5% one class
    assert constant_predictions(_dwarf_frame(predicted, label))
    predicted[:20] = 1  # 98%
    assert not constant_predictions(_dwarf_frame(predicted, label))
    # unlabelled rows (-1) do not count: the varied predictions there change nothing
    label_missing = label.copy()
    label_missing[:300] = -1
    varied = np.where(np.arange(1000) < 300, np.arange(1000) % 2, 0)
    assert constant_predictions(_dwarf_frame(varied, label_missing))
    # a truth that is itself one class for >= 99% of objects: a constant answer is right, no flag
    rare = np.zeros(1000, int)
    rare[:5] = 1
    assert not constant_predictions(_dwarf_frame(np.zeros(1000, int), rare))


def test_each_label_draw_is_judged_on_its_own():
    # a kNN on identical embeddings: one class per draw, a different one in different draws
    label = np.tile((np.arange(500) % 100 < 16).astype(int), 2)
    repeat = np.repeat([0, 1], 500)
    frame = _dwarf_frame(np.repeat([0, 1], 500), label).assign(repeat=repeat)
    assert constant_predictions(frame)
    assert not constant_predictions(frame.drop(columns="repeat"))  # pooled, half and half
    # one draw whose predictions vary: the probe is not constant
    varied = np.where(repeat == 1, np.arange(1000) % 2, 0)
    assert not constant_predictions(_dwarf_frame(varied, label).assign(repeat=repeat))


def test_a_result_is_flagged_only_when_every_target_is_constant():
    rng = np.random.default_rng(2)
    featured = rng.integers(0, 2, 500)
    edge_on = (rng.uniform(size=500) < 0.1).astype(int)
    frame = pd.DataFrame({
        "object_id": np.arange(500).astype(str),
        "label_smooth_or_featured": featured, "predicted_smooth_or_featured": featured,
        "label_edge_on": edge_on, "predicted_edge_on": np.zeros(500, int),  # honest "no" on a rare class
        "gz_featured": rng.uniform(size=500), "gz_featured_predicted": rng.uniform(size=500),
    })
    assert prediction_targets(frame.columns) == [
        ("class", "label_smooth_or_featured", "predicted_smooth_or_featured"),
        ("class", "label_edge_on", "predicted_edge_on"),
        ("value", "gz_featured", "gz_featured_predicted"),
    ]
    assert not constant_predictions(frame)
    frame["predicted_smooth_or_featured"] = 1
    assert not constant_predictions(frame)  # the vote fraction still varies
    frame["gz_featured_predicted"] = 0.5
    assert constant_predictions(frame)
    # no recognised target (similarity search rows): never flagged
    search = pd.DataFrame({"object_id": ["a", "b"], "label": [0, 1], "average_precision": [0.2, 0.2]})
    assert prediction_targets(search.columns) == [] and result_flags(search, None) == []


def _curve(values):
    return [(step, float(v)) for step, v in enumerate(values)]


def test_loss_flag_on_falling_flat_plateaued_and_rising_curves():
    rng = np.random.default_rng(3)
    t = np.arange(200)
    falling = 2.0 - t / 200 + rng.normal(0, 0.3, t.size)  # noisy (noise 0.3 on a fall of 1) but falling
    assert not loss_not_decreasing(_curve(falling))
    assert result_flags(None, _curve(falling)) == []
    flat = 1.0 + rng.normal(0, 0.3, t.size)
    assert loss_not_decreasing(_curve(flat))
    assert result_flags(None, _curve(flat)) == [LOSS_NOT_DECREASING]
    assert loss_not_decreasing(_curve(np.full(50, 2.0)))
    # the noise margin: the same fall drowned in noise of 3 is not evidence of a fall
    assert loss_not_decreasing(_curve(2.0 - t / 200 + rng.normal(0, 3.0, t.size)))
    # MAE at quick: from 1.56 to the trivial 0.99 in the first fifth, then flat
    plateau = 0.99 + 0.57 * np.exp(-np.arange(150) / 8.0) + rng.normal(0, 0.003, 150)
    assert loss_not_decreasing(_curve(plateau))
    # the same early fall continued down to 0.6 over the rest of training is learning
    learning = plateau - 0.4 * np.arange(150) / 150
    assert not loss_not_decreasing(_curve(learning))
    # ends above where it began (a contrastive loss whose queue fills with harder negatives)
    rising = np.concatenate([np.linspace(5.2, 7.2, 50), np.linspace(7.2, 6.9, 150)]) + rng.normal(0, 0.05, 200)
    assert loss_not_decreasing(_curve(rising))


def test_loss_flag_is_invariant_to_units_sign_and_order_and_skips_short_curves():
    rng = np.random.default_rng(4)
    values = 3.0 * np.exp(-np.arange(100) / 40.0) + rng.normal(0, 0.05, 100)
    plateau = 0.99 + 0.57 * np.exp(-np.arange(100) / 6.0) + rng.normal(0, 0.003, 100)
    for curve, expected in ((values, False), (plateau, True)):
        for transformed in (curve, 1000 * curve, curve - 10.0):
            assert loss_not_decreasing(_curve(transformed)) is expected
        shuffled = _curve(curve)
        rng.shuffle(shuffled)  # sorted by step before judging
        assert loss_not_decreasing(shuffled) is expected
    # fewer than 10 points (a smoke run): too short to judge, never flagged
    assert not loss_not_decreasing(_curve(np.full(9, 1.0)))
    # non-finite points are dropped, then the rest judged
    with_nan = _curve(values)
    with_nan[50] = (50, float("nan"))
    assert not loss_not_decreasing(with_nan)
    # a list of lists, as a result JSON stores it
    assert loss_not_decreasing(json.loads(json.dumps(_curve(np.full(30, 1.0)))))


def test_runner_stores_flags_in_every_result(tmp_path):
    """Smoke dwarfs, linear probe: the constant baseline predicts "not a dwarf" for everybody
    (flagged); the random encoder's balanced probe predicts both classes (not flagged); neither has
    a loss curve. MAE pretrains 12 steps: its record carries the flags of its own loss curve."""
    from astrobench.benchmark.config import RunConfig
    from astrobench.benchmark.runner import Runner

    config = RunConfig(methods=["constant", "random", "mae"], tasks=["dwarfs"], profile="smoke", protocols=["linear"],
                       results_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"), device="cpu",
                       train_overrides={"steps": 12})
    summary = Runner(config).run()
    records = {}
    for path in summary.written:
        record = json.loads(path.read_text())
        records[record["method"]] = (record, pd.read_parquet(path.parent / record["predictions_file"]))
    assert records["constant"][0]["flags"] == [CONSTANT_PREDICTIONS]
    assert records["random"][0]["flags"] == []
    mae, predictions = records["mae"]
    curve = mae["pretrain"]["loss_curve"]
    assert len(curve) == 12
    assert mae["flags"] == result_flags(predictions, curve)
