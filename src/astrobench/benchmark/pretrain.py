"""The pretraining loop: stateless data order, checkpoints, resume, non-finite guard, throughput.

The batch of step ``s`` is a pure function of (seed, s): a stream of per-epoch permutations cut
into global batches, each rank taking its slice. Resuming therefore needs only the step number
plus the optimizer, scheduler and RNG states that the checkpoint holds.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from astrobench import distributed
from astrobench.benchmark import checkpoints
from astrobench.datasets.batches import ResidentRows, fits_on_device, make_batch
from astrobench.benchmark.config import TrainConfig
from astrobench.datasets.schema import SurveyData
from astrobench.methods.base import Method
from astrobench.training import FiniteGuard, warmup_cosine

# Dense bf16 peak FLOP/s per device, for MFU; devices not listed report no MFU.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN/inf; the message names the step."""


@dataclass
class PretrainStats:
    steps: int
    global_batch: int
    wall_time_s: float
    images_per_s: float | None
    flops_per_image: float | None
    mfu: float | None
    resumed_from_step: int | None
    losses: list[tuple[int, float]] = field(default_factory=list)


@contextlib.contextmanager
def cache_lock(run_dir: Path, waiting: Callable[[Path], None] | None = None):
    """Hold ``<run_dir>/.lock`` (an exclusive ``flock``) while a model is trained into ``run_dir``.

    Identical concurrent runs share one pretraining: the first trains, the others wait and then
    find its final checkpoint. Under DDP only rank 0 locks (the ranks train together, so a lock per
    rank would deadlock); the barrier holds the other ranks until rank 0 has the lock. The lock
    file stays (deleting it would let a third process lock a file nobody else sees); the kernel
    releases the lock when its holder dies, so a killed run never blocks the next one.
    """
    import fcntl

    handle = None
    if distributed.rank() == 0:
        lock_path = run_dir / ".lock"
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(lock_path)
            fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        distributed.barrier()
        yield
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def batch_indices(n: int, seed: int, step: int, global_batch: int, rank: int, world: int) -> np.ndarray:
    """Rows of step ``step`` for ``rank``: deterministic in (seed, step), independent of history."""
    start = step * global_batch
    parts, taken = [], 0
    while taken < global_batch:
        epoch, offset = divmod(start + taken, n)
        part = _epoch_permutation(n, seed, epoch)[offset : offset + global_batch - taken]
        parts.append(part)
        taken += len(part)
    local = global_batch // world
    return np.concatenate(parts)[rank * local : (rank + 1) * local]


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    # one permutation per epoch, drawn once: at 200,000 rows a permutation per step costs more
    # host time than a GPU step
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).numpy()
    perm.setflags(write=False)
    return perm


def step_seed(seed: int, step: int, rank: int) -> int:
    return ((seed * 1_000_003 + step) * 1_009 + rank) % (2**63 - 1)


def build_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig, global_batch: int, device: torch.device):
    lr = cfg.lr * global_batch / 256  # linear scaling rule
    fused = device.type == "cuda"
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"train.optimizer {cfg.optimizer!r} is not one of ['adamw', 'sgd']")


def autocast_context(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"train.precision {cfg.precision!r} is not one of ['auto', 'bf16', 'fp32']")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)


def measure_flops_per_image(model: Method, batch: dict[str, Any], cfg: TrainConfig, device: torch.device) -> float | None:
    """FLOPs of one training step (forward + backward) per image, counted on a throwaway copy."""
    from torch.utils.flop_counter import FlopCounterMode

    rng = torch.get_rng_state()
    try:
        probe = copy.deepcopy(model)
        counter = FlopCounterMode(display=False)
        with counter, autocast_context(cfg, device):
            out = probe.training_step(batch)
            out["loss"].backward()
        n = batch["image"].shape[0]
        return counter.get_total_flops() / n
    except Exception:  # some exotic ops have no FLOP formula: report none rather than fail the run
        return None
    finally:
        torch.set_rng_state(rng)


def resident_data(cfg: TrainConfig, data: SurveyData, n_rows: int, device: torch.device, with_ivar: bool) -> bool:
    """Whether the training rows live on the device (``train.data_on_device``: auto = on a GPU
    when they fit in half its free memory)."""
    choice = _auto_flag(cfg.data_on_device, "train.data_on_device")
    return fits_on_device(data, n_rows, device, with_ivar) if choice is None else choice


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """``train.channels_last``: auto = on a GPU (convolutions on tensor cores want NHWC)."""
    choice = _auto_flag(cfg.channels_last, "train.channels_last")
    return device.type == "cuda" if choice is None else choice


def _auto_flag(value: str | bool, name: str) -> bool | None:
    if value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} {value!r} is not one of ['auto', true, false]")


