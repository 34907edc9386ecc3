"""The small interface every method shares (timm-style: one decorator registers, same methods).

A method is an ``nn.Module`` with explicit constructor parameters (its hyperparameters), a
``training_step`` returning ``{"loss": ..., **logged scalars}`` and an ``embed`` for downstream
tasks. Everything else (momentum encoders, queues, heads) is composed inside the method's file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from astrobench.augment.pipeline import ViewPipeline

# Small ResNets for the CPU profiles: timm's resnet10t made narrower (same algorithm, fewer
# channels). Every CNN method and the random baseline use these, so rows stay comparable.
NARROW_RESNET = {"channels": (32, 64, 128, 256), "stem_width": 16}
TINY_RESNET = {"channels": (8, 16, 32, 64), "stem_width": 8}


class Method(nn.Module, ABC):
    """Base class of every registered method.

    Constructor contract: ``__init__(self, in_chans, image_size, views, *, <typed hyperparameters>)``.
    ``views`` is the ``ViewPipeline`` (augmentations + normalisation) built by the runner from the
    config; ``embed`` receives already-normalised images (``views.eval_view``).

    Class attributes:
    - ``profiles``: per profile (smoke/quick/paper), overrides of the constructor defaults
      (sizes only: a profile never changes the algorithm).
    - ``training``: per profile, overrides of the runner's training settings (batch size, steps,
      optimizer, learning rate) where the method's paper uses other defaults.
    - ``default_views``: augmentation codes used when the config names none.
    - ``trainable``: False for baselines fitted in closed form (``initialize``) or not at all.
    - ``label_field``: set by methods that train on labels (the supervised baseline).
    """

    registered_name: ClassVar[str]
    # bump when a change outside this class's module changes what it trains (its own module's source
    # is hashed into every cache key anyway: benchmark/identity.py)
    version: ClassVar[str] = "1"
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    training: ClassVar[dict[str, dict[str, Any]]] = {}
    default_views: ClassVar[tuple[str, ...]] = ()
    trainable: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = False

    def __init__(self, in_chans: int, image_size: int, views: ViewPipeline):
        super().__init__()
        self.in_chans = int(in_chans)
        self.image_size = int(image_size)
        self.views = views

    @abstractmethod
    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One optimisation step's forward pass on a flux-space batch; returns ``{"loss": ...}``."""

    @abstractmethod
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) normalised images -> (B, D) representations."""

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # DistributedDataParallel reduces gradients of whatever runs through forward()
        return self.training_step(batch)

    @classmethod
    def check_training_set(cls, options: dict[str, Any], n_images: int, global_batch: int) -> str | None:
        """Before any method trains: raise ``ValueError`` where ``options`` cannot train on
        ``n_images`` images in global batches of ``global_batch``; return a note where they can
        but the result would be doubtful (the runner prints it). Most methods have nothing to say."""
        return None

    def initialize(self, train_images: torch.Tensor) -> None:
        """Closed-form fitting for non-trainable baselines; gradient-trained methods ignore it."""

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Hook after each optimizer step (momentum-encoder updates, schedules)."""


def create_backbone(name: str, in_chans: int, image_size: int, **model_args: Any) -> nn.Module:
    """A timm model without classifier (``num_classes=0``): ``forward`` returns pooled features.

    Transformer families take the image size (their position embeddings depend on it); CNNs
    ignore it. ``model_args`` are explicit architecture overrides (``patch_size``, ``drop_path_rate``).
    """
    import timm

    try:
        return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, img_size=image_size, **model_args)
    except TypeError as exc:
        if "img_size" not in str(exc):
            raise
        return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, **model_args)
    except RuntimeError as exc:  # timm raises RuntimeError for unknown names
        raise ValueError(f"unknown timm backbone {name!r}: {exc}") from exc
