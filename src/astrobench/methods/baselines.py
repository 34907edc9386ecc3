"""Baselines every honest leaderboard carries: a random encoder and raw pixels (PCA)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from astrobench.augment.pipeline import ViewPipeline
from astrobench.methods.base import NARROW_RESNET, TINY_RESNET, Method, create_backbone
from astrobench.registry import register_method


@register_method("random")
class RandomEncoder(Method):
    """A randomly initialised timm encoder (seeded), never trained: the floor any method must beat."""

    trainable = False
    # the same backbones as the CNN methods at each profile
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"backbone": "resnet10t", "backbone_options": TINY_RESNET},
        "quick": {"backbone": "resnet10t", "backbone_options": NARROW_RESNET},
    }

    def __init__(self, in_chans: int, image_size: int, views: ViewPipeline, backbone: str = "resnet50",
                 backbone_options: dict[str, Any] | None = None):
        super().__init__(in_chans, image_size, views)
        self.backbone = create_backbone(backbone, in_chans, image_size, **(backbone_options or {}))

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise RuntimeError("the random encoder is never trained (trainable = False)")

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


@register_method("pixels")
class PixelPCA(Method):
    """Raw normalised pixels projected on their first principal components (fitted on train images)."""

    trainable = False
    profiles: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"n_components": 16}}

    def __init__(self, in_chans: int, image_size: int, views: ViewPipeline, n_components: int = 128):
        super().__init__(in_chans, image_size, views)
        n_pixels = in_chans * views.out_size * views.out_size
        if not 0 < n_components <= n_pixels:
            raise ValueError(f"pixels: n_components must be in [1, {n_pixels}], got {n_components}")
        self.n_components = n_components
        self.register_buffer("mean", torch.zeros(n_pixels))
        self.register_buffer("components", torch.zeros(n_pixels, n_components))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise RuntimeError("the pixel baseline is fitted in closed form (trainable = False)")

    @torch.no_grad()
    def initialize(self, train_images: torch.Tensor) -> None:
        x = train_images.reshape(train_images.shape[0], -1).double()
        if x.shape[0] < self.n_components:
            raise ValueError(
                f"pixels: {x.shape[0]} training images cannot give {self.n_components} principal components"
            )
        mean = x.mean(dim=0)
        # economy SVD of the centred data: right singular vectors are the principal axes
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        self.mean.copy_(mean.float())
        self.components.copy_(vh[: self.n_components].T.float())
        self.fitted.fill_(True)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if not bool(self.fitted):
            raise RuntimeError("pixels: embed() before initialize(): the PCA has not been fitted")
        x = images.reshape(images.shape[0], -1)
        return (x - self.mean) @ self.components
