from __future__ import annotations

import inspect

import torch

from astrobench.methods.losses import nt_xent_loss
from astrobench.methods.simclr import SimCLR
from astrobench.registry import METHODS
from method_helpers import AlternatingViews, RandomViews, blob_images, flux_batch, reload_through_safetensors, train


def smoke(views, seed: int = 0) -> SimCLR:
    torch.manual_seed(seed)
    return SimCLR(in_chans=5, image_size=32, views=views, **SimCLR.profiles["smoke"])


def test_registered_and_paper_defaults():
    assert METHODS.get("simclr") is SimCLR
    defaults = {k: p.default for k, p in inspect.signature(SimCLR).parameters.items()}
    assert defaults["backbone"] == "resnet50" and defaults["proj_hidden_dim"] == 2048 and defaults["proj_dim"] == 128
    assert defaults["temperature"] == 0.2 and SimCLR.profiles["paper"] == {}
    model = smoke(AlternatingViews())
    assert [m.out_features for m in model.projector if isinstance(m, torch.nn.Linear)] == [64, 32]


def test_training_step_is_nt_xent_of_the_two_projected_views():
    model = smoke(AlternatingViews())
    images, _ = blob_images(8)
    batch = flux_batch(images)
    loss = model.training_step(batch)["loss"]
    reference = smoke(AlternatingViews())
    z = reference.projector(reference.backbone(torch.cat([images, 0.8 * images.flip(-1)])))
    expected = nt_xent_loss(z[:8], z[8:], 0.2)
    torch.testing.assert_close(loss, expected)


def test_loss_falls_and_checkpoint_reloads(tmp_path):
    images, _ = blob_images(64)
    batches = [flux_batch(chunk) for chunk in images.split(16)]
    model = smoke(RandomViews())
    losses = train(model, batches, steps=20, lr=2e-3)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2, losses
    model.eval()
    fresh = reload_through_safetensors(model, smoke(RandomViews(), seed=1).eval(), tmp_path)
    with torch.no_grad():
        expected, got = model.embed(images[:8]), fresh.embed(images[:8])
    assert got.shape == (8, model.backbone.num_features)
    assert torch.equal(got, expected)
