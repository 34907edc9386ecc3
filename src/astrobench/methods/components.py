"""Building blocks the methods compose: heads, momentum encoders, a queue, patches, masking,
and a batch norm whose statistics do not depend on how many processes share the batch.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from astrobench import distributed

# -- heads ----------------------------------------------------------------------------------------


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> ReLU -> Linear: the projection head of SimCLR v1 and MoCo v2 (no batch norm)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


# -- momentum encoder -----------------------------------------------------------------------------


def make_momentum_copy(online: nn.Module) -> nn.Module:
    """A copy of ``online`` updated only by ``momentum_update`` (no gradients, no optimizer)."""
    import copy

    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online``, parameter by parameter.

    Buffers (batch-norm running statistics) are not copied: the target keeps those of its own
    forward passes, as in MoCo.
    """
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    if len(online_params) != len(target_params):
        raise ValueError("momentum_update: the two modules have different parameters")
    torch._foreach_lerp_(target_params, online_params, 1.0 - momentum)


# -- queue of negatives ---------------------------------------------------------------------------


class Queue(nn.Module):
    """A FIFO of ``size`` L2-normalised keys (MoCo's dictionary), identical on every rank.

    ``enqueue`` gathers the keys of all ranks (in rank order) before writing, so the queue holds
    the same keys in the same slots whatever the number of processes. ``size`` must be a multiple
    of the global batch so that a batch never wraps around the end.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size <= 0:
            raise ValueError(f"queue size must be positive, got {size}")
        self.size = int(size)
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, local_keys: torch.Tensor) -> None:
        keys = distributed.gather_no_grad(local_keys.detach())
        n = keys.shape[0]
        if self.size % n:
            raise ValueError(
                f"queue size {self.size} must be a multiple of the global batch {n} "
                f"(keys per step over all processes)"
            )
        # slots ptr .. ptr + n - 1, addressed on the device: reading ptr on the host would wait
        # for the GPU every step
        slots = self.ptr + torch.arange(n, device=self.ptr.device)
        self.keys.index_copy_(0, slots, F.normalize(keys.to(self.keys.dtype), dim=1))
        self.ptr.add_(n).remainder_(self.size)


# -- patches and masking (MAE) --------------------------------------------------------------------


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), patches in raster order, pixels (row, col, channel) inside."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    x = torch.einsum("bchpwq->bhwpqc", x)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """Inverse of ``patchify`` for square images."""
    b, n, _ = patches.shape
    p = patch_size
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} patches do not make a square image")
    x = patches.reshape(b, side, side, p, p, channels)
    x = torch.einsum("bhwpqc->bchpwq", x)
    return x.reshape(b, channels, side * p, side * p)


def random_masking(
    tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random ``1 - mask_ratio`` of each sample's tokens (MAE's per-sample shuffle).

    Returns ``(kept (B, keep, D), mask (B, L) with 1 = hidden, ids_restore (B, L))``; ``ids_restore``
    puts the shuffled sequence back in order.
    """
    b, n, d = tokens.shape
    keep = int(round(n * (1.0 - mask_ratio)))
    if not 0 < keep <= n:
        raise ValueError(f"mask ratio {mask_ratio} leaves {keep} of {n} patches visible")
    noise = torch.rand(b, n, generator=generator, device=tokens.device if generator is None else generator.device)
    noise = noise.to(tokens.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    kept = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
    mask = torch.ones(b, n, device=tokens.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


def sincos_pos_embed_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (grid_size**2, dim), as in MAE."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a dimension divisible by 4, got {dim}")
    coords = torch.arange(grid_size, dtype=torch.float64)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))

    def embed_1d(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([embed_1d(gy), embed_1d(gx)], dim=1).float()


# -- batch norm over fixed groups of the global batch ---------------------------------------------


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose statistics are taken over groups of the *global* batch, across ranks.

    By default the whole global batch is one group (SyncBN: SimCLR's global BN). Inside
    ``bn_groups(module, num_groups, group_ids)`` the global batch is split into ``num_groups``
    equal groups: contiguous ones in rank order, or those named by ``group_ids`` (global group of
    each local sample). MoCo uses this for shuffle-BN with a group size that does not depend on the
    number of processes. With several processes, per-group sums are all-reduced with gradients, so
    a step on W ranks equals the 1-process step on the whole batch, running statistics included.
    In one process it runs the fused ``F.batch_norm`` once per group (plain ``nn.BatchNorm2d`` when
    there is one group).
    """

    _num_groups: int = 1
    _group_ids: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups, ids = self._num_groups, self._group_ids
        world = distributed.world_size()
        if not self.training or (world == 1 and groups == 1):
            return super().forward(x)
        b = x.shape[0]
        if world == 1 and ids is None:
            return self._contiguous_groups(x, groups)
        if ids is None:
            total = b * world
            if total % groups:
                raise ValueError(f"a global batch of {total} does not split into {groups} equal batch-norm groups")
            global_index = distributed.rank() * b + torch.arange(b, device=x.device)
            ids = global_index // (total // groups)
        if ids.shape != (b,):
            raise ValueError(f"batch-norm group ids {tuple(ids.shape)} do not match the batch of {b}")
        return self._all_reduce_groups(x, ids, groups)

    def _momentum(self) -> float:
        self.num_batches_tracked.add_(1)
        return self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)

    def _contiguous_groups(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        """One process: fused batch norm per contiguous group; running stats = mean over groups."""
        if x.shape[0] % groups:
            raise ValueError(f"a batch of {x.shape[0]} does not split into {groups} equal batch-norm groups")
        track = self.track_running_stats and self.running_mean is not None
        momentum = self._momentum() if track else 0.0
        means = [self.running_mean.clone() if track else None for _ in range(groups)]
        variances = [self.running_var.clone() if track else None for _ in range(groups)]
        y = torch.cat([
            F.batch_norm(chunk, m, v, self.weight, self.bias, True, momentum, self.eps)
            for chunk, m, v in zip(x.chunk(groups), means, variances)
        ])
        if track:
            with torch.no_grad():
                self.running_mean.copy_(torch.stack(means).mean(dim=0))
                self.running_var.copy_(torch.stack(variances).mean(dim=0))
        return y

    def _all_reduce_groups(self, x: torch.Tensor, ids: torch.Tensor, groups: int) -> torch.Tensor:
        """Per-group sums of every rank, all-reduced with gradients: exact for any group layout."""
        b, c, h, w = x.shape
        # shifting by the running mean keeps sum-of-squares variances accurate in fp32
        shift = self.running_mean.detach().float() if self.running_mean is not None else x.new_zeros(c).float()
        xf = x.float()
        centred = xf - shift.view(1, c, 1, 1)
        one_hot = F.one_hot(ids, groups).to(xf.dtype).T  # (G, b)
        counts = one_hot.sum(dim=1, keepdim=True) * (h * w)
        stats = torch.cat([one_hot @ centred.sum(dim=(2, 3)), one_hot @ centred.square().sum(dim=(2, 3)), counts], dim=1)
        stats = distributed.all_reduce_with_grad(stats)
        n = stats[:, -1:]  # values per group and channel; callers make groups of >= 2 samples
        mean_c = stats[:, :c] / n
        var = (stats[:, c : 2 * c] / n - mean_c.square()).clamp_min(0.0)
        mean = mean_c + shift
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight.float()
        offset = -mean * scale + (self.bias.float() if self.affine else 0.0)
        y = xf * scale[ids].view(b, c, 1, 1) + offset[ids].view(b, c, 1, 1)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                momentum = self._momentum()
                unbiased = var * n / (n - 1)
                self.running_mean.lerp_(mean.mean(dim=0).to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.mean(dim=0).to(self.running_var.dtype), momentum)
        return y.to(x.dtype)


def convert_to_global_bn(module: nn.Module) -> nn.Module:
    """Replace every plain ``nn.BatchNorm2d`` in ``module`` by ``GlobalBatchNorm2d`` (same state).

    Batch norms fused with an activation (timm's ``BatchNormAct2d``) are refused with a clear error:
    silently leaving them per-rank would make results depend on the number of processes.
    """
    if type(module) is nn.BatchNorm2d:
        reference = module.weight if module.affine else module.running_mean
        new = GlobalBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
            device=None if reference is None else reference.device,
        )
        new.load_state_dict(module.state_dict())
        return new
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm2d):
        raise TypeError(
            f"{type(module).__name__} is a batch norm this method cannot synchronise across processes; "
            "choose a backbone with plain nn.BatchNorm2d (ResNets) or without batch norm (ViTs)"
        )
    for name, child in module.named_children():
        new_child = convert_to_global_bn(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


@contextlib.contextmanager
def bn_groups(module: nn.Module, num_groups: int, group_ids: torch.Tensor | None = None) -> Iterator[None]:
    """Within the block, every ``GlobalBatchNorm2d`` of ``module`` splits the global batch into
    ``num_groups`` equal groups: contiguous in rank order, or local sample ``i`` in global group
    ``group_ids[i]`` (only needed with several processes; one process reorders its batch instead)."""
    norms = [m for m in module.modules() if isinstance(m, GlobalBatchNorm2d)]
    for m in norms:
        m._num_groups, m._group_ids = num_groups, group_ids
    try:
        yield
    finally:
        for m in norms:
            m._num_groups, m._group_ids = 1, None
