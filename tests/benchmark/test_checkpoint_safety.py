"""Damaged checkpoints fall back to the previous complete one; temporary folders of live writers
survive a cleaner; the pretraining lock makes a second process wait (issue 17)."""

import subprocess
import sys
import textwrap
import time

import pytest
import torch

from astrobench.benchmark import checkpoints
from astrobench.benchmark.pretrain import cache_lock
from astrobench.fsutil import atomic_directory, temp_owner_tag


def _model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def _write(run_dir, step, value):
    model = _model(value)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return checkpoints.write_checkpoint(run_dir, step, model, {"optimizer": optimizer.state_dict(),
                                        "scheduler": scheduler.state_dict()}, {"key": "k"}, keep=5)


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one_with_a_warning(tmp_path):
    _write(tmp_path, 4, 1.0)
    newest = _write(tmp_path, 8, 2.0)
    (newest / checkpoints.WEIGHTS).write_bytes(b"\xff" * 64)  # "header too large" from safetensors
    model = _model(0.0)
    with pytest.warns(RuntimeWarning, match=r"step-000000008.*model\.safetensors.*resuming from step-000000004"):
        found = checkpoints.resume(tmp_path, model)
    checkpoint, state = found
    assert checkpoint.name == "step-000000004" and state["step"] == 4
    assert torch.equal(model.weight, torch.full((2, 3), 1.0))


def test_every_checkpoint_damaged_trains_from_scratch_with_the_initial_weights(tmp_path):
    only = _write(tmp_path, 4, 1.0)
    (only / checkpoints.STATE).write_bytes(b"not a torch file")  # the weights load, the state does not
    model = _model(7.0)
    with pytest.warns(RuntimeWarning, match=r"state\.pt.*training from step 0"):
        assert checkpoints.resume(tmp_path, model) is None
    assert torch.equal(model.weight, torch.full((2, 3), 7.0))  # not the checkpoint's 1.0


@pytest.mark.parametrize("name, payload, reader", [
    (checkpoints.WEIGHTS, b"\x08\x00\x00\x00\x00\x00\x00\x00{bad", lambda c: checkpoints.load_weights(_model(0), c / checkpoints.WEIGHTS)),
    (checkpoints.STATE, b"garbage", checkpoints.load_training_state),
    (checkpoints.META, b"{'not': json", checkpoints.read_meta),
])
def test_a_damaged_file_is_an_error_naming_it_and_the_remedy(tmp_path, name, payload, reader):
    checkpoint = _write(tmp_path, 4, 1.0)
    (checkpoint / name).write_bytes(payload)
    with pytest.raises(checkpoints.CheckpointError) as info:
        reader(checkpoint)
    text = str(info.value)
    assert str(checkpoint / name) in text and "delete" in text and "weights_only=False" not in text


def test_clean_partial_spares_a_live_writer_and_removes_a_dead_ones(tmp_path):
    live = tmp_path / f".step-000000004.tmp-{temp_owner_tag()}-abcd1234"
    dead_proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = temp_owner_tag().rpartition("~")[0]
    dead = tmp_path / f".step-000000008.tmp-{host}~{dead_proc.stdout.strip()}-abcd1234"
    legacy = tmp_path / ".step-000000012.tmp-xyz"  # written before owners were recorded
    other_host = tmp_path / ".step-000000016.tmp-elsewhere~1-abcd1234"
    for folder in (live, dead, legacy, other_host):
        folder.mkdir()
    checkpoints.clean_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_host.name])


def test_atomic_directory_replaces_an_existing_folder_whole(tmp_path):
    final = tmp_path / "final"
    with atomic_directory(final) as tmp:
        (tmp / "a").write_text("old")
    with atomic_directory(final) as tmp:
        (tmp / "b").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # no temporary left behind


HOLDER = textwrap.dedent("""
    import fcntl, sys, time
    handle = open(sys.argv[1], "a+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
""")


def test_cache_lock_waits_for_the_process_that_holds_it(tmp_path):
    run_dir = tmp_path / "pretrain" / "m-key"
    run_dir.mkdir(parents=True)
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir / ".lock"), str(ready), "1.5"])
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.02)
    waited: list = []
    t0 = time.monotonic()
    with cache_lock(run_dir, waiting=waited.append):
        assert time.monotonic() - t0 > 1.0  # the holder's 1.5 s sleep had to end first
    holder.wait()
    assert waited == [run_dir / ".lock"]
    with cache_lock(run_dir, waiting=waited.append):  # free now: no waiting
        pass
    assert len(waited) == 1
