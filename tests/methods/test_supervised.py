from __future__ import annotations

import inspect

import pytest
import torch

from astrobench.methods.supervised import Supervised
from astrobench.registry import METHODS
from method_helpers import AlternatingViews, RandomViews, blob_images, flux_batch, reload_through_safetensors, train


def smoke(views, seed: int = 0) -> Supervised:
    torch.manual_seed(seed)
    return Supervised(in_chans=5, image_size=32, views=views, num_classes=4, **Supervised.profiles["smoke"])


def test_registered_uses_labels_and_paper_backbone():
    assert METHODS.get("supervised") is Supervised and Supervised.uses_labels
    assert inspect.signature(Supervised).parameters["backbone"].default == "resnet50"
    model = Supervised(in_chans=3, image_size=32, views=AlternatingViews(), num_classes=180, **Supervised.profiles["smoke"])
    assert model.classifier.out_features == 180 and model.embed(torch.zeros(2, 3, 32, 32)).shape == (2, 64)


def test_training_step_is_cross_entropy_on_targets():
    model = smoke(AlternatingViews())
    images, kind = blob_images(8)
    out = model.training_step(flux_batch(images, kind))
    reference = smoke(AlternatingViews())
    logits = reference.classifier(reference.backbone(images))
    torch.testing.assert_close(out["loss"], torch.nn.functional.cross_entropy(logits, kind))
    assert out["accuracy"].item() == pytest.approx((logits.argmax(1) == kind).float().mean().item())


def test_missing_target_is_a_clear_error():
    with pytest.raises(KeyError, match="target"):
        smoke(AlternatingViews()).training_step(flux_batch(blob_images(4)[0]))


def test_loss_falls_and_checkpoint_reloads(tmp_path):
    images, kind = blob_images(64)
    batches = [flux_batch(x, y) for x, y in zip(images.split(16), kind.split(16))]
    model = smoke(RandomViews())
    losses = train(model, batches, steps=16, lr=3e-3)
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4, losses
    model.eval()
    fresh = reload_through_safetensors(model, smoke(RandomViews(), seed=1).eval(), tmp_path)
    with torch.no_grad():
        assert torch.equal(fresh.embed(images[:8]), model.embed(images[:8]))
