"""docs/plugins.md is a working plugin: its two Python blocks, written to one file as printed, run
end to end (pretrain, embed, evaluate, leaderboard) and describe themselves in `ls --details`."""

import json
import re
from pathlib import Path

from astrobench.testing import run_cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_the_documented_method_and_task_run_as_printed(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text("\n".join(blocks))
    out = run_cli("run", "--plugin", str(plugin), "--method", "byol-lite", "--task", "bright-faint", "--profile", "smoke",
                  "--dataset-option", "n=200", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                  "--quiet")
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "r").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["method"] == "byol-lite" and record["task"] == "bright-faint"
    assert 0 <= record["scores"]["balanced_accuracy"] <= 1 and len(record["pretrain"]["loss_curve"]) == 4
    assert record["model"]["backbone"] == "resnet10t" and record["model"]["images_seen"] == 4 * 16
    listing = run_cli("ls", "tasks", "--plugin", str(plugin), "--details")
    assert "Is the galaxy brighter than a magnitude cut in r?" in listing.stdout and "labels: mag_r" in listing.stdout
