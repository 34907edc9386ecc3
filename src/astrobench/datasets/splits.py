"""Deterministic train / val / test splits keyed by object id (independent of row order)."""

from __future__ import annotations

import hashlib

import numpy as np

from astrobench.datasets.schema import SurveyData

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def _unit_interval(keys: list[str], salt: str) -> np.ndarray:
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2**64
    return out


def split_indices(
    data: SurveyData, fractions: dict[str, float] | None = None, salt: str = "astrobench-split-v1"
) -> dict[str, np.ndarray]:
    """Assign each object to a split by a hash of its id: adding objects never moves old ones."""
    fractions = fractions or DEFAULT_FRACTIONS
    total = sum(fractions.values())
    if not np.isclose(total, 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions} (sum {total})")
    u = _unit_interval(data.object_id.astype(str).tolist(), salt)
    edges = np.cumsum([0.0, *fractions.values()])
    edges[-1] = 1.0 + 1e-12
    return {name: np.flatnonzero((u >= lo) & (u < hi)) for name, lo, hi in zip(fractions, edges[:-1], edges[1:])}
