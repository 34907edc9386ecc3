"""Baselines every honest leaderboard carries: the chance line (``constant``), a random encoder and
raw pixels (PCA). The astronomer's classical baseline (aperture magnitudes and colours) is
``classical.py``."""

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
        "gpu": {"backbone": "resnet18"},
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


@register_method("constant")
class Constant(Method):
    """The chance line: a 1-d representation equal to 1 for every object, so that each task's probe
    can only learn the labels' prior. What the built-in probes make of it (the redshift and dwarf
    linear cases are checked in tests/methods/test_baselines.py):

    - ``redshift`` · linear: the bin probabilities are the training frequencies of the bins, so
      z_phot = Σ p_i · centre_i is the training **mean** binned to bin centres (not the median: a
      probability-weighted centre is a mean), the same for every object. Predicting the training
      median instead gives a σ_MAD within a few thousandths of it and a lower η.
    - ``redshift`` · knn, and every other kNN or search protocol: all cosine distances tie, so the
      "neighbours" are k training objects picked by the tie order of the search, not by the data:
      the prediction is the mean (or vote) of k arbitrary labels, a noisy version of the prior.
      Read the linear row as the chance line.
    - ``dwarfs`` · linear: the draw is balanced, so P(dwarf) = 0.5 for every object; ROC-AUC is 0.5,
      and the predicted class is the first class on the tie (0, not a dwarf) for everybody, so
      accuracy is the fraction of non-dwarfs in the test split (the majority-class rate, not 0.5)
      and F1 is 0.
    - ``morphology`` · linear: each question answered with its training majority (the prior's
      argmax); vote-fraction regression predicts the training mean (R² ≈ 0).
    - ``finetune``: there is nothing to fine-tune; the head alone is fitted by a few SGD steps, so
      its probabilities only approach the prior (a dwarf P near 0.5 falls on either side).

    Measured on the quick simulated survey: redshift linear σ_MAD 0.0727 (η 50.4 %; the training
    median would give 0.0717, η 46.1 %), knn 0.0711 (η 41.1 %); dwarfs linear accuracy 0.837
    (ROC-AUC 0.5), knn 0.54 ± 0.03 over seeds 0-2.
    """

    trainable = False

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise RuntimeError("the constant baseline has nothing to train (trainable = False)")

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        # 1, not 0: a zero vector has no direction, and cosine-based probes would divide by its norm
        return torch.ones(images.shape[0], 1, dtype=torch.float32, device=images.device)
