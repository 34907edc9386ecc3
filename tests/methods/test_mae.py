from __future__ import annotations

import inspect

import pytest
import torch

from astrobench.methods.components import patchify, random_masking, unpatchify
from astrobench.methods.losses import mae_loss, normalize_patches
from astrobench.methods.mae import MAE
from astrobench.registry import METHODS
from method_helpers import AlternatingViews, RandomViews, blob_images, flux_batch, reload_through_safetensors, train

SMOKE = MAE.profiles["smoke"]


def smoke(views, size: int = 32, seed: int = 0, **overrides) -> MAE:
    torch.manual_seed(seed)
    return MAE(in_chans=5, image_size=size, views=views, **{**SMOKE, **overrides})


def test_registered_and_paper_defaults():
    assert METHODS.get("mae") is MAE
    defaults = {k: p.default for k, p in inspect.signature(MAE).parameters.items()}
    assert defaults["backbone"] == "vit_small_patch8_224" and defaults["patch_size"] == 8
    assert (defaults["mask_ratio"], defaults["decoder_dim"], defaults["decoder_depth"]) == (0.75, 256, 4)
    assert defaults["norm_pix_loss"] is True
    assert MAE.training["paper"] == {"optimizer": "adamw", "lr": 1.5e-4, "weight_decay": 0.05}


def test_patchify_round_trip_and_layout():
    images = torch.randn(2, 3, 16, 16)
    patches = patchify(images, 8)
    assert patches.shape == (2, 4, 8 * 8 * 3)
    # patch 1 is the top-right 8x8 block, pixels row-major with channels last
    torch.testing.assert_close(patches[0, 1].view(8, 8, 3), images[0, :, :8, 8:].permute(1, 2, 0))
    torch.testing.assert_close(unpatchify(patches, 8, 3), images)


def test_random_masking_keeps_exactly_a_quarter():
    tokens = torch.arange(2 * 64, dtype=torch.float32).view(2, 64, 1).expand(-1, -1, 3).contiguous()
    kept, mask, ids_restore = random_masking(tokens, 0.75)
    assert kept.shape == (2, 16, 3)
    assert mask.sum(dim=1).tolist() == [48.0, 48.0]
    for b in range(2):  # the kept tokens are exactly those marked visible
        visible = tokens[b][mask[b] == 0][:, 0]
        assert sorted(kept[b, :, 0].tolist()) == sorted(visible.tolist())
    assert not torch.equal(mask[0], mask[1])  # drawn per sample


def test_encoder_sees_only_the_visible_quarter_at_64px():
    model = smoke(AlternatingViews(), size=64)  # 64 px, patch 8: 64 patches, 16 visible
    seen = []
    model.backbone.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    model.training_step(flux_batch(torch.randn(2, 5, 64, 64)))
    assert seen == [1 + 16]  # class token + 16 visible patches
    model.eval()
    with torch.no_grad():
        features = model.embed(torch.randn(3, 5, 64, 64))
    assert seen[-1] == 1 + 64 and features.shape == (3, 64)


def test_training_loss_is_the_masked_patch_loss():
    model = smoke(AlternatingViews())
    images, _ = blob_images(4)
    captured = {}
    real_decode = model.decode

    def spy(latent, ids_restore):
        captured["pred"] = real_decode(latent, ids_restore)
        return captured["pred"]

    model.decode = spy
    real_encode = model.encode

    def spy_encode(x, ratio):
        out = real_encode(x, ratio)
        captured["mask"] = out[1]
        return out

    model.encode = spy_encode
    loss = model.training_step(flux_batch(images))["loss"]
    pred, mask = captured["pred"], captured["mask"]
    assert mask.sum(dim=1).tolist() == [12.0] * 4  # 16 patches at 32 px, 4 visible
    target = patchify(images, 8)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    per_patch = (pred - (target - mean) / (var + 1e-6) ** 0.5).square().mean(-1)
    torch.testing.assert_close(loss, (per_patch * mask).sum() / 48)
    torch.testing.assert_close(loss, mae_loss(pred, target, mask))


def test_reconstruct_for_figures():
    model = smoke(AlternatingViews()).eval()
    images = torch.randn(2, 5, 32, 32)
    recon, mask = model.reconstruct(images)
    assert recon.shape == images.shape and mask.shape == (2, 1, 32, 32)
    assert mask.mean().item() == pytest.approx(0.75)
    # a perfect predictor of the normalised patches gives back the image in its own units
    model.decode = lambda latent, ids_restore: normalize_patches(patchify(images, 8))
    recon, _ = model.reconstruct(images)
    torch.testing.assert_close(recon, images, rtol=1e-4, atol=1e-4)


def test_non_vit_backbone_is_a_clear_error():
    with pytest.raises(TypeError, match="VisionTransformer"):
        MAE(in_chans=5, image_size=32, views=AlternatingViews(), backbone="resnet10t", backbone_options={})


def test_loss_falls_and_checkpoint_reloads(tmp_path):
    images, _ = blob_images(64)
    batches = [flux_batch(chunk) for chunk in images.split(16)]
    model = smoke(RandomViews())
    losses = train(model, batches, steps=30, lr=2e-3)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1, losses
    model.eval()
    fresh = reload_through_safetensors(model, smoke(RandomViews(), seed=1).eval(), tmp_path)
    with torch.no_grad():
        assert torch.equal(fresh.embed(images[:8]), model.embed(images[:8]))
