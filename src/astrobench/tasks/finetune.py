"""The fine-tuning protocol shared by the tasks: the method's backbone plus a linear head, trained.

``finetune_classifier`` trains ``inputs.model`` (already a copy: the runner hands each fine-tuning
run its own) together with a new head on the labelled training subset, then predicts the evaluation
split from the deterministic view (``model.views.eval_view``). The recipe, and why:

- **Head**: batch norm without affine parameters, then a linear layer whose weights start at zero
  and whose bias starts at the log of the training labels' class frequencies (add-one smoothed).
  The backbones' features come at any scale (an untrained ResNet's pooled features have a standard
  deviation of ~0.02 in eval mode and ~0.35 in train mode; MAE's ~0.1), so one head learning rate
  cannot suit them all unless the head standardises its input (MAE's linear-probe recipe). Starting
  at the prior means the first loss is the labels' entropy and every later step learns something
  beyond the class frequencies (a randomly initialised 180-way head spends its first steps there).
- **Optimiser**: AdamW, backbone ``backbone_lr`` and head ``head_lr`` (10x: the head starts from
  nothing), linear warm-up then cosine decay.
- **Views**: the method's geometric augmentations (``RR``, ``JC``, ``FL``: a galaxy's redshift,
  dwarf status and morphology do not change when it is rotated, flipped or shifted) plus ``RR``.
  Without augmentation the 180-way head memorises the training set (training loss 0.1, test loss
  6.8 > the prior's 4.7). The photometric ones (``GN``, ``GR``, ``PS``, ``MK``) are left out: they
  make the training images noisier or blurrier than the ones predicted, for no gain (random encoder,
  ``quick`` redshift, σ_MAD: RR 0.041, RR+GN 0.044, RR+GR 0.040, MoCo's RR+JC+GN+GR+PS 0.046).
  A method whose ``views`` is not a ``ViewPipeline`` (a plugin's) keeps its own.
- **Batch-norm recalibration**: after training, every batch norm's running statistics are
  recomputed from the eval views of up to ``recalibration_rows`` training objects. Training views are
  resampled (rotation interpolates, which smooths pixel noise) and an untrained encoder's running
  statistics never described any input, so the statistics the predictions use are measured on the
  inputs they are made on.

Several classification targets can share one backbone: ``targets`` is (N, G) with -1 where a
target is missing, the head has ``sum(n_classes)`` outputs and the loss is the sum over targets of
the cross-entropy over the rows that have that target.

Sizes come from the run profile (``profiles.FINETUNE_PROFILES``); a profile changes sizes, never the algorithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from astrobench.datasets.batches import make_batch
from astrobench.profiles import FINETUNE_PROFILES
from astrobench.tasks.base import FinetuneInputs
from astrobench.training import FiniteGuard, warmup_cosine

# label-preserving augmentation added when the method's views lack it (rotation with flips)
FINETUNE_ROTATION = "RR"


@dataclass(frozen=True)
class FinetuneSettings:
    steps: int
    batch_size: int
    backbone_lr: float = 1e-3
    head_lr: float = 1e-2  # 10x the backbone's: the head starts from zero knowledge
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    eval_batch_size: int = 256
    recalibration_rows: int = 2048  # training objects whose eval views re-measure batch-norm statistics


def settings_for(profile: str) -> FinetuneSettings:
    if profile not in FINETUNE_PROFILES:
        raise ValueError(f"no fine-tuning settings for profile {profile!r}; known: {sorted(FINETUNE_PROFILES)}")
    return FinetuneSettings(**FINETUNE_PROFILES[profile])


@dataclass
class FinetuneOutput:
    probabilities: list[np.ndarray]  # per target: (n_eval, n_classes) float64
    eval_indices: np.ndarray  # dataset rows the probabilities belong to, in that order
    train_indices: np.ndarray  # the labelled subset it was trained on
    losses: list[float] = field(default_factory=list)  # training loss per step
    settings: FinetuneSettings | None = None
    prior_entropy: float | None = None  # the loss of the initial head (the class frequencies), summed over targets

    def details(self) -> dict:
        return {
            "n_train": int(self.train_indices.size),
            "steps": self.settings.steps if self.settings else len(self.losses),
            "batch_size": self.settings.batch_size if self.settings else None,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
            "prior_entropy": self.prior_entropy,
        }


def finetune_views(views: Any) -> Any:
    """The views fine-tuning trains on: the method's geometric ops plus rotation (see module doc)."""
    from astrobench.augment.pipeline import ViewPipeline

    if not isinstance(views, ViewPipeline):
        return views
    geometric = [op for op in views.ops if op.geometric]
    codes = [op.code for op in geometric]
    params = {op.code: op.params() for op in geometric}
    if FINETUNE_ROTATION not in codes:
        codes.insert(0, FINETUNE_ROTATION)
    return ViewPipeline(codes, params, views.normalizer, views.out_size)


