"""Leaderboard views: label-efficiency curves and augmentation ablations (render and the CLI)."""

import json
import math

import pytest

from astrobench.testing import run_cli
from astrobench.benchmark.leaderboard import render
from astrobench.benchmark.store import result_path, write_result


def rec(method, seed, score, budget=None, tag=None, task="dwarfs", protocol="linear", config_hash="h1",
        metric="accuracy", higher=True):
    return {
        "kind": "astrobench-result", "method": method, "config_hash": config_hash, "tag": tag,
        "dataset": "synthetic", "profile": "smoke", "task": task, "protocol": protocol, "label_budget": budget,
        "seed": seed, "scores": {metric: score, "other": 0.5}, "main_score": metric,
        "higher_is_better": {metric: higher, "other": True},
    }


def md_table(text):
    lines = [line for line in text.strip().splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return rows[0], rows[2:]


# -- curves ------------------------------------------------------------------------------------------
CURVE_RECORDS = [
    rec(m, s, base + gain * i + 0.01 * s, budget=b)
    for m, base, gain in (("mae", 0.6, 0.1), ("random", 0.55, 0.02))
    for i, b in enumerate((50, 100, 400, None))
    for s in (0, 1)
]


def test_curves_view_has_budget_columns_in_numeric_order_and_method_rows():
    header, rows = md_table(render(CURVE_RECORDS, "md", view="curves"))
    assert header[:3] == ["rank", "method", "seeds"]
    assert header[3:] == [f"dwarfs · linear · n={b} · accuracy ↑" for b in ("50", "100", "400", "all")]
    assert [r[1] for r in rows] == ["mae", "random"]
    # mean ± standard error of 2 seeds 0.01 apart: std 0.01·√2/2, SE = std/√2 = 0.005 -> 3 decimals (PDG rule)
    assert rows[0][3] == "**0.605 ± 0.005**" and rows[0][6] == "**0.905 ± 0.005**"
    assert rows[1][3] == "0.555 ± 0.005" and rows[1][6] == "0.615 ± 0.005"  # 0.05 apart: 7 SE, separable


def test_curves_view_shows_the_budget_even_with_one_budget_and_the_table_view_sorts_numerically():
    one = [r for r in CURVE_RECORDS if r["label_budget"] == 100]
    header, _ = md_table(render(one, "md", view="curves"))
    assert header[3:] == ["dwarfs · linear · n=100 · accuracy ↑"]
    header, _ = md_table(render(one, "md"))
    assert header[3:] == ["dwarfs · linear · accuracy ↑"]
    header, _ = md_table(render(CURVE_RECORDS, "md"))  # "100" would sort before "50" as text
    assert [h.split(" · ")[2] for h in header[3:]] == ["n=50", "n=100", "n=400", "n=all"]


def test_curves_view_json_and_csv_carry_every_budget():
    rows = json.loads(render(CURVE_RECORDS, "json", view="curves"))
    assert [r["method"] for r in rows] == ["mae", "random"]
    cell = rows[0]["scores"]["dwarfs · linear · n=400 · accuracy"]
    assert cell["mean"] == pytest.approx(0.805) and cell["n"] == 2 and cell["best"] is True
    csv = render(CURVE_RECORDS, "csv", view="curves", label_budget=["50", "all"])
    assert "n=50" in csv and "n=all" in csv and "n=100" not in csv


# -- ablation ----------------------------------------------------------------------------------------
def ablation_records(full_tag="full"):
    scores = {full_tag: (0.80, 0.82), "-GN": (0.75, 0.79), "only-RR": (0.70, 0.70), "+PS": (0.83, 0.86)}
    out = []
    for tag, values in scores.items():
        for seed, value in enumerate(values):
            out.append(rec("simclr", seed, value, tag=tag, config_hash=f"h-{tag}"))
    return out


def test_ablation_rows_are_tags_with_paired_change_against_full():
    table = json.loads(render(ablation_records(), "json", view="ablation"))
    assert table["method"] == "simclr" and table["baseline"] == "full"
    tags = [r["tag"] for r in table["rows"]]
    assert tags == ["full", "+PS", "-GN", "only-RR"]  # baseline first, then best change to worst
    cells = {r["tag"]: r["scores"]["dwarfs · linear · accuracy"] for r in table["rows"]}
    assert cells["full"]["delta"] == 0 and cells["full"]["delta_std"] is None
    # -GN: per-seed changes -0.05 and -0.03 -> mean -0.04, std (ddof=1) sqrt(2) * 0.01
    assert cells["-GN"]["delta"] == pytest.approx(-0.04)
    assert cells["-GN"]["delta_std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert cells["-GN"]["paired"] is True
    assert cells["+PS"]["delta"] == pytest.approx(0.035) and cells["+PS"]["best"] is True
    assert cells["-GN"]["mean"] == pytest.approx(0.77) and cells["-GN"]["n"] == 2
    assert all(r["seeds"] == 2 for r in table["rows"])


def test_ablation_markdown_shows_score_and_signed_change():
    header, rows = md_table(render(ablation_records(), "md", view="ablation"))
    assert header == ["#", "tag (simclr)", "seeds", "dwarfs · linear · accuracy ↑", "Δ vs full"]
    by_tag = {r[1]: r for r in rows}
    assert by_tag["full"][4] == "(baseline)"
    # both changes are beyond 2 standard errors (-GN: SE = 0.014/√2 = 0.01 against |Δ| = 0.04): bold
    assert by_tag["-GN"][4] == "**−0.04 ± 0.014**" and by_tag["+PS"][4].startswith("**+0.035")
    assert by_tag["+PS"][3].startswith("**0.845")


def _boot(records, std):
    for r in records:
        r["bootstrap_std"] = {r["main_score"]: std}
    return records


def test_ablation_bolds_a_change_only_beyond_two_standard_errors():
    # scores in eighths (exact in binary): -JC changes by +1/8 and -1/8 (mean 0, within noise); -GN by -1/8 twice
    records = [rec("simclr", s, v, tag=t, config_hash=f"h-{t}")
               for t, vals in (("full", (0.75, 0.875)), ("-JC", (0.875, 0.75)), ("-GN", (0.625, 0.75)))
               for s, v in enumerate(vals)]
    cells = {r["tag"]: r["scores"]["dwarfs · linear · accuracy"]
             for r in json.loads(render(records, "json", view="ablation"))["rows"]}
    assert cells["-JC"]["delta"] == 0.0 and cells["-JC"]["significant"] is False
    assert cells["-JC"]["delta_se"] == pytest.approx(0.125)  # std of (+1/8, -1/8) = √2/8, over √2
    # -GN: the per-seed change never varies and no result has a bootstrap: SE 0, any change is beyond it
    assert cells["-GN"]["delta_se"] == 0.0 and cells["-GN"]["significant"] is True
    _, rows = md_table(render(records, "md", view="ablation"))
    by_tag = {r[1]: r for r in rows}
    assert by_tag["-JC"][4] == "+0 ± 0.18" and by_tag["-GN"][4] == "**−0.125 ± 0**"
    # with a bootstrap std b over the test objects on both variants: delta_se = sqrt(0 / 2 + b² + b²)
    cells = {r["tag"]: r["scores"]["dwarfs · linear · accuracy"]
             for r in json.loads(render(_boot(records, 0.04), "json", view="ablation"))["rows"]}
    assert cells["-GN"]["delta_se"] == pytest.approx(math.sqrt(2) * 0.04)  # 2 SE = 0.113 < 0.125: significant
    assert cells["-GN"]["significant"] is True
    cells = {r["tag"]: r["scores"]["dwarfs · linear · accuracy"]
             for r in json.loads(render(_boot(records, 0.05), "json", view="ablation"))["rows"]}
    assert cells["-GN"]["delta_se"] == pytest.approx(math.sqrt(2) * 0.05)  # 2 SE = 0.141 > 0.125: noise
    assert cells["-GN"]["significant"] is False
    _, rows = md_table(render(_boot(records, 0.05), "md", view="ablation"))
    assert {r[1]: r for r in rows}["-GN"][4] == "−0.125 ± 0"
    # the scores carry the leaderboard's uncertainty: full, SE² = var(0.75, 0.875) / 2 + 0.05²
    assert cells["full"]["se"] == pytest.approx(math.sqrt(0.0078125 / 2 + 0.05**2))


def test_ablation_one_seed_without_bootstrap_is_never_significant():
    records = [rec("simclr", 0, 0.8, tag="full"), rec("simclr", 0, 0.5, tag="-GN")]
    cell = json.loads(render(records, "json", view="ablation"))["rows"][1]["scores"]["dwarfs · linear · accuracy"]
    assert cell["delta"] == pytest.approx(-0.3) and cell["delta_se"] is None and cell["significant"] is False
    assert "**" not in md_table(render(records, "md", view="ablation"))[1][1][4]


def test_ablation_respects_lower_is_better_and_uses_the_untagged_run_without_full():
    records = [rec("mae", s, v, tag=t, metric="sigma_mad", higher=False)
               for t, vals in ((None, (0.030, 0.032)), ("-JC", (0.040, 0.041)), ("-GR", (0.028, 0.029)))
               for s, v in enumerate(vals)]
    table = json.loads(render(records, "json", view="ablation"))
    assert table["baseline"] == "(untagged)"
    assert [r["tag"] for r in table["rows"]] == ["(untagged)", "-GR", "-JC"]  # lower sigma_mad is better
    gr = table["rows"][1]["scores"]["dwarfs · linear · sigma_mad"]
    assert gr["delta"] == pytest.approx(-0.0025) and gr["best"] is True


def test_ablation_unpaired_seeds_use_difference_of_means_and_combined_spread():
    records = [rec("mae", 0, 0.8, tag="full"), rec("mae", 1, 0.9, tag="full"),
               rec("mae", 2, 0.7, tag="-GN"), rec("mae", 3, 0.6, tag="-GN")]
    row = json.loads(render(records, "json", view="ablation"))["rows"][1]
    cell = row["scores"]["dwarfs · linear · accuracy"]
    assert cell["paired"] is False and cell["delta"] == pytest.approx(-0.2)
    assert cell["delta_std"] == pytest.approx(math.sqrt(0.005 + 0.005))  # each variant's variance is 0.005
    # unpaired standard error: each mean's SE² = 0.005 / 2 -> sqrt(0.0025 + 0.0025) = 0.0707 < |Δ| / 2
    assert cell["delta_se"] == pytest.approx(math.sqrt(0.005)) and cell["significant"] is True


def test_ablation_needs_one_method_and_a_baseline():
    records = ablation_records() + [rec("mae", 0, 0.7, tag="full"), rec("mae", 0, 0.6, tag="-GN")]
    with pytest.raises(LookupError, match="--method"):
        render(records, "md", view="ablation")
    assert "simclr" in render(records, "md", view="ablation", method=["simclr"])
    # one tagged method among untagged others: it is chosen
    assert "only-RR" in render(ablation_records() + [rec("random", 0, 0.5)], "md", view="ablation")
    with pytest.raises(LookupError, match="no 'full' or untagged variant"):
        render([r for r in ablation_records() if r["tag"] != "full"], "md", view="ablation")


@pytest.mark.parametrize("fmt", ["rich", "md", "csv", "latex", "json", "html"])
def test_every_format_renders_every_view(fmt):
    for view, records, needle in (("curves", CURVE_RECORDS, "n=400"), ("ablation", ablation_records(), "only-RR")):
        out = render(records, fmt, view=view)
        if fmt == "rich":
            from rich.console import Console

            console = Console(width=250, record=True)
            console.print(out)
            out = console.export_text()
        assert needle in out, (fmt, view)
    assert "$\\Delta$" in render(ablation_records(), "latex", view="ablation")
    with pytest.raises(ValueError, match="view"):
        render(CURVE_RECORDS, fmt, view="bars")


def test_cli_view_option(tmp_path):
    for r in ablation_records() + CURVE_RECORDS + [rec("mae", 0, 0.9, tag="full")]:
        path = result_path(tmp_path, dataset=r["dataset"], profile=r["profile"], task=r["task"], method=r["method"],
                           config_hash=r["config_hash"], protocol=r["protocol"], label_budget=r["label_budget"],
                           seed=r["seed"], tag=r["tag"])
        write_result(path, r, None)
    out = run_cli("leaderboard", "--results-dir", str(tmp_path), "--view", "ablation", "--method", "simclr",
                  "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [r["tag"] for r in json.loads(out.stdout)["rows"]] == ["full", "+PS", "-GN", "only-RR"]
    out = run_cli("leaderboard", "--results-dir", str(tmp_path), "--view", "curves", "--method", "mae,random",
                  "--format", "md")
    assert out.returncode == 0 and "n=400" in out.stdout and "simclr" not in out.stdout
    out = run_cli("leaderboard", "--results-dir", str(tmp_path), "--view", "ablation")
    assert out.returncode == 2 and "--method" in out.stderr  # two methods with tags, none chosen
    assert run_cli("leaderboard", "--results-dir", str(tmp_path), "--view", "bars").returncode == 2


def test_ablation_leaves_out_columns_only_the_baseline_has():
    records = ablation_records() + [rec("simclr", 0, 0.3, tag="full", task="morphology")]
    header, _ = md_table(render(records, "md", view="ablation"))
    assert header[3:] == ["dwarfs · linear · accuracy ↑", "Δ vs full"]
    header, rows = md_table(render(records, "md", view="ablation", task=["morphology"]))  # nothing else to show
    assert header[3] == "morphology · linear · accuracy ↑" and [r[1] for r in rows] == ["full"]
