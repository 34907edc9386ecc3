"""`astrobench compare`: paired per-seed differences between two leaderboard rows, checked by hand."""

import json
import math

import pytest
from rich.console import Console

from astrobench.benchmark.compare import (
    NothingToCompare, SelectionError, compare, paired_test, render_comparison,
)
from astrobench.benchmark.store import result_path, write_result
from astrobench.testing import run_cli


def store(root, method, seed, score, *, task="redshift", metric="sigma_mad", higher=False, config_hash="c1",
          tag=None, boot=None, flags=None, protocol="linear"):
    record = {
        "kind": "astrobench-result", "method": method, "config_hash": config_hash, "tag": tag,
        "dataset": "synthetic", "dataset_id": "synthetic-abcd1234", "profile": "smoke", "task": task,
        "protocol": protocol, "label_budget": None, "seed": seed, "scores": {metric: score, "other": 1.0},
        "main_score": metric, "higher_is_better": {metric: higher, "other": True},
        "created_at": "2026-12-01T00:00:00+0000",
    }
    if boot is not None:
        record["bootstrap_std"] = {metric: boot}
    if flags is not None:
        record["flags"] = flags
    path = result_path(root, dataset="synthetic", profile="smoke", task=task, method=method, config_hash=config_hash,
                       protocol=protocol, label_budget=None, seed=seed, tag=tag)
    write_result(path, record, None)


# redshift σ_MAD (lower is better): Δ = B − A = -0.010, -0.003, -0.009
REDSHIFT = {"mae": (0.060, 0.055, 0.058), "simclr": (0.050, 0.052, 0.049)}
# dwarf accuracy (higher is better): Δ = +0.05, +0.04, +0.06
DWARFS = {"mae": (0.70, 0.72, 0.71), "simclr": (0.75, 0.76, 0.77)}


def t_test_two_sided_df2(deltas):
    """The paired t-test by hand: t = mean / (std / √n); with n = 3 (2 degrees of freedom) the
    Student-t CDF has a closed form, so p = 1 − |t| / sqrt(t² + 2)."""
    n = len(deltas)
    mean = sum(deltas) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in deltas) / (n - 1))
    t = mean / (std / math.sqrt(n))
    return mean, std, 1 - abs(t) / math.sqrt(t * t + 2)


@pytest.fixture()
def results(tmp_path):
    for method in ("mae", "simclr"):
        for seed in range(3):
            store(tmp_path, method, seed, REDSHIFT[method][seed], boot=0.004,
                  flags=["loss_not_decreasing"] if (method, seed) == ("mae", 1) else [])
            store(tmp_path, method, seed, DWARFS[method][seed], task="dwarfs", metric="accuracy", higher=True, boot=0.01)
    store(tmp_path, "simclr", 3, 0.047)  # a seed A does not have: left out of the pairing
    return tmp_path


def test_paired_deltas_mean_std_and_p_value_by_hand(results):
    out = compare(results, "mae", "simclr")
    by_task = {c["task"]: c for c in out["comparisons"]}
    assert [c["task"] for c in out["comparisons"]] == ["dwarfs", "redshift"]

    z = by_task["redshift"]
    assert z["seeds"] == [0, 1, 2] and z["seeds_only_b"] == [3] and z["seeds_only_a"] == []
    assert list(z["deltas"].values()) == pytest.approx([-0.010, -0.003, -0.009])
    mean, std, p = t_test_two_sided_df2([-0.010, -0.003, -0.009])
    assert z["mean_delta"] == pytest.approx(-0.022 / 3) and z["std_delta"] == pytest.approx(std)
    assert z["p_value"] == pytest.approx(p) and p == pytest.approx(0.0785, abs=1e-4)
    assert z["significant"] is False and z["direction"] == "better"  # lower σ_MAD, but p > 0.05
    assert z["a"]["mean"] == pytest.approx(0.173 / 3) and z["b"]["mean"] == pytest.approx(0.151 / 3)
    assert z["a"]["flags"] == ["loss_not_decreasing"] and z["b"]["flags"] == []
    # test-set noise: sqrt(0.004² + 0.004²) = 0.00566; |Δ| = 0.0073 is within twice that
    assert z["test_noise"] == pytest.approx(math.sqrt(2) * 0.004) and z["within_test_noise"] is True

    d = by_task["dwarfs"]
    mean, std, p = t_test_two_sided_df2([0.05, 0.04, 0.06])
    assert d["mean_delta"] == pytest.approx(0.05) and d["std_delta"] == pytest.approx(0.01)
    assert d["p_value"] == pytest.approx(p) and p == pytest.approx(0.01307, abs=1e-5)
    assert d["significant"] is True and d["direction"] == "better"
    assert d["within_test_noise"] is False  # 0.05 > 2 · sqrt(2) · 0.01


def test_direction_follows_the_metric_and_alpha_sets_significance(results):
    swapped = {c["task"]: c for c in compare(results, "simclr", "mae")["comparisons"]}
    assert swapped["dwarfs"]["direction"] == "worse" and swapped["dwarfs"]["significant"] is True
    assert swapped["redshift"]["direction"] == "worse"  # higher σ_MAD is worse
    strict = {c["task"]: c for c in compare(results, "mae", "simclr", alpha=0.01)["comparisons"]}
    assert strict["dwarfs"]["significant"] is False  # p = 0.013
    only = compare(results, "mae", "simclr", task=["redshift"], metric=["other"])["comparisons"]
    assert [(c["task"], c["metric"], c["mean_delta"], c["p_value"]) for c in only] == [("redshift", "other", 0.0, 1.0)]
    assert only[0]["direction"] == "same" and only[0]["significant"] is False


