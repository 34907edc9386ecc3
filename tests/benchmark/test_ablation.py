import math

import pytest
from PIL import Image

from astrobench.benchmark.ablation import ablation_table, ablation_variants, plot_ablation, run_ablation
from astrobench.benchmark.config import build_config
from astrobench.testing import register_test_doubles


def test_variants_of_each_mode():
    augs = ["RR", "JC", "GN"]
    assert ablation_variants(augs, "leave-one-out") == {
        "full": augs, "-RR": ["JC", "GN"], "-JC": ["RR", "GN"], "-GN": ["RR", "JC"]}
    assert ablation_variants(augs, "add-one") == {
        "none": [], "+RR": ["RR"], "+RR+JC": ["RR", "JC"], "+RR+JC+GN": augs}
    assert ablation_variants(augs, "single") == {
        "full": augs, "none": [], "only-RR": ["RR"], "only-JC": ["JC"], "only-GN": ["GN"]}
    with pytest.raises(ValueError, match="listed twice"):
        ablation_variants(["RR", "RR"], "single")
    with pytest.raises(ValueError, match="mode 'sideways'"):
        ablation_variants(augs, "sideways")


def rec(tag, seed, score, higher=False):
    return {"method": "m", "task": "t", "protocol": "linear", "tag": f"ablation:{tag}", "seed": seed,
            "scores": {"sigma_mad": score}, "main_score": "sigma_mad", "higher_is_better": {"sigma_mad": higher}}


def test_table_delta_is_positive_when_better_for_a_lower_is_better_metric():
    records = [rec("full", 0, 0.02), rec("full", 1, 0.04), rec("-GN", 0, 0.05), rec("-GN", 1, 0.07)]
    table = ablation_table(records, "m", "t").set_index("variant")
    assert table.loc["full", "delta"] == 0
    assert table.loc["-GN", "delta"] == pytest.approx(-0.03)  # worse without GN: negative
    assert table.loc["-GN", "delta_std"] == pytest.approx(math.sqrt(2) * math.sqrt(2e-4))
    with pytest.raises(LookupError):
        ablation_table(records, "m", "other-task")


def test_ablation_runs_every_variant_and_plots(tmp_path):
    register_test_doubles()
    base = build_config({}, {
        "methods": ["tiny-ae"], "tasks": ["tiny-size"], "dataset": "tiny", "profile": "smoke", "seeds": [0, 1],
        "results_dir": str(tmp_path / "results"), "cache_dir": str(tmp_path / "cache"),
        "views": {"tiny-ae": {"codes": ["RR", "GN"], "params": {"GN": {"p": 1.0}}}},
    })
    table = run_ablation(base, "tiny-ae", ["RR", "GN"], "leave-one-out")
    assert sorted(table["variant"]) == ["-GN", "-RR", "full"]
    assert (table["seeds"] == 2).all()
    png = plot_ablation(table, tmp_path / "ablation.png", "tiny-ae on tiny-size")
    with Image.open(png) as image:
        assert image.size[0] > 100 and image.size[1] > 100
