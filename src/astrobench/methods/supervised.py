"""The supervised baseline: the same backbone trained end to end on the task's labels.

Targets are class indices (``batch["target"]``: morphology classes, dwarf/non-dwarf, or redshift
bins); the runner passes ``num_classes`` and gives the method only the labelled rows of the label
budget the compared probe gets. Batch norm is global across processes (as in SimCLR), so results
do not depend on the GPU count. Optimizer: AdamW, lr 1e-3 per 256 images, weight decay 0.05.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from astrobench.augment.pipeline import ViewPipeline
from astrobench.methods.base import NARROW_RESNET, TINY_RESNET, Method, create_backbone
from astrobench.methods.components import convert_to_global_bn
from astrobench.registry import register_method


@register_method("supervised")
class Supervised(Method):
    """Backbone + linear classifier trained with cross-entropy; ``embed`` = backbone features."""

    uses_labels: ClassVar[bool] = True
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"backbone": "resnet10t", "backbone_options": TINY_RESNET},
        "quick": {"backbone": "resnet10t", "backbone_options": NARROW_RESNET},
        "gpu": {"backbone": "resnet18"},
        "paper": {},
    }
    training: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05},
        # quick: ~0.4 s/step at batch 64, 5x64x64, on 2 CPU cores -> ~2 min
        "quick": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05, "steps": 300, "batch_size": 64, "warmup_steps": 30},
        "gpu": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "steps": 3000},
        "paper": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05},
    }
    default_views: ClassVar[tuple[str, ...]] = ("RR", "JC")

    def __init__(
        self,
        in_chans: int,
        image_size: int,
        views: ViewPipeline,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        backbone_options: dict[str, Any] | None = None,
    ):
        super().__init__(in_chans, image_size, views)
        if num_classes < 2:
            raise ValueError(f"supervised training needs at least 2 classes, got {num_classes}")
        self.num_classes = int(num_classes)
        self.backbone = convert_to_global_bn(create_backbone(backbone, in_chans, image_size, **(backbone_options or {})))
        self.classifier = nn.Linear(self.backbone.num_features, num_classes)

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "target" not in batch:
            raise KeyError("the supervised method needs batch['target'] (class indices); the runner adds it")
        target = batch["target"]
        if target.dtype != torch.long:  # out-of-range indices are caught by cross_entropy itself
            raise ValueError(f"targets must be int64 class indices in [0, {self.num_classes}), got {target.dtype}")
        logits = self.classifier(self.backbone(self.views(batch)))
        loss = F.cross_entropy(logits.float(), target)
        accuracy = (logits.detach().argmax(dim=1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)
