"""Contiguous blocks of ``SurveyData`` as tensor batches (never one Python object per galaxy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from astrobench.datasets.schema import SurveyData


def make_batch(data: SurveyData, index: np.ndarray, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The flux-space batch that ``Method.training_step`` and ``ViewPipeline`` consume.

    Keys: image, mask, (ivar), psf_fwhm, ebv, pixel_scale as tensors on ``device``; bands as a tuple.
    ``index`` is sorted before reading so memory-mapped arrays are read in order.
    """
    index = np.asarray(index)
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))

    def take(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        block = np.asarray(array[sorted_index])[inverse]
        return torch.from_numpy(np.ascontiguousarray(block)).to(device=device, dtype=dtype, non_blocking=True)

    batch: dict[str, Any] = {
        "image": take(data.image, torch.float32),
        "mask": take(data.mask, torch.bool),
        "psf_fwhm": take(data.psf_fwhm, torch.float32),
        "ebv": take(data.ebv, torch.float32),
        "pixel_scale": take(data.pixel_scale, torch.float32),
        "bands": tuple(data.bands),
    }
    if data.ivar is not None:
        batch["ivar"] = take(data.ivar, torch.float32)
    return batch
