"""RotNet (Gidaris et al. 2018): predict which multiple of 90 degrees a view was rotated by."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from astrobench import register_method
from astrobench.augment import ViewPipeline
from astrobench.methods.base import Method, create_backbone


@register_method("rotnet")
class RotNet(Method):
    default_views = ("JC",)
    profiles = {"smoke": {"backbone": "resnet10t"}, "quick": {"backbone": "resnet18"}}
    training = {"quick": {"steps": 300, "batch_size": 64}}

    def __init__(self, in_chans: int, image_size: int, views: ViewPipeline, backbone: str = "resnet50"):
        super().__init__(in_chans, image_size, views)
        self.backbone = create_backbone(backbone, in_chans, image_size)
        self.head = nn.Linear(self.backbone.num_features, 4)

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        view = self.views(batch)
        # galaxies have no "up": rotation is only learnable from the view's own orientation cues,
        # which is exactly what this pretext task probes
        k = torch.randint(0, 4, (view.shape[0],), device=view.device)
        rotated = torch.stack([torch.rot90(v, int(r), dims=(1, 2)) for v, r in zip(view, k)])
        logits = self.head(self.backbone(rotated))
        loss = nn.functional.cross_entropy(logits, k)
        return {"loss": loss, "accuracy": (logits.argmax(1) == k).float().mean()}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)
