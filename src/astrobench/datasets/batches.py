"""Batches of ``SurveyData`` rows as tensors on the run's device (never one Python object per galaxy).

Two ways to read, with the same values:

- :func:`make_batch` gathers the rows on the host (sorted, so memory-mapped files are read in
  order) and copies them to the device: for evaluation, figures, and training on a CPU.
- :class:`ResidentRows` copies a set of rows to the device once and serves each batch by an
  ``index_select`` there: the training loop on a GPU, where a host gather and a synchronous copy
  per step (45 MB for 256 images with ivar) would make the GPU wait for every batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from astrobench.datasets.schema import SurveyData

# Share of the device's free memory that a resident training set may take: the model, its
# optimizer and the activations of a step need the rest.
RESIDENT_MEMORY_FRACTION = 0.5
UPLOAD_CHUNK_ROWS = 4096  # rows gathered on the host per copy while uploading


def make_batch(data: SurveyData, index: np.ndarray, device: torch.device | str = "cpu",
               with_ivar: bool = True) -> dict[str, Any]:
    """The flux-space batch that ``Method.training_step`` and ``ViewPipeline`` consume.

    Keys: image, mask, (ivar, when the data have it and ``with_ivar``), psf_fwhm, ebv, pixel_scale
    as tensors on ``device``; bands as a tuple. ``index`` is sorted before reading so
    memory-mapped arrays are read in order.
    """
    index = np.asarray(index)
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    device = torch.device(device)
    pin = device.type == "cuda"

    def take(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        block = torch.from_numpy(np.ascontiguousarray(np.asarray(array[sorted_index])[inverse]))
        if pin:  # a copy from pinned memory does not block the host
            block = block.pin_memory()
        return block.to(device=device, dtype=dtype, non_blocking=True)

    batch: dict[str, Any] = {
        "image": take(data.image, torch.float32),
        "mask": take(data.mask, torch.bool),
        "psf_fwhm": take(data.psf_fwhm, torch.float32),
        "ebv": take(data.ebv, torch.float32),
        "pixel_scale": take(data.pixel_scale, torch.float32),
        "bands": tuple(data.bands),
    }
    if data.ivar is not None and with_ivar:
        batch["ivar"] = take(data.ivar, torch.float32)
    return batch


def resident_bytes(data: SurveyData, n_rows: int, with_ivar: bool) -> int:
    """Device memory that ``n_rows`` resident rows take (image, mask, ivar, per-image scalars)."""
    per_row = data.image[0].size * (4 + 1 + (4 if with_ivar and data.ivar is not None else 0))
    per_row += 4 * (2 + data.n_bands)
    return int(per_row * n_rows)


def fits_on_device(data: SurveyData, n_rows: int, device: torch.device, with_ivar: bool) -> bool:
    """Whether ``n_rows`` rows fit in :data:`RESIDENT_MEMORY_FRACTION` of the device's free memory;
    never on a CPU, where the host gather is already a read of memory."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return resident_bytes(data, n_rows, with_ivar) <= RESIDENT_MEMORY_FRACTION * free


class ResidentRows:
    """``rows`` of ``data`` copied to ``device`` once; ``batch(positions)`` serves rows
    ``rows[positions]`` (positions: an int64 tensor on the device) with no host work and no copy
    between host and device. ``targets`` (one int per dataset row), when given, travel too and
    come back as ``batch["target"]``.
    """

    def __init__(self, data: SurveyData, rows: np.ndarray, device: torch.device, with_ivar: bool = True,
                 targets: np.ndarray | None = None):
        rows = np.asarray(rows, dtype=np.int64)
        self.device, self.bands = device, tuple(data.bands)
        shape = (len(rows), *data.image.shape[1:])
        self.image = torch.empty(shape, dtype=torch.float32, device=device)
        self.mask = torch.empty(shape, dtype=torch.bool, device=device)
        self.ivar = torch.empty(shape, dtype=torch.float32, device=device) if with_ivar and data.ivar is not None else None
        for start in range(0, len(rows), UPLOAD_CHUNK_ROWS):
            chunk = make_batch(data, rows[start : start + UPLOAD_CHUNK_ROWS], device, with_ivar=self.ivar is not None)
            stop = start + chunk["image"].shape[0]
            self.image[start:stop] = chunk["image"]
            self.mask[start:stop] = chunk["mask"]
            if self.ivar is not None:
                self.ivar[start:stop] = chunk["ivar"]
        self.psf_fwhm = torch.as_tensor(np.asarray(data.psf_fwhm[rows], dtype=np.float32), device=device)
        self.ebv = torch.as_tensor(np.asarray(data.ebv[rows], dtype=np.float32), device=device)
        self.pixel_scale = torch.as_tensor(np.asarray(data.pixel_scale[rows], dtype=np.float32), device=device)
        self.target = None if targets is None else torch.as_tensor(np.asarray(targets)[rows], dtype=torch.long, device=device)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def batch(self, positions: torch.Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image.index_select(0, positions),
            "mask": self.mask.index_select(0, positions),
            "psf_fwhm": self.psf_fwhm.index_select(0, positions),
            "ebv": self.ebv.index_select(0, positions),
            "pixel_scale": self.pixel_scale.index_select(0, positions),
            "bands": self.bands,
        }
        if self.ivar is not None:
            out["ivar"] = self.ivar.index_select(0, positions)
        if self.target is not None:
            out["target"] = self.target.index_select(0, positions)
        return out
