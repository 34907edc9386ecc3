"""A view pipeline: registered ops by code, then normalisation, then a fixed output size."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from astrobench.augment.base import Augmentation, AugBatch
from astrobench.datasets.normalize import Normalizer
from astrobench.registry import AUGMENTATIONS


class ViewPipeline:
    """Makes random views (training) and the deterministic view (embedding) of a batch.

    ``codes`` are registered augmentation names, ``params`` their constructor arguments by code.
    Photometric ops run before geometric ones; the normaliser runs last, then a centre crop to
    ``out_size`` (the size jitter-crop produces), so training and evaluation see the same shape.
    """

    def __init__(
        self,
        codes: Sequence[str],
        params: dict[str, dict[str, Any]] | None,
        normalizer: Normalizer,
        out_size: int,
    ):
        params = dict(params or {})
        unknown = sorted(set(params) - set(codes))
        if unknown:
            raise ValueError(f"augmentation parameters given for {unknown}, which are not in the views {list(codes)}")
        ops: list[Augmentation] = []
        for code in codes:
            cls = AUGMENTATIONS.get(code)
            op = cls(**params.get(code, {}))
            if op.needs_flux and not normalizer.is_flux:
                raise ValueError(f"augmentation {code} needs flux images; this dataset holds RGB composites")
            ops.append(op)
        self.codes = tuple(codes)
        self.ops = [op for op in ops if not op.geometric] + [op for op in ops if op.geometric]
        self.normalizer = normalizer
        self.out_size = int(out_size)

    def config(self) -> dict[str, Any]:
        return {
            "codes": list(self.codes),
            "params": {op.code: op.params() for op in self.ops},
            "out_size": self.out_size,
        }

    def __call__(self, batch: AugBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        for op in self.ops:
            batch = op(batch, generator)
        return self._finish(batch)

    def eval_view(self, batch: AugBatch) -> torch.Tensor:
        return self._finish(batch)

    def _finish(self, batch: AugBatch) -> torch.Tensor:
        image = self.normalizer(batch["image"], batch.get("mask"))
        return centre_crop(image, self.out_size)


def centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"cannot crop {size}x{size} from images of {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top : top + size, left : left + size]
