import json
import math

import pytest

from astrobench.benchmark.leaderboard import render


def rec(method, seed, sigma, eta, task="redshift", protocol="linear", budget=None, config_hash="h1"):
    return {
        "kind": "astrobench-result", "method": method, "config_hash": config_hash, "tag": None,
        "dataset": "synthetic", "profile": "smoke", "task": task, "protocol": protocol, "label_budget": budget,
        "seed": seed, "scores": {"sigma_mad": sigma, "eta_percent": eta}, "main_score": "sigma_mad",
        "higher_is_better": {"sigma_mad": False, "eta_percent": False},
    }


RECORDS = [rec("mae", 0, 0.02, 1.0), rec("mae", 1, 0.04, 3.0), rec("random", 0, 0.05, 0.5), rec("random", 1, 0.07, 1.5)]


def test_mean_std_and_lower_is_better_best():
    rows = json.loads(render(RECORDS, "json"))
    assert [r["method"] for r in rows] == ["mae", "random"]  # lower sigma_mad ranks first
    cell = rows[0]["scores"]["redshift · linear · sigma_mad"]
    assert cell["mean"] == pytest.approx(0.03)
    assert cell["std"] == pytest.approx(math.sqrt(((0.02 - 0.03) ** 2 + (0.04 - 0.03) ** 2) / 1))  # ddof=1
    assert cell["n"] == 2 and cell["best"] is True
    assert rows[1]["scores"]["redshift · linear · sigma_mad"]["best"] is False


def test_all_metrics_marks_best_per_column():
    md = render(RECORDS, "md", all_metrics=True)
    lines = md.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    eta_col = header.index("redshift · linear · eta_percent")
    sigma_col = header.index("redshift · linear · sigma_mad")
    mae = [c.strip() for c in lines[2].strip("|").split("|")]
    rnd = [c.strip() for c in lines[3].strip("|").split("|")]
    assert mae[sigma_col].startswith("**0.03") and not rnd[sigma_col].startswith("**")
    assert rnd[eta_col].startswith("**1") and not mae[eta_col].startswith("**")  # random has lower eta


@pytest.mark.parametrize("fmt", ["md", "csv", "latex", "html", "json"])
def test_every_format_renders_both_methods(fmt):
    text = render(RECORDS, fmt)
    assert "mae" in text and "random" in text


def test_filters_and_empty_selection():
    assert "mae" in render(RECORDS, "csv", method=["mae"]) and "random" not in render(RECORDS, "csv", method=["mae"])
    with pytest.raises(LookupError, match="no results match"):
        render(RECORDS, "csv", task=["dwarfs"])


def test_label_budgets_become_separate_columns():
    records = [rec("mae", 0, 0.02, 1.0, budget=50), rec("mae", 0, 0.01, 1.0, budget=400)]
    csv = render(records, "csv")
    assert "n=50" in csv and "n=400" in csv


def test_a_metric_without_direction_is_shown_but_never_marked_or_ranked():
    records = [rec("mae", 0, 0.02, 1.0), rec("random", 0, 0.05, 0.5)]
    for r, bias in zip(records, (0.3, -0.01)):
        r["scores"]["bias"] = bias  # signed: no better direction, absent from higher_is_better
    rows = json.loads(render(records, "json", all_metrics=True))
    assert [r["method"] for r in rows] == ["mae", "random"]  # ranked by sigma_mad / eta only: tied 1-1
    bias = {r["method"]: r["scores"]["redshift · linear · bias"] for r in rows}
    assert bias["mae"]["mean"] == 0.3 and not bias["mae"]["best"] and not bias["random"]["best"]


def test_the_same_evaluation_stored_twice_counts_once_newest_wins():
    old, new = rec("mae", 0, 0.02, 1.0), rec("mae", 0, 0.03, 1.0)
    old["created_at"], new["created_at"] = "2026-01-01T00:00:00", "2026-02-01T00:00:00"
    rows = json.loads(render([old, new, rec("mae", 1, 0.05, 1.0)], "json"))
    cell = rows[0]["scores"]["redshift · linear · sigma_mad"]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(0.04)


def test_results_on_different_data_are_never_averaged():
    a, b = rec("mae", 0, 0.02, 1.0), rec("mae", 1, 0.04, 1.0)
    a["dataset_id"], b["dataset_id"] = "hdf5-aaaa1111", "hdf5-bbbb2222"
    rows = json.loads(render([a, b], "json"))
    assert set(rows[0]["scores"]) == {"hdf5-aaaa1111 / redshift · linear · sigma_mad",
                                      "hdf5-bbbb2222 / redshift · linear · sigma_mad"}
