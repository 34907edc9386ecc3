"""Exact cosine similarity search by chunked matrix product (torch; on the GPU when present).

Rows are L2-normalised once, then each chunk of queries is multiplied with the whole gallery:
memory is ``chunk x n_gallery`` floats, never ``n_queries x n_gallery``. A zero vector has
similarity 0 with everything (its norm is clamped, as in ``torch.nn.functional.normalize``).

Tie rule (documented, stable): among equal similarities the lower gallery index ranks first,
both inside the top k and at its boundary, so results never depend on the device or on how
``torch.topk`` happens to order equal values.

Self-matches: ``exclude[i]`` names one gallery row that query ``i`` must never retrieve (the query
itself when the queries are part of the gallery; -1 for none).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

DEFAULT_CHUNK_BYTES = 256 << 20  # similarity block per chunk of queries


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _normalised(x: np.ndarray | torch.Tensor, name: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be (n, dim), got shape {tuple(t.shape)}")
    t = t.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds non-finite values")
    return torch.nn.functional.normalize(t, dim=1, eps=1e-12)


def _prepare(queries, gallery, exclude, device, chunk_size):
    device = torch.device(device) if device is not None else default_device()
    q = _normalised(queries, "queries", device)
    g = _normalised(gallery, "gallery", device)
    if q.shape[0] == 0:
        raise ValueError("no queries: similarity search needs at least one query")
    if g.shape[0] == 0:
        raise ValueError("the gallery is empty")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]} but the gallery has {g.shape[1]}")
    if exclude is not None:
        exclude = torch.as_tensor(np.asarray(exclude), dtype=torch.long)
        if exclude.shape != (q.shape[0],):
            raise ValueError(f"exclude must hold one gallery index (or -1) per query, got shape {tuple(exclude.shape)}")
        if bool((exclude >= g.shape[0]).any()) or bool((exclude < -1).any()):
            raise ValueError("exclude holds indices outside the gallery")
        exclude = exclude.to(device)
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_CHUNK_BYTES // (4 * g.shape[0]))
    return device, q, g, exclude, int(chunk_size)


def _similarity_block(q: torch.Tensor, g: torch.Tensor, exclude: torch.Tensor | None, start: int) -> torch.Tensor:
    sim = q @ g.T
    if exclude is not None:
        rows = torch.arange(sim.shape[0], device=sim.device)
        cols = exclude[start : start + sim.shape[0]]
        keep = cols >= 0
        sim[rows[keep], cols[keep]] = float("-inf")
    return sim


def _order_ties_by_index(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by similarity descending, equal similarities by gallery index ascending."""
    by_index = torch.argsort(indices, dim=1)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_value), indices.gather(1, by_value)


def cosine_topk(
    queries: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by cosine similarity: (similarities (Q, k) float32, gallery indices (Q, k) int64).

    Best first; ties by lower gallery index (see module docstring). ``k`` must leave enough
    gallery rows once each query's excluded row is removed.
    """
    device, q, g, exclude, chunk_size = _prepare(queries, gallery, exclude, device, chunk_size)
    available = g.shape[0] - (1 if exclude is not None and bool((exclude >= 0).any()) else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} must be between 1 and the number of searchable gallery rows ({available})")
    out_values = np.empty((q.shape[0], k), dtype=np.float32)
    out_indices = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], chunk_size):
        sim = _similarity_block(q[start : start + chunk_size], g, exclude, start)
        # One extra place shows ties straddling the k-th place (the (k+1)-th equals the k-th): topk
        # may keep any of the equal rows there, so those rows are redone with a stable full sort.
        extra = min(k + 1, g.shape[0])
        values, indices = torch.topk(sim, extra, dim=1, largest=True, sorted=True)
        tied = values[:, k] == values[:, k - 1] if extra > k else torch.zeros_like(values[:, 0], dtype=torch.bool)
        ambiguous = torch.nonzero(tied).flatten()
        values, indices = values[:, :k], indices[:, :k]
        if ambiguous.numel():
            full = torch.sort(sim[ambiguous], dim=1, descending=True, stable=True)
            values[ambiguous] = full.values[:, :k]
            indices[ambiguous] = full.indices[:, :k]
        values, indices = _order_ties_by_index(values, indices)
        out_values[start : start + len(values)] = values.cpu().numpy()
        out_indices[start : start + len(values)] = indices.cpu().numpy()
    return out_values, out_indices


def cosine_ranking(
    queries: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor,
    *,
    exclude: np.ndarray | None = None,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Full rankings of the gallery, chunk by chunk: yields (first query row, ranked indices (q, n)).

    Each ranking holds every gallery row except the query's excluded one (so n = n_gallery − 1
    when ``exclude`` is given), best first, ties by lower gallery index.
    """
    device, q, g, exclude, chunk_size = _prepare(queries, gallery, exclude, device, chunk_size)
    if exclude is not None and not bool((exclude >= 0).all()):
        raise ValueError("cosine_ranking needs an excluded row for every query, or no exclude at all")
    drop = 1 if exclude is not None else 0
    for start in range(0, q.shape[0], chunk_size):
        sim = _similarity_block(q[start : start + chunk_size], g, exclude, start)
        # stable descending sort: equal similarities keep gallery order; the excluded -inf sorts last
        ranked = torch.sort(sim, dim=1, descending=True, stable=True).indices
        yield start, ranked[:, : g.shape[0] - drop].cpu().numpy()
