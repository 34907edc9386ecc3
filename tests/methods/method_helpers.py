"""Shared helpers for the method tests: structured toy images and tiny view pipelines."""

from __future__ import annotations

import math

import torch
from safetensors.torch import load_file, save_file

torch.set_num_threads(2)


def blob_images(n: int, size: int = 32, channels: int = 5, kinds: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``kinds`` distinct galaxies (Gaussian blobs of different size, position,
    colour) plus noise; returns (images (n, C, S, S), kind of each image)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    kind = torch.arange(n) % kinds
    images = torch.empty(n, channels, size, size)
    for i in range(n):
        k = int(kind[i])
        cy = size / 2 + (size / 5) * math.cos(2 * math.pi * k / kinds)
        cx = size / 2 + (size / 5) * math.sin(2 * math.pi * k / kinds)
        width = 1.5 + 1.5 * k
        colour = torch.linspace(1.0, 0.2 + 0.6 * (k % 2), channels).view(channels, 1, 1)
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
        images[i] = 5 * colour * blob + 0.3 * torch.randn(channels, size, size, generator=g)
    return images, kind


def flux_batch(images: torch.Tensor, target: torch.Tensor | None = None) -> dict:
    batch = {"image": images, "mask": torch.zeros_like(images, dtype=torch.bool)}
    if target is not None:
        batch["target"] = target
    return batch


class RandomViews:
    """A tiny random pipeline (flip, 90-degree rotation, noise, brightness) with the
    ``ViewPipeline`` interface; augment/ops.py is another issue."""

    def __call__(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        x = batch["image"]
        b = x.shape[0]
        flip = torch.rand(b) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
        x = torch.stack([torch.rot90(img, int(k), dims=(-2, -1)) for img, k in zip(x, torch.randint(0, 4, (b,)))])
        x = x * (0.8 + 0.4 * torch.rand(b, 1, 1, 1)) + 0.3 * torch.randn_like(x)
        return x

    def eval_view(self, batch: dict) -> torch.Tensor:
        return batch["image"]


class AlternatingViews:
    """Deterministic views (no random numbers): odd calls the image, even calls its mirror image
    dimmed. A batch split over ranks gets exactly the views of the whole batch."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        self.calls += 1
        x = batch["image"]
        return x if self.calls % 2 else 0.8 * x.flip(-1)

    def eval_view(self, batch: dict) -> torch.Tensor:
        return batch["image"]


def train(model: torch.nn.Module, batches: list[dict], steps: int, lr: float, optimizer: str = "adamw") -> list[float]:
    """A minimal copy of the runner's loop: forward, backward, step, ``on_step_end``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    model.train()
    losses = []
    for step in range(steps):
        out = model(batches[step % len(batches)])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.on_step_end(step, steps)
        losses.append(float(out["loss"].detach()))
    return losses


def reload_through_safetensors(model: torch.nn.Module, fresh: torch.nn.Module, tmp_path) -> torch.nn.Module:
    """state_dict -> safetensors file -> ``fresh`` instance (different random init)."""
    path = tmp_path / "model.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, str(path))
    fresh.load_state_dict(load_file(str(path)), strict=True)
    return fresh
