import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from astrobench.benchmark.store import load_results, result_path, stable_hash, write_result

WRITER = textwrap.dedent("""
    import sys, pandas as pd
    from pathlib import Path
    from astrobench.benchmark.store import write_result
    out, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    big = pd.DataFrame({"object_id": [f"o{i}" for i in range(200_000)], "x": range(200_000)})
    for i in range(count):
        record = {"kind": "astrobench-result", "writer": name, "i": i, "payload": "x" * 2_000_000,
                  "method": "m", "config_hash": "c", "dataset": "d", "profile": "smoke", "task": "t",
                  "protocol": "linear", "seed": 0, "label_budget": None, "scores": {"acc": 0.5},
                  "main_score": "acc", "higher_is_better": {"acc": True}}
        write_result(out / f"{name}-{i % 3}.json", record, big)
    print("done", flush=True)
""")


def _record(**scores):
    # every field a reader needs (store.result_problem): a record without them is a damaged result
    return {"kind": "astrobench-result", "method": "m", "config_hash": "c", "dataset": "d", "profile": "smoke",
            "task": "t", "protocol": "linear", "seed": 0, "label_budget": None, "scores": scores,
            "main_score": next(iter(scores)), "higher_is_better": {k: True for k in scores}}


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_result_path_encodes_every_identity_field(tmp_path):
    p = result_path(tmp_path, dataset="synthetic", profile="quick", task="redshift", method="mae",
                    config_hash="abc123", protocol="linear", label_budget=None, seed=2)
    assert p.relative_to(tmp_path).as_posix() == "synthetic/quick/redshift/mae__abc123__linear__labels-all__seed-2.json"


def test_write_result_writes_predictions_and_their_hash(tmp_path):
    path = tmp_path / "r.json"
    write_result(path, _record(acc=0.5), pd.DataFrame({"object_id": ["a"], "y": [1.0]}))
    record = json.loads(path.read_text())
    pred = tmp_path / record["predictions_file"]
    assert pd.read_parquet(pred)["y"].tolist() == [1.0]
    assert len(record["predictions_sha256"]) == 64
    assert [r["scores"] for r in load_results(tmp_path)] == [{"acc": 0.5}]


def test_sigkill_while_writing_leaves_no_partial_result(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "out"), "w", "1000"])
    deadline = time.time() + 60
    while not (tmp_path / "out").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # inside the write loop
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    files = sorted((tmp_path / "out").iterdir())
    finished = [f for f in files if f.suffix == ".json" and not f.name.startswith(".")]
    for f in finished:
        assert json.loads(f.read_text())["payload"] == "x" * 2_000_000  # complete, parseable
    # whatever was being written is only a temporary file, which readers ignore
    assert all(f.name.startswith(".") or f.suffix in (".json", ".parquet") for f in files)
    assert len(load_results(tmp_path / "out")) == len(finished)


def test_two_processes_writing_into_one_folder_keep_both_results(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, str(script), str(out), name, "6"], stdout=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    for p in procs:
        stdout, _ = p.communicate(timeout=240)
        assert p.returncode == 0 and "done" in stdout
    records = load_results(out)
    assert sorted((r["writer"], r["i"] % 3) for r in records) == [(w, k) for w in "ab" for k in range(3)]
    for r in records:
        pred = pd.read_parquet(out / r["predictions_file"])
        assert len(pred) == 200_000


def test_load_results_names_a_corrupt_file(tmp_path):
    # issue 17: a damaged file is named and skipped with a warning; the other results still load
    (tmp_path / "bad.json").write_text("{not json")
    write_result(tmp_path / "good.json", _record(acc=0.5), None)
    with pytest.warns(UserWarning, match="bad.json"):
        results = load_results(tmp_path)
    assert [r["scores"] for r in results] == [{"acc": 0.5}]
    assert [p.name for p, _ in results.damaged] == ["bad.json"]
