"""Embeddings of every object of a dataset: computed once per (model, data), shared by every task,
protocol and seed, and cached as ``<cache>/embeddings/<key>.npy``."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from astrobench import distributed
from astrobench.datasets.batches import make_batch
from astrobench.datasets.schema import SurveyData
from astrobench.fsutil import atomic_write_bytes
from astrobench.methods.base import Method

EMBED_BATCH = 256


@torch.no_grad()
def embed(model: Method, data: SurveyData, device: torch.device, batch_size: int = EMBED_BATCH,
          progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Embeddings (float32, one row per object, in row order) of ``data`` through ``model``'s
    evaluation view; in a distributed run each rank embeds its share and all gather the rows."""
    model.eval()
    model.to(device)
    return embed_rows(lambda batch: model.embed(model.views.eval_view(batch)), data, device, batch_size,
                      progress)


@torch.no_grad()
def embed_rows(embed_batch: Callable[[dict], torch.Tensor], data: SurveyData, device: torch.device,
               batch_size: int = EMBED_BATCH, progress: Callable[[int, int], None] | None = None,
               with_ivar: bool = True) -> np.ndarray:
    """``embed_batch`` over every row of ``data`` in batches (the caller sets eval mode), float32 rows
    in row order; each rank embeds a strided share and all gather the rows."""
    n = len(data)
    rank, world = distributed.rank(), distributed.world_size()
    rows = np.arange(rank, n, world)  # strided shards: gathering restores order by construction
    chunks = []
    for start in range(0, len(rows), batch_size):
        batch = make_batch(data, rows[start : start + batch_size], device, with_ivar=with_ivar)
        chunks.append(embed_batch(batch).float().cpu())
        if progress is not None:
            progress(min(start + batch_size, len(rows)) * world, n)
    local = torch.cat(chunks) if chunks else torch.zeros(0)
    return distributed.gather_strided_rows(local, n, device).numpy().astype(np.float32)


def cached_embeddings(model: Method, data: SurveyData, device: torch.device, path: Path, label: str,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The embeddings stored at ``path``, or computed, checked finite and stored there (rank 0 writes).

    A stored file that does not load as one finite row per object is named in a warning and
    computed again (it is a cache: nothing is lost)."""
    if path.is_file():
        try:
            stored = np.load(path, allow_pickle=False)
            if stored.ndim != 2 or stored.shape[0] != len(data) or not np.isfinite(stored).all():
                raise ValueError(f"shape {stored.shape} or values do not fit {len(data)} objects")
            return stored
        except (OSError, ValueError, EOFError) as exc:
            warnings.warn(f"{path}: damaged embeddings ({exc}); computing them again", RuntimeWarning, stacklevel=2)
    emb = embed(model, data, device, progress=progress)
    if not np.isfinite(emb).all():
        raise FloatingPointError(f"{label}: non-finite embeddings; nothing was written")
    if distributed.rank() == 0:
        buffer = io.BytesIO()
        np.save(buffer, emb)
        atomic_write_bytes(path, buffer.getvalue())
    return emb
