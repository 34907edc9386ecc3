"""Losses of the self-supervised methods, as pure functions of tensors (no module state).

Every function returns a scalar averaged over the samples it is given, so that under data
parallelism (each rank averaging its own samples, DDP averaging gradients) a step equals the
1-process step on the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy over 2N views.

    ``z1[i]`` and ``z2[i]`` are projections of two views of image ``i`` (N, D). Each of the 2N
    views is an anchor whose positive is its partner and whose negatives are the other 2N - 2
    views; similarity is the cosine divided by ``temperature``. Returns the mean over the 2N anchors.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent_loss needs two (N, D) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    logits = z @ z.T / temperature
    # an anchor is never its own negative
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.arange(2 * n, device=z.device).roll(n)  # made on the device: no host copy
    return F.cross_entropy(logits, partner)


def info_nce_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE: query ``q[i]`` against its key ``k[i]`` (positive) and every queue entry.

    ``q``, ``k``: (N, D); ``queue``: (K, D) keys of earlier batches (negatives). All are compared by
    cosine similarity (L2-normalised here), divided by ``temperature``. Keys carry no gradient in
    MoCo; this function does not detach them, the caller does. Returns the mean over the N queries.
    """
    if q.shape != k.shape or q.ndim != 2 or queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"info_nce_loss needs q, k of shape (N, D) and queue (K, D), got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(queue.shape)}"
        )
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    queue = F.normalize(queue.float(), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    negatives = q @ queue.T  # (N, K)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    # the positive sits in column 0
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch to zero mean and unit (unbiased) variance over its pixels, as in MAE."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps) ** 0.5


def mae_loss(pred: torch.Tensor, target_patches: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True) -> torch.Tensor:
    """MAE's reconstruction loss: mean squared error per patch, averaged over masked patches only.

    ``pred`` and ``target_patches``: (B, L, P) pixel values per patch; ``mask``: (B, L), 1 where the
    patch was hidden from the encoder, 0 where visible. With ``norm_pix`` the target of each patch is
    normalised by its own mean and variance (MAE's ``norm_pix_loss``: sharper features).
    """
    if pred.shape != target_patches.shape or mask.shape != pred.shape[:2]:
        raise ValueError(
            f"mae_loss: pred {tuple(pred.shape)}, target {tuple(target_patches.shape)} and mask "
            f"{tuple(mask.shape)} do not match"
        )
    target = target_patches.float()
    if norm_pix:
        target = normalize_patches(target)
    per_patch = (pred.float() - target).square().mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum() / mask.sum()
