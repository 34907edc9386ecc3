import json

import pytest
from PIL import Image

from astrobench.benchmark.ablation import ablation_variants, run_ablation
from astrobench.benchmark.config import build_config
from astrobench.testing import register_test_doubles

from astrobench.testing import run_cli


def test_variants_of_each_mode():
    augs = ["RR", "JC", "GN"]
    assert ablation_variants(augs, "leave-one-out") == {
        "full": augs, "-RR": ["JC", "GN"], "-JC": ["RR", "GN"], "-GN": ["RR", "JC"]}
    assert ablation_variants(augs, "add-one") == {"none": [], "+RR": ["RR"], "+RR+JC": ["RR", "JC"], "full": augs}
    assert ablation_variants(augs, "single") == {
        "full": augs, "none": [], "only-RR": ["RR"], "only-JC": ["JC"], "only-GN": ["GN"]}
    with pytest.raises(ValueError, match="listed twice"):
        ablation_variants(["RR", "RR"], "single")
    with pytest.raises(ValueError, match="mode 'sideways'"):
        ablation_variants(augs, "sideways")


def test_ablation_runs_every_variant_with_its_views(tmp_path):
    register_test_doubles()
    base = build_config({}, {
        "methods": ["tiny-ae"], "tasks": ["tiny-size"], "dataset": "tiny", "profile": "smoke", "seeds": [0, 1],
        "results_dir": str(tmp_path / "results"), "cache_dir": str(tmp_path / "cache"),
        "views": {"tiny-ae": {"codes": ["RR", "GN"], "params": {"GN": {"p": 1.0}}}},
    })
    records = run_ablation(base, "tiny-ae", ["RR", "GN"], "leave-one-out")
    assert sorted((r["tag"], r["seed"]) for r in records) == [(t, s) for t in ("-GN", "-RR", "full") for s in (0, 1)]
    views = {r["tag"]: r["method_config"]["views"] for r in records}
    assert views["-GN"] == {"codes": ["RR"], "params": {}}
    assert views["full"] == {"codes": ["RR", "GN"], "params": {"GN": {"p": 1.0}}}
    # a second call reuses every result and returns the same set
    assert len(run_ablation(base, "tiny-ae", ["RR", "GN"], "leave-one-out")) == 6


def test_ablate_command_prints_the_table_and_saves_the_chart(tmp_path, tiny_plugin):
    out = run_cli("ablate", "--plugin", tiny_plugin, "--method", "tiny-ae", "--task", "tiny-size", "--dataset", "tiny",
                  "--profile", "smoke", "--augs", "RR,GN", "--mode", "single", "--results-dir", str(tmp_path / "r"),
                  "--cache-dir", str(tmp_path / "c"), "--format", "json", "--chart", str(tmp_path / "a.png"), "--quiet")
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert {row["tag"] for row in table["rows"]} == {"full", "none", "only-RR", "only-GN"}
    with Image.open(tmp_path / "a.png") as image:
        assert image.size[0] > 100 and image.size[1] > 100
    bad = run_cli("ablate", "--plugin", tiny_plugin, "--method", "tiny-ae,random", "--task", "tiny-size")
    assert bad.returncode == 2 and "one method" in bad.stderr
