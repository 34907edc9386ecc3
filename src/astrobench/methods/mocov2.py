"""MoCo v2 (Chen et al. 2020): a momentum key encoder, a queue of negatives, an MLP head, InfoNCE.

Independent of the number of processes:
- the queue is filled with the keys of *all* ranks (``Queue.enqueue`` gathers them), so every rank
  holds the same queue, and its size must be a multiple of the global batch;
- shuffle-BN without moving images: batch-norm statistics come from groups of ``bn_group_size``
  samples of the global batch, contiguous for queries and randomly permuted (one permutation drawn
  on rank 0 and broadcast) for keys, so a query and its key never share statistics. The groups are
  fixed by the global batch, not by the GPU count (``GlobalBatchNorm2d`` all-reduces per-group sums).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from astrobench.augment.pipeline import ViewPipeline
from astrobench import distributed
from astrobench.methods.base import NARROW_RESNET, TINY_RESNET, Method, create_backbone
from astrobench.methods.components import (
    Queue,
    bn_groups,
    convert_to_global_bn,
    make_momentum_copy,
    momentum_update,
    projection_mlp,
)
from astrobench.methods.losses import info_nce_loss
from astrobench.registry import register_method


QUEUE_SIZE = 65_536  # MoCo's ImageNet setting
# at most this fraction of the training images in the queue: MoCo holds 5% of ImageNet (65,536 of
# 1.28 M), its CIFAR-10 recipe 8% (4,096 of 50,000); a queue near the dataset's size holds older
# keys of the very images being queried, as hard false negatives
MAX_QUEUE_FRACTION = 0.125


@register_method("mocov2")
class MoCoV2(Method):
    """MoCo v2; ``embed`` = query-encoder backbone features (before the head)."""

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        # fewer steps than the paper: a faster key encoder (0.99, as in MoCo's CIFAR recipe). Queues:
        # at most 1/8 of each profile's training split (MAX_QUEUE_FRACTION; 70% of SYNTHETIC_SIZES).
        # (quick's former 4,096 keys of 4,200 images: its loss rose again from step ~130, the third epoch)
        "smoke": {"backbone": "resnet10t", "backbone_options": TINY_RESNET, "head_hidden_dim": 64, "head_dim": 32,
                  "queue_size": 32, "bn_group_size": 8, "momentum": 0.99},
        "quick": {"backbone": "resnet10t", "backbone_options": NARROW_RESNET, "head_hidden_dim": 512, "head_dim": 128,
                  "queue_size": 512, "bn_group_size": 32, "momentum": 0.99},
        # 10,000 steps: the key encoder at 0.996 (Stein et al.); 8 global batches of 35,000 images
        "gpu": {"backbone": "resnet18", "head_hidden_dim": 512, "head_dim": 128, "queue_size": 4096,
                "momentum": 0.996},
        # 140,000 training images: 16,384 keys (MoCo's 65,536 was 5% of ImageNet)
        "paper": {"queue_size": 16_384},
    }
    training: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"optimizer": "sgd", "lr": 0.03, "weight_decay": 1e-4, "momentum": 0.9},
        # quick: ~0.7 s/step at batch 64, 5x64x64, on 2 CPU cores -> ~2.3 min
        "quick": {"optimizer": "sgd", "lr": 0.12, "weight_decay": 1e-4, "momentum": 0.9, "steps": 200, "batch_size": 64,
                  "warmup_steps": 20},
        "gpu": {"optimizer": "sgd", "lr": 0.03, "weight_decay": 1e-4, "momentum": 0.9},
        "paper": {"optimizer": "sgd", "lr": 0.03, "weight_decay": 1e-4, "momentum": 0.9},
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
        head_hidden_dim: int = 2048,
        head_dim: int = 128,
        temperature: float = 0.2,
        momentum: float = 0.999,
        queue_size: int = QUEUE_SIZE,
        bn_group_size: int = 32,
    ):
        super().__init__(in_chans, image_size, views)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if bn_group_size < 2:
            raise ValueError(f"bn_group_size must be at least 2, got {bn_group_size}")
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.bn_group_size = int(bn_group_size)
        self.backbone = convert_to_global_bn(create_backbone(backbone, in_chans, image_size, **(backbone_options or {})))
        self.head = projection_mlp(self.backbone.num_features, head_hidden_dim, head_dim)
        self.backbone_k = make_momentum_copy(self.backbone)
        self.head_k = make_momentum_copy(self.head)
        self.queue = Queue(queue_size, head_dim)

    @classmethod
    def check_training_set(cls, options: dict[str, Any], n_images: int, global_batch: int) -> str | None:
        size = int(options.get("queue_size", QUEUE_SIZE))
        if size % global_batch:
            raise ValueError(f"mocov2: queue_size {size} is not a multiple of the global batch {global_batch} "
                             "(a batch of keys must never wrap around the end of the queue)")
        largest = max(global_batch, int(n_images * MAX_QUEUE_FRACTION) // global_batch * global_batch)
        if size >= n_images:
            raise ValueError(f"mocov2: queue_size {size} is not smaller than the {n_images} training images: the "
                             "queue would hold a key of every image, the query's own among its negatives; use "
                             f"--method-option mocov2.queue_size={largest} or fewer")
        if size > n_images * MAX_QUEUE_FRACTION:
            return (f"mocov2: queue_size {size} holds {size / n_images:.0%} of the {n_images} training images, so "
                    "many queries meet an older key of their own image among the negatives (MoCo's own "
                    f"settings hold 5-8%); {largest} or fewer avoids that")
        return None

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        view_q, view_k = self.views(batch), self.views(batch)
        local = view_q.shape[0]
        world, rank = distributed.world_size(), distributed.rank()
        total = local * world
        if total % self.bn_group_size:
            raise ValueError(f"the global batch {total} is not a multiple of bn_group_size {self.bn_group_size}")
        groups = total // self.bn_group_size
        with bn_groups(self.backbone, groups):  # queries: contiguous groups of the global batch
            q = self.head(self.backbone(view_q))
        with torch.no_grad():
            # shuffle-BN: keys are normalised in the groups of a randomly shuffled global batch
            perm = distributed.broadcast(torch.randperm(total, device=view_q.device))  # slot j holds sample perm[j]
            if world == 1:
                with bn_groups(self.backbone_k, groups):
                    k = self.head_k(self.backbone_k(view_k[perm]))[torch.argsort(perm)]
            else:  # the same groups without moving images: name each sample's group
                slot = torch.argsort(perm)[rank * local + torch.arange(local, device=view_q.device)]
                with bn_groups(self.backbone_k, groups, slot // self.bn_group_size):
                    k = self.head_k(self.backbone_k(view_k))
        # the queue is read before this batch's keys enter it (clone: enqueue writes in place)
        loss = info_nce_loss(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.enqueue(F.normalize(k.float(), dim=1))
        return {"loss": loss}

    def on_step_end(self, step: int, total_steps: int) -> None:
        momentum_update(self.backbone, self.backbone_k, self.momentum)
        momentum_update(self.head, self.head_k, self.momentum)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)
