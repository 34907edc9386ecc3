"""How invariant an encoder is to each augmentation: two views of one galaxy vs. different galaxies.

For ``V`` views (``n_views``) of ``B`` galaxies, with L2-normalised embeddings ``z[v, i]``:

- ``same_galaxy``      = mean of cos(z[v, i], z[w, i]) over galaxies i and view pairs v < w;
- ``different_galaxy`` = mean of cos(z[v, i], z[w, j]) over view pairs v < w and galaxies i != j;
- ``invariance``       = (same_galaxy - different_galaxy) / (1 - different_galaxy):
  1 when the augmentation leaves every embedding unchanged, 0 when two views of one galaxy are no
  closer than two different galaxies (the augmentation destroys what the encoder sees), negative
  when closer to other galaxies; NaN when all embeddings coincide (nothing to compare);
- ``retrieval_top1``   = share of (v, i), over ordered view pairs v != w, whose nearest neighbour
  among the view-w embeddings of all B galaxies is galaxy i itself (chance level 1/B).

Comparing with different galaxies makes the score independent of how clustered an encoder's
embedding space is (cosine similarities of unrelated galaxies are often far above 0).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from astrobench.augment.base import Augmentation, AugBatch
from astrobench.augment.pipeline import ViewPipeline

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


def invariance_from_embeddings(embeddings: torch.Tensor) -> dict[str, float]:
    """The scores above from embeddings (V, B, D) of V >= 2 views of the same B >= 2 galaxies."""
    if embeddings.dim() != 3 or embeddings.shape[0] < 2 or embeddings.shape[1] < 2:
        raise ValueError(f"need embeddings of shape (views >= 2, galaxies >= 2, dim), got {tuple(embeddings.shape)}")
    n_views, n_galaxies = embeddings.shape[:2]
    unit = torch.nn.functional.normalize(embeddings.to(torch.float64), dim=-1)
    eye = torch.eye(n_galaxies, dtype=torch.bool, device=unit.device)
    same, different, hits, pairs = 0.0, 0.0, 0.0, 0
    for v in range(n_views):
        for w in range(n_views):
            if v == w:
                continue
            cosine = unit[v] @ unit[w].T  # (B, B): rows view v, columns view w
            hits += float((cosine.argmax(dim=1) == torch.arange(n_galaxies, device=unit.device)).double().mean())
            if v < w:
                same += float(cosine.diagonal().mean())
                different += float(cosine.masked_select(~eye).mean())
                pairs += 1
    same, different = same / pairs, different / pairs
    spread = 1.0 - different
    invariance = (same - different) / spread if spread > 1e-12 else float("nan")
    return {
        "same_galaxy": same,
        "different_galaxy": different,
        "invariance": invariance,
        "retrieval_top1": hits / (n_views * (n_views - 1)),
        "n_galaxies": int(n_galaxies),
        "n_views": int(n_views),
    }


@torch.no_grad()
def invariance_score(
    embed_fn: EmbedFn,
    batch: AugBatch,
    op: Augmentation | ViewPipeline,
    n_views: int = 2,
    *,
    finish: Callable[[AugBatch], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Invariance of ``embed_fn`` to ``op`` on the galaxies of ``batch`` (scores: module docstring).

    ``op`` is an augmentation or a whole ``ViewPipeline``; ``n_views`` independent draws of it are
    embedded. ``finish`` turns an augmented flux batch into the encoder's input (normalisation,
    crop); it defaults to the pipeline's own when ``op`` is a ``ViewPipeline`` and must be given
    otherwise. ``embed_fn`` maps (B, C, S, S) inputs to (B, D) embeddings.
    """
    if n_views < 2:
        raise ValueError(f"invariance needs at least 2 views per galaxy, got n_views={n_views}")
    if isinstance(op, ViewPipeline):
        augment: Callable[[AugBatch, torch.Generator | None], AugBatch] = op.augment
        finish = finish or op.finish
    else:
        augment = op
    if finish is None:
        raise ValueError("invariance_score: give `finish` (flux batch -> encoder input) when op is not a ViewPipeline")
    views = [embed_fn(finish(augment(batch, generator))) for _ in range(n_views)]
    return invariance_from_embeddings(torch.stack([v.reshape(v.shape[0], -1) for v in views]))


def invariance_report(
    embed_fn: EmbedFn,
    batch: AugBatch,
    views: ViewPipeline,
    codes: Sequence[str] | None = None,
    n_views: int = 2,
    generator: torch.Generator | None = None,
) -> dict[str, dict[str, Any]]:
    """Invariance to each augmentation of ``views`` alone (``codes``: default, all of them), and to
    the whole pipeline under the key ``"all"``.

    Each single-augmentation pipeline keeps the method's parameters for that code, the same
    normaliser and output size, and is applied with ``p = 1``: the score measures the
    transformation itself, not how often the method's config applies it.
    """
    params = views.config()["params"]
    report: dict[str, dict[str, Any]] = {}
    for code in codes if codes is not None else views.codes:
        if code not in views.codes:
            raise ValueError(f"augmentation {code!r} is not one of the views {list(views.codes)}")
        single = ViewPipeline([code], {code: {**params.get(code, {}), "p": 1.0}}, views.normalizer, views.out_size)
        report[code] = invariance_score(embed_fn, batch, single, n_views, generator=generator)
    report["all"] = invariance_score(embed_fn, batch, views, n_views, generator=generator)
    return report
