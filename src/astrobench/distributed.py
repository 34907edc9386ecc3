"""Thin wrappers over ``torch.distributed`` that also work in a single process.

A core module: methods (gathered negatives, cross-rank batch norm), the training loop and the
runner all use it, so it sits below every layer that does.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def init_from_environment() -> None:
    """Join the process group that torchrun describes in the environment (no-op without one)."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def data_parallel(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` wrapped in DDP as the training loop runs it: gradients averaged over ranks, buffers
    left to each rank after the start (cross-rank batch norm and MoCo's queue keep their own in step).

    torch 2.14 renamed ``broadcast_buffers`` to ``forward_sync_buffers`` (which also syncs at
    init: harmless, every rank builds the same initial weights and buffers from the same seed).
    """
    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(model, forward_sync_buffers=False)
    return DistributedDataParallel(model, broadcast_buffers=False)


@contextlib.contextmanager
def leaving_group_after() -> Iterator[None]:
    """Run the block, then leave the process group: waiting for the peers if the block finished,
    at once if it raised (see ``_shutdown``)."""
    try:
        yield
    except BaseException:
        _shutdown(wait_for_peers=False)
        raise
    _shutdown(wait_for_peers=True)


def _shutdown(*, wait_for_peers: bool) -> None:
    """Leave the process group, freeing first what still holds it.

    A DDP wrapper caught in a reference cycle would outlive the group and free gloo's threads
    during interpreter exit, which aborts the process ("terminate called without an active
    exception", seen on a loaded CI machine); collecting it here frees it while the group lives.
    ``wait_for_peers`` (on success only) lets every rank finish before any tears down: a rank that
    failed must not wait in a barrier its peers, stuck in another collective, never reach.
    """
    if not is_distributed():
        return
    gc.collect()
    if wait_for_peers:
        dist.barrier()
    dist.destroy_process_group()


@torch.no_grad()
def gather_strided_rows(local: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """Rank r holds rows r, r+W, r+2W, ...; return all n rows in order on every rank (on the host)."""
    world = world_size()
    if world == 1:
        return local
    per_rank = -(-n // world)
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype)
    padded[: local.shape[0]] = local
    padded = padded.to(device)
    chunks = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(chunks, padded)
    stacked = torch.stack(chunks, dim=1).cpu()  # (per_rank, world, D): row i is [i // W, i % W]
    return stacked.reshape(per_rank * world, *local.shape[1:])[:n]


# -- collectives used inside methods (no-ops in a single process) ---------------------------------


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums every rank's gradient for the local slice.

    With each rank's loss taken over the gathered batch and DDP averaging gradients, the summed
    backward makes a W-rank step equal to a 1-process step on the whole batch. (torch's own
    ``torch.distributed.nn.functional.all_gather`` does the same but needs all-to-all, which
    gloo lacks on some builds; an all-reduce of the gradient works on every backend.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        ctx.local = x.shape[0]
        chunks = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(chunks, x)
        return torch.cat(chunks, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.local
        return grad[start : start + ctx.local]


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum is the summed gradient (an all-reduce again)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone().contiguous()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone().contiguous()
        dist.all_reduce(grad)
        return grad


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (equal shapes on every rank) from all ranks in rank order, keeping gradients."""
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks in rank order (keys for a queue, images to shuffle)."""
    if world_size() == 1:
        return x
    chunks = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(chunks, x.contiguous())
    return torch.cat(chunks, dim=0)


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks, differentiable (statistics of cross-rank batch norm)."""
    if world_size() == 1:
        return x
    return _AllReduceWithGrad.apply(x)


@torch.no_grad()
def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``x`` on every rank (random permutations drawn once, used everywhere)."""
    if world_size() == 1:
        return x
    x = x.contiguous()
    dist.broadcast(x, src)
    return x