def test_paired_test_edge_cases_and_scipy_agreement():
    assert math.isnan(paired_test([0.5], [0.6]))  # one pair: no test
    assert paired_test([0.5, 0.6], [0.75, 0.85]) == 0.0  # every Δ = +0.25: t is infinite
    assert paired_test([0.5, 0.6], [0.5, 0.6]) == 1.0
    _, _, p = t_test_two_sided_df2([0.05, 0.04, 0.06])
    assert paired_test([0.70, 0.72, 0.71], [0.75, 0.76, 0.77]) == pytest.approx(p)


def test_names_configs_and_tags(results):
    with pytest.raises(SelectionError, match="did you mean simclr"):
        compare(results, "mae", "simclrr")
    store(results, "simclr", 0, 0.051, config_hash="c2ffff")  # a second configuration of simclr
    with pytest.raises(SelectionError, match="choose one of simclr@c1, simclr@c2ffff"):
        compare(results, "mae", "simclr", task=["redshift"])
    assert compare(results, "mae", "simclr@c1", task=["redshift"])["comparisons"][0]["seeds"] == [0, 1, 2]
    one = compare(results, "mae", "simclr@c2", task=["redshift"])["comparisons"][0]
    assert one["seeds"] == [0] and math.isnan(one["p_value"]) and one["significant"] is False
    assert one["mean_delta"] == pytest.approx(0.051 - 0.060)
    with pytest.raises(SelectionError, match="no configuration 'c9'"):
        compare(results, "mae", "simclr@c9")
    # tagged runs are named METHOD:TAG; without a tag the untagged results are meant
    for seed, value in enumerate((0.061, 0.056, 0.060)):
        store(results, "mae", seed, value, tag="-GN", config_hash="c3")
    gn = compare(results, "mae", "mae:-GN", task=["redshift"])["comparisons"][0]
    assert list(gn["deltas"].values()) == pytest.approx([0.001, 0.001, 0.002])
    with pytest.raises(SelectionError, match="no tag 'GN'"):
        compare(results, "mae", "mae:GN")
    with pytest.raises(SelectionError, match="same results"):
        compare(results, "mae", "mae")
    with pytest.raises(SelectionError, match="did you mean redshift"):
        compare(results, "mae", "simclr@c1", task=["redshfit"])


def test_no_common_seed_or_evaluation_is_nothing_to_compare(tmp_path):
    store(tmp_path, "mae", 0, 0.06)
    store(tmp_path, "simclr", 1, 0.05)
    store(tmp_path, "pixels", 0, 0.7, task="dwarfs", metric="accuracy", higher=True)
    with pytest.raises(NothingToCompare, match=r"no seed in common: redshift · linear: seeds \[0\] \(A\) and \[1\] \(B\)"):
        compare(tmp_path, "mae", "simclr")
    with pytest.raises(NothingToCompare, match="share no evaluation"):
        compare(tmp_path, "mae", "pixels")


def test_rendering_fits_80_columns_and_csv_json_carry_raw_numbers(results):
    out = compare(results, "mae", "simclr")
    console = Console(width=80, record=True)
    console.print(render_comparison(out, "rich"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "* better" in text and "n.s." in text and "· 3 seeds" in text and "σ_MAD ↓" in text
    # per-seed Δ at the row's precision: SE of the mean Δ 0.0038 / √3 = 0.0022 -> 4 decimals
    assert "−0.0100 −0.0030 −0.0090" in text and "−0.0073 ± 0.0038" in text
    assert "† 0.0577" in text  # A's flagged seed marks its mean
    assert "not paired, left out: redshift · linear: seeds [3] of B only" in text
    md = render_comparison(out, "md")
    assert "| dwarfs · linear | accuracy ↑ | 3 | +0.050 ± 0.010 | 0.013 | **better** |" in md
    rows = json.loads(render_comparison(out, "json"))["comparisons"]
    assert rows[1]["deltas"] == {"0": pytest.approx(-0.010), "1": pytest.approx(-0.003), "2": pytest.approx(-0.009)}
    csv = render_comparison(out, "csv").splitlines()
    assert csv[0].startswith("dataset_id,profile,task,protocol,label_budget,metric,higher_is_better,seeds,mean_a")
    assert "loss_not_decreasing" in csv[2] and "†" not in "".join(csv)


def test_cli_compare(results):
    ok = run_cli("compare", "mae", "simclr", "--results-dir", str(results), "--format", "json", "--task", "dwarfs")
    assert ok.returncode == 0, ok.stderr
    (row,) = json.loads(ok.stdout)["comparisons"]
    assert row["mean_delta"] == pytest.approx(0.05) and row["significant"] is True and row["direction"] == "better"
    rich = run_cli("compare", "mae", "simclr", "--results-dir", str(results), env={"COLUMNS": "80"})
    assert rich.returncode == 0 and "better" in rich.stdout and max(map(len, rich.stdout.splitlines())) <= 80
    unknown = run_cli("compare", "mae", "simclrr", "--results-dir", str(results))
    assert unknown.returncode == 2 and "did you mean simclr" in unknown.stderr
    store(results, "pixels", 7, 0.05)
    disjoint = run_cli("compare", "mae", "pixels", "--results-dir", str(results))
    assert disjoint.returncode == 1 and "no seed in common" in disjoint.stderr
    assert run_cli("compare", "mae", "simclr", "--results-dir", str(results / "nope")).returncode == 2
