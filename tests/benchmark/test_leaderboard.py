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
    eta_col = header.index("redshift · linear · eta_percent ↓")  # lower is better: ↓ in the header
    sigma_col = header.index("redshift · linear · sigma_mad ↓")
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


# -- uncertainty, marks, flags, precision ----------------------------------------------------------
from rich.console import Console  # noqa: E402

from astrobench.benchmark.leaderboard import column_decimals, combine_uncertainty, decimals_for  # noqa: E402


def with_boot(record, std, flags=None):
    record["bootstrap_std"] = {"sigma_mad": std}
    if flags is not None:
        record["flags"] = flags
    return record


def md_column(md, index=3):
    """method -> the text of one column of a Markdown leaderboard."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()[2:] if line.startswith("|")]
    return {r[1]: r[index] for r in rows}


def cell_of(records, method, column="redshift · linear · sigma_mad"):
    return next(r["scores"][column] for r in json.loads(render(records, "json")) if r["method"] == method)


def test_standard_error_combines_seed_spread_and_bootstrap():
    # seeds 0.02, 0.04: std √2·0.01, seed term std²/n = 0.0002/2 = 1e-4; bootstrap 0.003 and 0.004:
    # mean variance (9e-6 + 16e-6)/2 = 1.25e-5, shared by the seeds (same test objects): not divided by n
    records = [with_boot(rec("mae", 0, 0.02, 1.0), 0.003), with_boot(rec("mae", 1, 0.04, 3.0), 0.004)]
    cell = cell_of(records, "mae")
    assert cell["std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert cell["boot_std"] == pytest.approx(math.sqrt(1.25e-5))
    assert cell["se"] == pytest.approx(math.sqrt(1e-4 + 1.25e-5))
    # older results without a bootstrap: the seed term alone, std / √n = 0.01
    assert cell_of(RECORDS, "mae")["se"] == pytest.approx(0.01) and cell_of(RECORDS, "mae")["boot_std"] is None
    # one seed: the bootstrap alone; one seed and no bootstrap: no uncertainty, no ± shown
    assert cell_of([with_boot(rec("mae", 0, 0.02, 1.0), 0.003)], "mae")["se"] == pytest.approx(0.003)
    assert cell_of([rec("mae", 0, 0.02, 1.0)], "mae")["se"] is None
    assert "±" not in render([rec("mae", 0, 0.02, 1.0)], "md").splitlines()[2]
    # a bootstrap on some seeds only: the mean over the known ones
    u = combine_uncertainty([0.02, 0.04], [0.003, None])
    assert u["se"] == pytest.approx(math.sqrt(1e-4 + 9e-6)) and u["n"] == 2


def test_cells_not_separable_from_the_best_are_marked():
    # one seed each with bootstrap std 0.002: SE 0.002, two cells differ by noise if |Δ| <= 2·sqrt(2)·0.002 = 0.00566
    records = [with_boot(rec(m, 0, v, 1.0), 0.002) for m, v in (("a", 0.030), ("b", 0.034), ("c", 0.040))]
    cells = {m: cell_of(records, m) for m in "abc"}
    assert cells["a"]["best"] and not cells["a"]["near_best"]  # lower sigma_mad is better
    assert cells["b"]["near_best"] and not cells["b"]["best"]  # 0.004 < 0.00566
    assert not cells["c"]["near_best"]  # 0.010 > 0.00566
    assert md_column(render(records, "md")) == {"a": "**0.0300 ± 0.0020**", "b": "≈ 0.0340 ± 0.0020",
                                                "c": "0.0400 ± 0.0020"}
    # higher is better: the mark follows the direction
    up = [with_boot(rec(m, 0, v, 1.0), 0.002) for m, v in (("a", 0.030), ("b", 0.035), ("c", 0.040))]
    for r in up:
        r["higher_is_better"] = {"sigma_mad": True, "eta_percent": False}
    cells = {m: cell_of(up, m) for m in "abc"}
    assert cells["c"]["best"] and cells["b"]["near_best"] and not cells["a"]["near_best"]
    # without any uncertainty nothing can be called a tie
    cells = {m: cell_of([rec("a", 0, 0.030, 1.0), rec("b", 0, 0.0301, 1.0)], m) for m in "ab"}
    assert cells["a"]["best"] and not cells["b"]["near_best"]


def test_flags_are_marks_on_cells_with_a_legend_and_fields_in_csv_and_json():
    records = [with_boot(rec("constant", s, 0.1, 9.0), 0.004, ["constant_predictions"]) for s in (0, 1)]
    records += [with_boot(rec("mae", 0, 0.05, 2.0), 0.002, ["loss_not_decreasing"]),
                with_boot(rec("mae", 1, 0.06, 2.0), 0.002, []),
                with_boot(rec("odd", 0, 0.07, 2.0), 0.002, ["nan_embeddings"]), rec("old", 0, 0.08, 2.0)]
    md = render(records, "md")
    # SEs 0.004 (constant), sqrt(0.01²/2/2 + 0.002²) = 0.0054 (mae), 0.002 (odd): median 0.004 -> 3 decimals
    assert md_column(md) == {"constant": "! 0.100 ± 0.004", "mae": "**† 0.055 ± 0.005**", "odd": "‡ 0.070 ± 0.002",
                             "old": "0.080"}  # old: one seed, no bootstrap, no flags field
    assert "! constant predictions; † pretraining loss never fell; ‡ nan embeddings (in at least one seed)" in md
    assert cell_of(records, "constant")["flags"] == ["constant_predictions"]
    assert cell_of(records, "old")["flags"] == []
    csv = render(records, "csv")
    header, *lines = csv.strip().splitlines()
    assert "redshift · linear · sigma_mad flags" in header and "!" not in csv and "†" not in csv
    assert any(line.startswith("4,constant,2,0.1,") and line.endswith(",constant_predictions") for line in lines)


def test_precision_follows_the_uncertainty():
    # Particle Data Group: two significant digits of the SE for leading digits 100-354, else one
    assert [decimals_for(x) for x in (0.0026, 0.0046, 0.0096, 0.014, 0.35, 0.36, 12.0, 46.0)] == [4, 3, 3, 3, 2, 1, 0, 0]
    # one precision per column, from its median SE (here 0.0026 -> 4 decimals); no SE: 4 significant digits
    assert column_decimals([{"mean": 0.5, "se": s} for s in (0.0003, 0.0026, 0.04)]) == 4
    assert column_decimals([{"mean": 41.23, "se": math.nan}, {"mean": 7.0, "se": math.nan}]) == 2
    md = render(RECORDS, "md", all_metrics=True)  # eta SE 1.0 and 0.5 -> median 0.75 -> 1 decimal
    assert "≈ 2.0 ± 1.0" in md and "**1.0 ± 0.5**" in md
    # an SE below the column's precision keeps one significant digit; float noise on a constant is zero
    from astrobench.benchmark.leaderboard_text import cell_text
    assert cell_text({"mean": 0.5, "se": 0.00004}, 3) == "0.500 ± 0.00004"
    assert cell_text({"mean": 0.5, "se": 4e-17}, 3) == "0.500 ± 0.000"


def _terminal(renderable, width, color=False):
    console = Console(width=width, record=True, force_terminal=color, color_system="standard" if color else None)
    console.print(renderable)
    return console.export_text()


def test_terminal_table_fits_80_columns_in_blocks_and_marks_the_best_in_plain_text():
    records = [with_boot(rec(m, s, 0.04 + 0.01 * i + 0.001 * s, 30.0 + i, task=t), 0.001)
               for i, m in enumerate(("simclr", "supervised", "mocov2 [abcdef] (long-tag)"))
               for t in ("redshift", "dwarfs", "morphology", "similarity") for s in (0, 1, 2)]
    wide = _terminal(render(records, "rich", all_metrics=True), 250)
    narrow = _terminal(render(records, "rich", all_metrics=True), 80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert narrow.count("#   method") > wide.count("#   method") == 1  # row names repeated per block
    for needle in ("σ_MAD ↓", "η % ↓", "morphology", "similarity", "mocov2 [abcdef] (long-tag)", "· 3 seeds"):
        assert needle in narrow and needle in wide, needle
    assert "* 0.0410 ± 0.0012" in narrow  # SE² = 0.001² / 3 + 0.001²  # no styles in plain text: the best gets a "*"
    assert "*: best in column" in narrow and "bold: best" in _terminal(render(records, "rich"), 250, color=True)


@pytest.mark.parametrize("fmt", ["md", "latex", "html"])
def test_display_formats_carry_the_legend_and_marks(fmt):
    records = [with_boot(rec(m, 0, v, 1.0), 0.002, ["constant_predictions"] if m == "c" else [])
               for m, v in (("a", 0.030), ("b", 0.034), ("c", 0.040))]
    text = render(records, fmt)
    legend = {"md": "≈: within 2 SE", "latex": r"$\approx$: within 2 SE", "html": "≈: within 2 SE"}[fmt]
    assert legend in text and "constant predictions" in text
    if fmt == "latex":
        assert r"\textbf{0.0300 $\pm$ 0.0020}" in text and r"$\approx$ 0.0340" in text and r"$\downarrow$" in text
    if fmt == "html":
        assert '<td class="best"><b>0.0300 ± 0.0020</b></td>' in text and '<td class="near-best">≈ 0.0340' in text
