"""SimCLR (Chen et al. 2020): two views per image, a projection MLP and the NT-Xent loss.

Negatives come from every rank: projections are all-gathered with gradients and every rank
computes the loss over the whole global batch; batch norm runs over the whole global batch
(SimCLR's global BN). A step on W processes therefore equals a 1-process step on the same batch.

Choices: temperature 0.2 (the SimCLR paper finds 0.1-0.5 best, lower for larger batches; 0.2
matches MoCo v2 so the two contrastive methods differ only in where negatives come from).
Optimizer AdamW (the runner has no LARS): lr 1e-3 per 256 images, weight decay 1e-4, cosine.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from astrobench.augment.pipeline import ViewPipeline
from astrobench import distributed
from astrobench.methods.base import NARROW_RESNET, TINY_RESNET, Method, create_backbone
from astrobench.methods.components import convert_to_global_bn, projection_mlp
from astrobench.methods.losses import nt_xent_loss
from astrobench.registry import register_method



@register_method("simclr")
class SimCLR(Method):
    """SimCLR with NT-Xent over all views of the global batch; ``embed`` = backbone features."""

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"backbone": "resnet10t", "backbone_options": TINY_RESNET, "proj_hidden_dim": 64, "proj_dim": 32},
        "quick": {"backbone": "resnet10t", "backbone_options": NARROW_RESNET, "proj_hidden_dim": 512, "proj_dim": 128},
        "gpu": {"backbone": "resnet18", "proj_hidden_dim": 512, "proj_dim": 128},
        "paper": {},
    }
    training: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        # quick: ~0.6 s/step at batch 64, 5x64x64, on 2 CPU cores -> ~2.5 min
        "quick": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "steps": 250, "batch_size": 64, "warmup_steps": 25},
        "gpu": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        "paper": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
    }
    default_views: ClassVar[tuple[str, ...]] = ("RR", "JC", "GN", "GR", "PS")

    def __init__(
        self,
        in_chans: int,
        image_size: int,
        views: ViewPipeline,
        *,
        backbone: str = "resnet50",
        backbone_options: dict[str, Any] | None = None,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        temperature: float = 0.2,
    ):
        super().__init__(in_chans, image_size, views)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.backbone = convert_to_global_bn(create_backbone(backbone, in_chans, image_size, **(backbone_options or {})))
        self.projector = projection_mlp(self.backbone.num_features, proj_hidden_dim, proj_dim)

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        view1, view2 = self.views(batch), self.views(batch)
        # one pass over both views: batch-norm statistics cover all 2N views, as in SimCLR
        z1, z2 = self.projector(self.backbone(torch.cat([view1, view2]))).chunk(2)
        loss = nt_xent_loss(distributed.gather_with_grad(z1), distributed.gather_with_grad(z2), self.temperature)
        return {"loss": loss}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)
