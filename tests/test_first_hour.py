"""What a new user and a plugin author meet first: close-match hints for option keys, `ls labels`,
`ls --details`, plain progress lines when the output is not a terminal, and full result paths."""

import io
from pathlib import Path

from rich.console import Console

from astrobench.benchmark.console import Reporter, plain_progress
from astrobench.testing import run_cli


def test_misspelt_option_keys_get_a_close_match(tmp_path):
    common = ["run", "--profile", "smoke", "--method", "random", "--task", "redshift",
              "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    cases = [("--method-option", "random.backbon=resnet18", "method 'random' has no option 'backbon'. Did you mean 'backbone'?"),
             ("--task-option", "redshift.n_bin=50", "task 'redshift' has no option 'n_bin'. Did you mean 'n_bins'?"),
             ("--dataset-option", "presett=sdss", "dataset 'synthetic' has no option 'presett'. Did you mean 'preset'?")]
    for flag, value, message in cases:
        out = run_cli(*common, flag, value)
        assert out.returncode == 2 and message in out.stderr, (flag, out.stderr)
    assert not list((tmp_path / "r").rglob("*.json"))  # nothing written


def test_ls_labels_lists_the_simulated_surveys_labels_and_their_tasks(tmp_path):
    out = run_cli("ls", "labels", "--dataset-option", "n=64", "--cache-dir", str(tmp_path / "c"))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert {"redshift", "dwarf", "morphology", "gz_bar", "log_stellar_mass", "mag_r"} <= set(lines)
    assert "used by redshift" in lines["redshift"] and "used by dwarfs" in lines["dwarf"]
    assert "float32, 100% present" in lines["redshift"] and "morphology" in lines["gz_bar"]


def test_ls_details_describes_tasks_with_labels_metrics_and_protocols():
    out = run_cli("ls", "tasks", "--details")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Dwarf galaxies against the rest" in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("redshift "))
    block = lines[start:start + 5]
    assert block[2].strip() == "labels: redshift"
    assert block[3].strip().startswith("main score: sigma_mad; metrics: sigma_mad ↓")
    assert block[4].strip().startswith("protocols:") and "linear" in block[4] and "finetune" in block[4]


def test_plain_progress_lines_are_throttled_and_say_step_loss_speed_and_eta():
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False, color_system=None)
    now = [0.0]
    advance = plain_progress(console, "pretrain simclr seed 0", 100, every=30.0, clock=lambda: now[0])
    for step, t in ((10, 10.0), (20, 20.0), (50, 50.0), (60, 60.0), (100, 70.0)):
        now[0] = t
        advance(step, {"loss": 4.5, "images_per_s": 212.0})
    lines = buffer.getvalue().splitlines()
    # the first report, then one per 30 s (50 s: 40 s after 10 s; 60 s: too soon), and the last step
    assert lines == [
        "pretrain simclr seed 0: 10/100  loss=4.5  images/s=212  elapsed 0:10  ETA 1:30",
        "pretrain simclr seed 0: 50/100  loss=4.5  images/s=212  elapsed 0:50  ETA 0:50",
        "pretrain simclr seed 0: 100/100  loss=4.5  images/s=212  elapsed 1:10  ETA 0:00",
    ]


def test_a_reporter_writing_to_a_file_uses_plain_lines_and_names_each_result_in_full(tmp_path):
    buffer = io.StringIO()
    reporter = Reporter(console=Console(file=buffer, width=300, force_terminal=False, color_system=None))
    with reporter.progress("embed mae seed 0", 4) as advance:
        advance(4, {})
    record = {"main_score": "sigma_mad", "scores": {"sigma_mad": 0.05}, "label_budget": None, "method": "mae",
              "seed": 0, "task": "redshift", "protocol": "linear"}
    reporter.result(record, Path("rel") / "x.json")
    text = buffer.getvalue()
    assert "embed mae seed 0: 4/4" in text and "━" not in text  # no bar drawn into a file
    assert f"-> {(Path('rel') / 'x.json').resolve()}" in text


def test_a_run_prints_progress_and_the_absolute_results_folder_when_piped(tmp_path):
    out = run_cli("run", "--profile", "smoke", "--method", "simclr", "--task", "redshift", "--steps", "4",
                  "--dataset-option", "n=200", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"))
    assert out.returncode == 0, out.stderr
    assert "pretrain" in out.stderr and "4/4" in out.stderr and "loss=" in out.stderr and "ETA" in out.stderr
    (written,) = (tmp_path / "r").rglob("*.json")
    assert f"-> {written.resolve()}" in out.stderr
    assert f"under {(tmp_path / 'r').resolve()}" in out.stderr


def test_ls_details_describes_a_generic_task_by_the_label_option_and_its_real_protocols():
    from astrobench.plugin_info import describe
    from astrobench.registry import TASKS

    lines = describe("tasks", TASKS.get("classification"))
    assert "labels: any column you name: --task-option label=NAME" in lines
    assert any(line.startswith("protocols: finetune, knn, linear") for line in lines)
    retrieval = describe("tasks", TASKS.get("retrieval"))
    assert not any("morphology" in line for line in retrieval)  # not the similarity task's label
