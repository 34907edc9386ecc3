"""The contract of one augmentation: a batched op with parameters drawn per image."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, TypedDict

import torch


class AugBatch(TypedDict, total=False):
    """A batch in flux space, on any device. Ops return a new dict (never mutate the input)."""

    image: torch.Tensor  # (B, C, H, W) float
    mask: torch.Tensor  # (B, C, H, W) bool, True = invalid
    ivar: torch.Tensor  # (B, C, H, W) float, optional
    psf_fwhm: torch.Tensor  # (B, C) arcsec
    ebv: torch.Tensor  # (B,)
    pixel_scale: torch.Tensor  # (B,) arcsec / px
    bands: tuple[str, ...]
    # set False by a pipeline when nothing after this op uses ivar: an op that reads ivar may then
    # return none (skipping its update); absent means True
    keep_ivar: bool


class Augmentation(ABC):
    """One augmentation, registered under its code (``RR``, ``JC``, ...).

    ``p`` is the probability that the op is applied to a given image; parameters are drawn per
    image from ``generator`` so a run is reproducible. ``geometric`` ops (resampling) run after the
    photometric ones so that noise and PSF act on the unrotated image as the survey sees it.
    """

    code: ClassVar[str]
    version: ClassVar[str] = "1"  # part of every cache key and result identity (benchmark/identity.py)
    geometric: ClassVar[bool] = False
    needs_flux: ClassVar[bool] = False  # physically meaningless on RGB composites
    # whether the op's result depends on ``ivar`` (not merely updates it): a pipeline that does not
    # return ivar drops it after the last op that reads it, sparing the updates nobody uses, and
    # tells that op with ``batch["keep_ivar"] = False``
    reads_ivar: ClassVar[bool] = True
    # whether multiplying a plane by a constant before the op equals doing so after it (the image
    # it returns is linear in the image it gets, and any ivar update is a factor): a pipeline may
    # then carry a reddening's factors past it, to a later pass (``ops.PlaneScaleAugmentation``)
    commutes_with_plane_scale: ClassVar[bool] = False

    def __init__(self, p: float):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be in [0, 1], got {p}")
        self.p = p

    def draw_apply(self, batch_size: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """Bool (B,): which images this op touches. ``rand < p``, so p=1 always applies."""
        from astrobench.augment.functional import uniform

        return uniform((batch_size,), 0.0, 1.0, generator, device) < self.p

    @abstractmethod
    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> AugBatch:
        """Return the augmented batch."""

    def params(self) -> dict:
        """The constructor parameters, for config hashes and result provenance."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
