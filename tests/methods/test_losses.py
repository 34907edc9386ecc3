"""Losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from astrobench.methods.losses import info_nce_loss, mae_loss, normalize_patches, nt_xent_loss

E = math.e


def test_nt_xent_aligned_pairs():
    # 2 images, views identical: each anchor has cosine 1 with its partner, 0 with the two others
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert nt_xent_loss(z, z.clone(), temperature=1.0).item() == pytest.approx(math.log(1 + 2 / E), abs=1e-6)
    # temperature 0.5 doubles every logit; scaling the vectors changes nothing (cosine)
    assert nt_xent_loss(3 * z, 0.5 * z, temperature=0.5).item() == pytest.approx(math.log(1 + 2 * E**-2), abs=1e-6)


def test_nt_xent_orthogonal_pairs():
    # partners orthogonal (logit 0), one negative aligned (logit 1), one orthogonal (0): -log(1 / (2 + e))
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert nt_xent_loss(z1, z2, temperature=1.0).item() == pytest.approx(math.log(2 + E), abs=1e-6)


def test_nt_xent_matches_a_loop_over_anchors():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    tau = 0.3
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(10):
        partner = (i + 5) % 10
        others = [j for j in range(10) if j != i]
        denom = sum(math.exp(float(z[i] @ z[j]) / tau) for j in others)
        total += -math.log(math.exp(float(z[i] @ z[partner]) / tau) / denom)
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(total / 10, rel=1e-5)


def test_nt_xent_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        nt_xent_loss(torch.zeros(2, 3), torch.zeros(3, 3), 0.1)


def test_info_nce_with_a_queue():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[2.0, 0.0]])  # same direction: cosine 1
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])  # cosines 0 and -1
    # logits [1, 0, -1] / 0.5 = [2, 0, -2]; loss = log(1 + e^-2 + e^-4)
    expected = math.log(1 + E**-2 + E**-4)
    assert info_nce_loss(q, k, queue, temperature=0.5).item() == pytest.approx(expected, abs=1e-6)


def test_info_nce_averages_over_queries_and_only_q_gets_gradient_paths():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0]])
    # query 0: logits [1, 0]/0.2; query 1: logits [0, 1]/0.2
    first = math.log(1 + math.exp(-5))
    second = math.log(1 + math.exp(5))
    loss = info_nce_loss(q, k, queue, temperature=0.2)
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    loss.backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_mae_loss_counts_only_masked_patches():
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.0, 4.0]]])  # (B=1, L=4, P=2)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    pred = torch.zeros(1, 4, 2, requires_grad=True)
    # per-patch MSE against 0: 1, 4, 9, 8; masked patches 0 and 2 -> (1 + 9) / 2
    loss = mae_loss(pred, target, mask, norm_pix=False)
    assert loss.item() == pytest.approx(5.0)
    loss.backward()
    assert torch.all(pred.grad[0, 1] == 0) and torch.all(pred.grad[0, 3] == 0)  # visible: no gradient
    assert torch.all(pred.grad[0, 0] != 0)


def test_mae_loss_with_per_patch_normalised_targets():
    target = torch.tensor([[[1.0, 1.0], [0.0, 4.0]]])
    # patch [0, 4]: mean 2, unbiased variance 8 -> target [-2, 2] / sqrt(8); MSE against 0 = 4/8 = 0.5
    # patch [1, 1]: zero variance -> target 0 (the epsilon keeps it finite)
    mask = torch.tensor([[1.0, 1.0]])
    loss = mae_loss(torch.zeros(1, 2, 2), target, mask, norm_pix=True)
    assert loss.item() == pytest.approx((0.0 + 0.5) / 2, rel=1e-5)
    normed = normalize_patches(target)
    assert normed[0, 1].tolist() == pytest.approx([-2 / math.sqrt(8), 2 / math.sqrt(8)], rel=1e-5)


def test_mae_loss_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="do not match"):
        mae_loss(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), torch.zeros(1, 3))
