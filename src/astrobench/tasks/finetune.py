"""The fine-tuning protocol shared by the tasks: the method's backbone plus a linear head, trained.

``finetune_classifier`` trains ``inputs.model`` (already a copy: the runner hands each fine-tuning
run its own) together with a new linear head on the labelled training subset. The backbone gets a
small learning rate and the head a larger one (AdamW, linear warm-up then cosine decay). Each step
draws a batch of training rows, reads it in flux space (``make_batch``), makes one random view
(``model.views(batch, generator)``: the method's own augmentations) and embeds it
(``model.embed``). The evaluation split is then predicted from the deterministic view
(``model.views.eval_view``).

Several classification targets can share one backbone: ``targets`` is (N, G) with -1 where a
target is missing, the head has ``sum(n_classes)`` outputs and the loss is the sum over targets of
the cross-entropy over the rows that have that target.

Sizes come from the run profile (``FINETUNE_PROFILES``); a profile changes sizes, never the algorithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from astrobench.benchmark.batches import make_batch
from astrobench.tasks.base import FinetuneInputs


@dataclass(frozen=True)
class FinetuneSettings:
    steps: int
    batch_size: int
    backbone_lr: float = 1e-4  # small: keep the pretrained representation, adapt it
    head_lr: float = 1e-3  # larger: the head starts from zero knowledge
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    eval_batch_size: int = 256


FINETUNE_PROFILES: dict[str, FinetuneSettings] = {
    "smoke": FinetuneSettings(steps=4, batch_size=8, eval_batch_size=64),
    "quick": FinetuneSettings(steps=200, batch_size=64),
    "paper": FinetuneSettings(steps=10_000, batch_size=256),
}


def settings_for(profile: str) -> FinetuneSettings:
    if profile not in FINETUNE_PROFILES:
        raise ValueError(f"no fine-tuning settings for profile {profile!r}; known: {sorted(FINETUNE_PROFILES)}")
    return FINETUNE_PROFILES[profile]


@dataclass
class FinetuneOutput:
    probabilities: list[np.ndarray]  # per target: (n_eval, n_classes) float64
    eval_indices: np.ndarray  # dataset rows the probabilities belong to, in that order
    train_indices: np.ndarray  # the labelled subset it was trained on
    losses: list[float] = field(default_factory=list)  # training loss per step
    settings: FinetuneSettings | None = None

    def details(self) -> dict:
        return {
            "n_train": int(self.train_indices.size),
            "steps": self.settings.steps if self.settings else len(self.losses),
            "batch_size": self.settings.batch_size if self.settings else None,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
        }


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def finetune_classifier(
    inputs: FinetuneInputs,
    targets: np.ndarray,
    n_classes: Sequence[int],
    train_indices: np.ndarray,
    *,
    seed: int,
    eval_split: str = "test",
    settings: FinetuneSettings | None = None,
) -> FinetuneOutput:
    """Fine-tune backbone + linear head on ``train_indices``; class probabilities of ``eval_split``."""
    settings = settings or settings_for(inputs.profile)
    targets = np.asarray(targets)
    targets = targets[:, None] if targets.ndim == 1 else targets
    n_classes = [int(c) for c in n_classes]
    if targets.shape[1] != len(n_classes):
        raise ValueError(f"{targets.shape[1]} target columns but {len(n_classes)} class counts")
    if np.any(targets >= np.asarray(n_classes)[None, :]):
        raise ValueError("a fine-tuning target is outside its class range")
    train_indices = np.asarray(train_indices)
    if train_indices.size == 0:
        raise ValueError("fine-tuning needs at least one labelled training object")
    if eval_split not in inputs.splits or len(inputs.splits[eval_split]) == 0:
        raise ValueError(f"split {eval_split!r} is missing or empty")
    eval_indices = np.asarray(inputs.splits[eval_split])
    device = torch.device(inputs.device)
    model = inputs.model.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    rng = np.random.default_rng(seed)
    view_generator = torch.Generator().manual_seed(seed)
    offsets = np.concatenate([[0], np.cumsum(n_classes)])

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # head initialisation and any dropout inside the backbone
        model.eval()
        with torch.no_grad(), autocast:
            probe = make_batch(inputs.data, train_indices[:2], device)
            feature_dim = int(model.embed(model.views.eval_view(probe)).shape[1])
        head = nn.Linear(feature_dim, int(offsets[-1])).to(device)
        backbone_params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": backbone_params, "lr": settings.backbone_lr},
                {"params": head.parameters(), "lr": settings.head_lr},
            ],
            weight_decay=settings.weight_decay,
        )
        warmup = max(1, int(settings.warmup_fraction * settings.steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _lr_factor(step, settings.steps, warmup)
        )
        target_tensor = torch.as_tensor(targets, dtype=torch.long)
        step_losses: list[torch.Tensor] = []
        model.train()
        for step in range(settings.steps):
            size = min(settings.batch_size, train_indices.size)
            rows = rng.choice(train_indices, size=size, replace=False)
            batch = make_batch(inputs.data, rows, device)
            batch_targets = target_tensor[rows].to(device)
            with autocast:
                logits = head(model.embed(model.views(batch, view_generator))).float()
            loss = logits.new_zeros(())
            for g in range(len(n_classes)):
                # rows without this target are ignored (ignore_index); a batch may lack a target entirely
                have = batch_targets[:, g] >= 0
                if bool(have.any()):
                    loss = loss + nn.functional.cross_entropy(
                        logits[have, offsets[g] : offsets[g + 1]], batch_targets[have, g]
                    )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step_losses.append(loss.detach())
            if (step + 1) % 10 == 0 or step + 1 == settings.steps:  # one sync per 10 steps, not per step
                _check_finite(step_losses, step + 1 - len(step_losses[-10:]))
        losses = [float(v) for v in torch.stack(step_losses).cpu()] if step_losses else []

        model.eval()
        chunks: list[torch.Tensor] = []
        with torch.no_grad(), autocast:
            for start in range(0, eval_indices.size, settings.eval_batch_size):
                batch = make_batch(inputs.data, eval_indices[start : start + settings.eval_batch_size], device)
                chunks.append(head(model.embed(model.views.eval_view(batch))).float().cpu())
    logits = torch.cat(chunks).double()
    probabilities = [
        torch.softmax(logits[:, offsets[g] : offsets[g + 1]], dim=1).numpy() for g in range(len(n_classes))
    ]
    return FinetuneOutput(probabilities, eval_indices, np.sort(train_indices), losses, settings)


def _check_finite(step_losses: list[torch.Tensor], first_step: int) -> None:
    recent = torch.stack(step_losses[-10:])
    finite = torch.isfinite(recent)
    if not bool(finite.all()):
        bad = int(torch.nonzero(~finite)[0, 0]) + first_step
        raise FloatingPointError(f"fine-tuning loss is not finite at step {bad}")