def _to_device(positions: np.ndarray, device: torch.device) -> torch.Tensor:
    index = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.int64))
    if device.type == "cuda":
        index = index.pin_memory()  # the copy then leaves the host free to queue the step
    return index.to(device, non_blocking=True)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value
    return None


def pretrain(
    model: Method,
    data: SurveyData,
    train_index: np.ndarray,
    cfg: TrainConfig,
    seed: int,
    run_dir: Path,
    device: torch.device,
    meta: dict[str, Any],
    targets: np.ndarray | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> PretrainStats:
    """Train ``model`` for ``cfg.steps`` steps, resuming from the newest complete checkpoint."""
    rank, world = distributed.rank(), distributed.world_size()
    if cfg.batch_size % world:
        raise ValueError(f"train.batch_size {cfg.batch_size} is not divisible by the {world} processes")
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    global_batch = cfg.batch_size
    model.to(device)
    if use_channels_last(cfg, device):
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg, global_batch, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, cfg.steps))

    checkpoints.clean_partial(run_dir)
    start_step, resumed = 0, None
    found = checkpoints.resume(run_dir, model)  # a damaged newest checkpoint falls back, with a warning
    if found is not None:
        state = found[1]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoints.set_rng_state(state["rng"])
        start_step = resumed = int(state["step"])

    with_ivar = model.views.needs_ivar
    resident = None
    if resident_data(cfg, data, len(train_index), device, with_ivar):
        resident = ResidentRows(data, train_index, device, with_ivar, targets)

    def batch_at(step: int) -> dict[str, Any]:
        positions = batch_indices(len(train_index), seed, step, global_batch, rank, world)
        if resident is not None:  # no host gather, no synchronous copy: the GPU never waits
            return resident.batch(_to_device(positions, device))
        rows = train_index[positions]
        batch = make_batch(data, rows, device, with_ivar=with_ivar)
        if targets is not None:
            batch["target"] = torch.as_tensor(targets[rows], dtype=torch.long, device=device)
        return batch

    flops = measure_flops_per_image(model, batch_at(start_step), cfg, device) if start_step < cfg.steps else None
    if resumed is not None:  # the FLOP probe drew random numbers; the checkpoint's stream continues
        checkpoints.set_rng_state(state["rng"])

    runner = model
    if world > 1:
        runner = distributed.data_parallel(model)
    if cfg.compile:
        runner = torch.compile(runner)

    guard = FiniteGuard(device, across_ranks=True)
    losses: list[tuple[int, float]] = []
    pending_loss: list[tuple[int, torch.Tensor]] = []
    model.train()
    t0, timed_from = time.perf_counter(), start_step

    def check_finite(step: int) -> None:
        bad = guard.first_bad_step()  # one host sync per check, not per step
        if bad is not None:
            raise NonFiniteError(
                f"non-finite loss or gradient at step {bad} (checked at step {step}); "
                "nothing was written to the results store"
            )

    for step in range(start_step, cfg.steps):
        # augmentation randomness is a pure function of (seed, step, rank): resume needs no RNG
        # state, and ranks draw different views of their different images
        torch.manual_seed(step_seed(seed, step, rank))
        batch = batch_at(step)
        with autocast_context(cfg, device):
            out = runner(batch)
        loss = out["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        guard.observe(step, loss, grad_norm)  # no host sync
        optimizer.step()  # a non-finite step is caught at the next check, before any write
        scheduler.step()
        model.on_step_end(step, cfg.steps)
        pending_loss.append((step, loss.detach()))
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            check_finite(step)
            for s, value in pending_loss:
                losses.append((s, float(value)))
            pending_loss.clear()
            if progress is not None:
                elapsed = time.perf_counter() - t0
                ips = (done - timed_from) * global_batch / elapsed if elapsed > 0 else float("nan")
                progress(done, cfg.steps, {"loss": losses[-1][1], "images_per_s": ips})
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            check_finite(step)
            if rank == 0:
                checkpoints.write_checkpoint(
                    run_dir, done, model,
                    {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                    meta, cfg.keep_checkpoints,
                )
            distributed.barrier()
    check_finite(cfg.steps)
    wall = time.perf_counter() - t0
    trained = cfg.steps - start_step
    ips = trained * global_batch / wall if trained and wall > 0 else None
    peak = peak_flops(device)
    mfu = ips * flops / (peak * world) if (ips and flops and peak) else None
    return PretrainStats(
        steps=cfg.steps,
        global_batch=global_batch,
        wall_time_s=wall,
        images_per_s=ips,
        flops_per_image=flops,
        mfu=mfu,
        resumed_from_step=resumed,
        losses=losses,
    )
