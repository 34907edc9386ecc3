"""Per-band robust scaling for training: ``asinh(flux / scale_band)``, invalid pixels set to 0.

The scale is the per-band MAD-based noise level (1.4826 x MAD of valid pixels) measured on the
training images, so sky noise maps to ~1 and bright cores are compressed by the asinh. The band
list travels with the scales: applying a normaliser to data with other bands is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from astrobench.datasets.schema import DataError, SurveyData


@dataclass(frozen=True)
class Normalizer:
    bands: tuple[str, ...]
    scales: tuple[float, ...]
    is_flux: bool = True
    # the scales as a tensor per (device, dtype): made once, since a tensor made from host numbers
    # for a GPU is a copy the host waits for
    _scale_tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def fit(cls, data: SurveyData, max_images: int = 2048, seed: int = 0) -> "Normalizer":
        rng = np.random.default_rng(seed)
        n = len(data)
        idx = np.sort(rng.choice(n, size=min(n, max_images), replace=False))
        image = np.asarray(data.image[idx], dtype=np.float32)
        valid = ~np.asarray(data.mask[idx])
        scales = []
        for b, band in enumerate(data.bands):
            values = image[:, b][valid[:, b]]
            if values.size == 0:
                raise DataError(f"{data.origin}: band {band!r} has no valid pixel in {len(idx)} images")
            if not data.image_is_flux:
                scales.append(1.0)  # RGB composites are already display-scaled
                continue
            mad = 1.4826 * float(np.median(np.abs(values - np.median(values))))
            if not mad > 0:
                mad = float(np.std(values)) or 1.0
            scales.append(mad)
        return cls(tuple(data.bands), tuple(scales), data.image_is_flux)

    def check_bands(self, bands: tuple[str, ...] | list[str], where: str) -> None:
        if tuple(bands) != self.bands:
            raise DataError(
                f"{where}: bands {list(bands)} differ from the bands the model was trained on {list(self.bands)}"
            )

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        key = (str(image.device), image.dtype)
        if key not in self._scale_tensors:
            self._scale_tensors[key] = torch.tensor(self.scales, dtype=image.dtype).view(1, -1, 1, 1).to(image.device)
        scales = self._scale_tensors[key]
        out = image / scales  # a new tensor: the steps below may work in place on it
        if self.is_flux:
            out = fast_asinh(out, out=out)
        if mask is not None:
            out.masked_fill_(mask, 0.0)
        return out

    def invert(self, normalised: torch.Tensor) -> torch.Tensor:
        """Flux from normalised pixels (``sinh(x) * scale``; ``x * scale`` for RGB composites):
        for showing what a model sees or reconstructs. Masked pixels, set to 0, come back as 0."""
        scales = torch.tensor(self.scales, dtype=normalised.dtype, device=normalised.device).view(1, -1, 1, 1)
        return (torch.sinh(normalised) if self.is_flux else normalised) * scales

    def to_dict(self) -> dict:
        return {"bands": list(self.bands), "scales": list(self.scales), "is_flux": self.is_flux}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(tuple(d["bands"]), tuple(float(s) for s in d["scales"]), bool(d["is_flux"]))



def fast_asinh(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """asinh(x) as sign(x) (log((|x| + sqrt(x^2 + 1)) / 2) + log 2), several times faster than
    ``torch.asinh`` on CPU (which is not vectorised there); ``out`` may be ``x`` itself.

    The error is float32 rounding (~1e-7 relative, at least ~1e-7 absolute near 0), like
    ``torch.asinh``'s. ``hypot`` and the halved sum never overflow, so the formula holds up to the
    largest float32 (3.4e38). Two temporaries, the rest in place: at batch sizes, allocating and
    filling fresh memory costs about as much as the arithmetic.
    """
    a = x.abs()
    root = torch.hypot(a, torch.ones((), dtype=x.dtype, device=x.device))
    a.mul_(0.5).add_(root, alpha=0.5).log_().add_(math.log(2.0))  # inf stays inf
    return torch.copysign(a, x, out=out)
