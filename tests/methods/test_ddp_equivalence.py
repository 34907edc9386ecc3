"""Data parallelism changes nothing: one step of a global batch split over 2 real gloo processes
(DDP, wrapped as the training loop wraps it) gives the loss, gradients, queue and batch-norm statistics of one
process stepping on the whole batch."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
from method_helpers import AlternatingViews, blob_images  # noqa: E402

GLOBAL_BATCH, SIZE, CHANNELS = 8, 32, 5
TINY = {"backbone": "resnet10t", "backbone_options": {"channels": (8, 16, 32, 64), "stem_width": 8}}
CASES = {
    "simclr": {**TINY, "proj_hidden_dim": 32, "proj_dim": 16, "temperature": 0.2},
    # groups of 4: query groups lie within a rank, shuffled key groups straddle the two ranks
    "mocov2": {**TINY, "head_hidden_dim": 32, "head_dim": 16, "queue_size": 24, "bn_group_size": 4, "momentum": 0.9},
    "supervised": {**TINY, "num_classes": 4},
}


def build(name: str):
    from astrobench.registry import METHODS

    torch.manual_seed(0)  # the same initial weights and queue everywhere
    return METHODS.get(name)(in_chans=CHANNELS, image_size=SIZE, views=AlternatingViews(), **CASES[name])


def one_step(name: str, model, runner, rows: slice) -> dict[str, torch.Tensor]:
    images, kind = blob_images(GLOBAL_BATCH, size=SIZE, channels=CHANNELS)
    batch = {"image": images[rows], "mask": torch.zeros_like(images[rows], dtype=torch.bool), "target": kind[rows]}
    torch.manual_seed(1)  # MoCo's key shuffle (drawn on rank 0 and broadcast)
    model.train()
    loss = runner(batch)["loss"]
    loss.backward()
    result = {"loss": loss.detach().clone()}
    for pname, p in model.named_parameters():
        if p.grad is not None:
            result["grad." + pname] = p.grad.detach().clone()
    for bname, buf in model.named_buffers():
        if buf.is_floating_point():  # queue, running statistics
            result["buffer." + bname] = buf.detach().clone()
    return result


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from astrobench import distributed

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    with distributed.leaving_group_after():  # as the runner leaves the group
        local = GLOBAL_BATCH // world
        for name in CASES:
            model = build(name)
            ddp = distributed.data_parallel(model)  # as the training loop wraps it
            result = one_step(name, model, ddp, slice(rank * local, (rank + 1) * local))
            del ddp, model  # DDP's reducer holds the group: gone before the group is
            dist.all_reduce(result["loss"])
            result["loss"] /= world  # each rank's loss covers its own samples
            if rank == 0:
                torch.save(result, os.path.join(out_dir, f"{name}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return {name: torch.load(out / f"{name}.pt", weights_only=True) for name in CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_equal_one_process(name, two_rank_results):
    model = build(name)
    single = one_step(name, model, model, slice(0, GLOBAL_BATCH))
    multi = two_rank_results[name]
    assert set(single) == set(multi)
    assert any(key.startswith("grad.") for key in single)
    torch.testing.assert_close(multi["loss"], single["loss"], rtol=1e-5, atol=1e-6)
    for key in single:
        torch.testing.assert_close(multi[key], single[key], rtol=1e-4, atol=1e-5, msg=lambda m: f"{name} {key}: {m}")


def test_moco_queue_holds_the_keys_of_both_ranks(two_rank_results):
    model = build("mocov2")
    before = model.queue.keys.clone()
    single = one_step("mocov2", model, model, slice(0, GLOBAL_BATCH))
    after = two_rank_results["mocov2"]["buffer.queue.keys"]
    # the first 8 slots were replaced by this step's 8 keys (in global batch order), the rest kept
    assert not torch.allclose(after[:GLOBAL_BATCH], before[:GLOBAL_BATCH])
    torch.testing.assert_close(after[GLOBAL_BATCH:], before[GLOBAL_BATCH:])
    torch.testing.assert_close(after, single["buffer.queue.keys"], rtol=1e-4, atol=1e-5)
