"""End-to-end runs through the real console entry point (subprocesses), with the test doubles."""

import json
from pathlib import Path


from astrobench.testing import run_cli


def smoke(workdir: Path, plugin: str, *extra: str):
    return run_cli("run", "--plugin", plugin, "--dataset", "tiny", "--task", "tiny-size", "--profile", "smoke",
                   "--results-dir", str(workdir / "results"), "--cache-dir", str(workdir / "cache"), "--quiet", *extra)


def results(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workdir / "results").rglob("*.json"))]


def test_smoke_run_writes_results_that_every_leaderboard_format_shows(tmp_path, tiny_plugin):
    out = smoke(tmp_path, tiny_plugin, "--method", "tiny-ae,random,pixels", "--seeds", "0,1")
    assert out.returncode == 0, out.stderr
    records = results(tmp_path)
    assert len(records) == 6
    r = next(r for r in records if r["method"] == "tiny-ae")
    for key in ("scores", "config_hash", "data_manifest_hash", "task_version", "astrobench_version", "git_sha",
                "versions", "device", "world_size", "pretrain", "resolved_config", "predictions_file"):
        assert key in r, key
    assert r["pretrain"]["steps"] == 4 and r["pretrain"]["images_per_s"] > 0
    # the stored config is what ran: every training key of the pretraining stage, not the defaults
    ran, stored = r["method_config"]["train"], r["resolved_config"]["train"]
    assert ran and all(stored[key] == value for key, value in ran.items()), (ran, stored)
    assert stored["steps"] == r["pretrain"]["steps"] and stored["batch_size"] == r["pretrain"]["global_batch"]
    assert "train_overrides" not in r["resolved_config"]
    assert r["pretrain"]["flops_per_image"] > 0
    for fmt in ("rich", "md", "csv", "latex", "json", "html"):
        lb = run_cli("leaderboard", "--results-dir", str(tmp_path / "results"), "--format", fmt)
        assert lb.returncode == 0, lb.stderr
        for method in ("tiny-ae", "random", "pixels"):
            assert method in lb.stdout, (fmt, lb.stdout)


def test_second_task_reuses_checkpoint_and_embeddings_but_changed_config_does_not(tmp_path, tiny_plugin):
    first = smoke(tmp_path, tiny_plugin, "--method", "tiny-ae")
    assert first.returncode == 0, first.stderr
    pretrain_dirs = sorted((tmp_path / "cache" / "pretrain").iterdir())
    embeddings = sorted((tmp_path / "cache" / "embeddings").iterdir())
    # same pretraining, another evaluation (a label budget) -> cached model and embeddings
    second = smoke(tmp_path, tiny_plugin, "--method", "tiny-ae", "--labels", "20")
    assert second.returncode == 0, second.stderr
    assert sorted((tmp_path / "cache" / "pretrain").iterdir()) == pretrain_dirs
    assert sorted((tmp_path / "cache" / "embeddings").iterdir()) == embeddings
    by_budget = {r["label_budget"]: r for r in results(tmp_path)}
    assert by_budget[None]["pretrain"]["cached"] is False and by_budget[20]["pretrain"]["cached"] is True
    # a changed pretraining parameter trains a new model
    third = smoke(tmp_path, tiny_plugin, "--method", "tiny-ae", "--steps", "3")
    assert third.returncode == 0, third.stderr
    assert len(list((tmp_path / "cache" / "pretrain").iterdir())) == len(pretrain_dirs) + 1


def test_overwrite_modes(tmp_path, tiny_plugin):
    assert smoke(tmp_path, tiny_plugin, "--method", "random").returncode == 0
    (path,) = (tmp_path / "results").rglob("*.json")
    before = path.stat().st_mtime_ns
    assert smoke(tmp_path, tiny_plugin, "--method", "random").returncode == 0  # only-missing: skipped
    assert path.stat().st_mtime_ns == before
    never = smoke(tmp_path, tiny_plugin, "--method", "random", "--overwrite", "never")
    assert never.returncode == 1 and "already exist" in never.stderr
    assert smoke(tmp_path, tiny_plugin, "--method", "random", "--overwrite", "always").returncode == 0
    assert path.stat().st_mtime_ns != before


def test_unknown_names_exit_2_with_suggestions(tmp_path, tiny_plugin):
    out = smoke(tmp_path, tiny_plugin, "--method", "tiny-a")
    assert out.returncode == 2 and "Did you mean 'tiny-ae'" in out.stderr
    out = run_cli("run", "--plugin", tiny_plugin, "--method", "random", "--task", "tiny-sise", "--dataset", "tiny")
    assert out.returncode == 2 and "Did you mean 'tiny-size'" in out.stderr
    out = run_cli("run", "--plugin", tiny_plugin, "--method", "random", "--task", "tiny-size", "--dataset", "tinyy")
    assert out.returncode == 2 and "Did you mean 'tiny'" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_config_key_exits_2_naming_key_and_file(tmp_path, tiny_plugin):
    config = tmp_path / "exp.yaml"
    config.write_text("method_options:\n  random: {backbone: resnet10t, depth: 3}\n")
    out = smoke(tmp_path, tiny_plugin, "--method", "random", "--config", str(config))
    assert out.returncode == 2 and "'depth'" in out.stderr
    config.write_text("seedz: [1]\n")
    out = smoke(tmp_path, tiny_plugin, "--method", "random", "--config", str(config))
    assert out.returncode == 2 and "exp.yaml" in out.stderr and "'seedz'" in out.stderr


def test_missing_label_is_named_and_nothing_is_written(tmp_path, tiny_plugin):
    plugin = tmp_path / "needs_label.py"
    plugin.write_text(
        "from astrobench import register_task\n"
        "from astrobench.testing import TinySizeTask\n"
        "@register_task('needs-redshift')\n"
        "class NeedsRedshift(TinySizeTask):\n"
        "    required_labels = ('redshift',)\n"
    )
    out = run_cli("run", "--plugin", tiny_plugin, "--plugin", str(plugin), "--dataset", "tiny", "--task",
                  "needs-redshift", "--method", "random", "--profile", "smoke", "--results-dir",
                  str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 1 and "'redshift'" in out.stderr
    assert not (tmp_path / "results").exists()


def test_usage_errors_exit_2():
    assert run_cli("run", "--seeds", "a,b").returncode == 2
    assert run_cli("nonsense").returncode == 2
    assert run_cli().returncode == 2
    assert run_cli("run", "--help").returncode == 0
