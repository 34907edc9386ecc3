"""Pieces every training loop shares (pretraining, fine-tuning, a plugin's own): the learning-rate
schedule and the non-finite guard. Config-free; only torch."""

from __future__ import annotations

import math
from typing import Callable

import torch

from astrobench import distributed


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor for ``LambdaLR``: linear warm-up over ``warmup_steps``, then cosine decay
    to 0 at ``total_steps`` (held there after)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class FiniteGuard:
    """The first step whose loss (or gradient norm) was not finite, tracked on the device.

    ``observe`` costs no host synchronisation; ``first_bad_step`` syncs once (and, with
    ``across_ranks``, takes every rank's view), so a loop checks every N steps, not every step.
    """

    def __init__(self, device: torch.device | str, across_ranks: bool = False):
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.across_ranks = across_ranks

    def observe(self, step: int, *values: torch.Tensor) -> None:
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values]).all()
        self.first_bad = torch.where(~finite & (self.first_bad < 0), step, self.first_bad)

    def first_bad_step(self) -> int | None:
        bad = self.first_bad.clone()
        if self.across_ranks and distributed.world_size() > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        value = int(bad)
        return value if value >= 0 else None