class PriorHead(nn.Module):
    """Batch norm (no affine) + linear layer with zero weights and log-prior biases per target."""

    def __init__(self, in_features: int, n_classes: Sequence[int], targets: np.ndarray):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False)
        self.linear = nn.Linear(in_features, int(sum(n_classes)))
        nn.init.zeros_(self.linear.weight)
        biases, entropy = [], 0.0
        for g, count in enumerate(n_classes):
            labelled = targets[:, g][targets[:, g] >= 0]
            frequency = (np.bincount(labelled, minlength=count) + 1.0) / (labelled.size + count)
            biases.append(np.log(frequency))
            entropy += float(-(frequency * np.log(frequency)).sum())
        with torch.no_grad():
            self.linear.bias.copy_(torch.as_tensor(np.concatenate(biases), dtype=torch.float32))
        self.prior_entropy = entropy

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(features.float()))


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
    """Fine-tune backbone + head on ``train_indices``; class probabilities of ``eval_split``."""
    settings = settings or settings_for(inputs.profile)
    targets = np.asarray(targets)
    targets = targets[:, None] if targets.ndim == 1 else targets
    n_classes = [int(c) for c in n_classes]
    if targets.shape[1] != len(n_classes):
        raise ValueError(f"{targets.shape[1]} target columns but {len(n_classes)} class counts")
    if np.any(targets >= np.asarray(n_classes)[None, :]):
        raise ValueError("a fine-tuning target is outside its class range")
    train_indices = np.asarray(train_indices)
    if train_indices.size < 2:  # batch statistics (the head's batch norm) need two objects
        raise ValueError(f"fine-tuning needs at least two labelled training objects, got {train_indices.size}")
    if eval_split not in inputs.splits or len(inputs.splits[eval_split]) == 0:
        raise ValueError(f"split {eval_split!r} is missing or empty")
    eval_indices = np.asarray(inputs.splits[eval_split])
    device = torch.device(inputs.device)
    model = inputs.model.to(device)
    train_views = finetune_views(model.views)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    rng = np.random.default_rng(seed)
    view_generator = torch.Generator().manual_seed(seed)
    offsets = np.concatenate([[0], np.cumsum(n_classes)])

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # any dropout inside the backbone
        model.eval()
        with torch.no_grad(), autocast:
            probe = make_batch(inputs.data, train_indices[:2], device)
            feature_dim = int(model.embed(model.views.eval_view(probe)).shape[1])
        head = PriorHead(feature_dim, n_classes, targets[train_indices]).to(device)
        backbone_params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": backbone_params, "lr": settings.backbone_lr},
                {"params": head.parameters(), "lr": settings.head_lr},
            ],
            weight_decay=settings.weight_decay,
        )
        warmup = max(1, int(settings.warmup_fraction * settings.steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, settings.steps))
        guard = FiniteGuard(device)
        target_tensor = torch.as_tensor(targets, dtype=torch.long)
        step_losses: list[torch.Tensor] = []
        model.train()
        head.train()
        for step in range(settings.steps):
            size = min(settings.batch_size, train_indices.size)
            rows = rng.choice(train_indices, size=size, replace=False)
            batch = make_batch(inputs.data, rows, device)
            batch_targets = target_tensor[rows].to(device)
            with autocast:
                logits = head(model.embed(train_views(batch, view_generator))).float()
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
            guard.observe(step, loss)
            if (step + 1) % 10 == 0 or step + 1 == settings.steps:  # one sync per 10 steps, not per step
                bad = guard.first_bad_step()
                if bad is not None:
                    raise FloatingPointError(f"fine-tuning loss is not finite at step {bad}")
        losses = [float(v) for v in torch.stack(step_losses).cpu()] if step_losses else []

        recalibration = rng.permutation(train_indices)[: settings.recalibration_rows]
        recalibrate_batch_norm(
            [model, head],
            lambda rows: head(model.embed(model.views.eval_view(make_batch(inputs.data, rows, device)))),
            recalibration, settings.eval_batch_size, autocast,
        )
        model.eval()
        head.eval()
        chunks: list[torch.Tensor] = []
        with torch.no_grad(), autocast:
            for start in range(0, eval_indices.size, settings.eval_batch_size):
                batch = make_batch(inputs.data, eval_indices[start : start + settings.eval_batch_size], device)
                chunks.append(head(model.embed(model.views.eval_view(batch))).float().cpu())
    logits = torch.cat(chunks).double()
    probabilities = [
        torch.softmax(logits[:, offsets[g] : offsets[g + 1]], dim=1).numpy() for g in range(len(n_classes))
    ]
    return FinetuneOutput(probabilities, eval_indices, np.sort(train_indices), losses, settings, head.prior_entropy)


@torch.no_grad()
def recalibrate_batch_norm(modules: Sequence[nn.Module], forward: Any, rows: np.ndarray, batch_size: int,
                           autocast: Any) -> None:
    """Recompute every batch norm's running statistics in ``modules`` as the plain average over
    ``forward(rows_chunk)`` for chunks of ``rows`` (nothing else runs in train mode: no dropout)."""
    norms = [m for module in modules for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or rows.size < 2:
        return
    for module in modules:
        module.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None = cumulative average over the batches seen
        m.train()
    # equal chunks of at least two rows: a batch norm in train mode needs two values per channel
    for chunk in np.array_split(rows, max(1, min(math.ceil(rows.size / batch_size), rows.size // 2))):
        with autocast:
            forward(chunk)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
