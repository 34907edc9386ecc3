from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from astrobench.methods.components import GlobalBatchNorm2d, Queue, bn_groups, convert_to_global_bn, momentum_update
from astrobench.methods.losses import info_nce_loss
from astrobench.methods.mocov2 import MoCoV2
from astrobench.registry import METHODS
from method_helpers import AlternatingViews, RandomViews, blob_images, flux_batch, reload_through_safetensors, train


def smoke(views, seed: int = 0, **overrides) -> MoCoV2:
    torch.manual_seed(seed)
    return MoCoV2(in_chans=5, image_size=32, views=views, **{**MoCoV2.profiles["smoke"], **overrides})


def test_registered_and_paper_defaults():
    assert METHODS.get("mocov2") is MoCoV2
    defaults = {k: p.default for k, p in inspect.signature(MoCoV2).parameters.items()}
    assert defaults["backbone"] == "resnet50"
    assert (defaults["head_hidden_dim"], defaults["head_dim"]) == (2048, 128)
    assert (defaults["temperature"], defaults["momentum"], defaults["queue_size"]) == (0.2, 0.999, 65_536)
    assert MoCoV2.training["paper"] == {"optimizer": "sgd", "lr": 0.03, "weight_decay": 1e-4, "momentum": 0.9}


def test_queue_is_fifo_and_refuses_a_batch_that_does_not_divide_it():
    queue = Queue(size=4, dim=2)
    queue.enqueue(torch.tensor([[3.0, 0.0], [0.0, 2.0]]))
    assert queue.keys[:2].tolist() == [[1.0, 0.0], [0.0, 1.0]] and int(queue.ptr) == 2  # stored normalised
    queue.enqueue(torch.tensor([[-1.0, 0.0], [0.0, -1.0]]))
    queue.enqueue(torch.tensor([[0.0, 5.0], [5.0, 0.0]]))  # wraps to the start
    assert queue.keys.tolist() == [[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]] and int(queue.ptr) == 2
    with pytest.raises(ValueError, match="multiple of the global batch 3"):
        queue.enqueue(torch.ones(3, 2))


def test_momentum_update_by_hand():
    online, target = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        online.weight.fill_(1.0), online.bias.fill_(2.0), target.weight.fill_(0.0), target.bias.fill_(0.0)
    momentum_update(online, target, 0.9)
    assert target.weight.item() == pytest.approx(0.1) and target.bias.item() == pytest.approx(0.2)


def test_grouped_batch_norm_equals_batch_norm_per_group():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 3 + 1
    reference = nn.BatchNorm2d(3)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 2), reference.bias.uniform_(-1, 1)
    grouped = convert_to_global_bn(nn.Sequential(reference))[0]
    assert isinstance(grouped, GlobalBatchNorm2d)
    copies = [nn.BatchNorm2d(3) for _ in range(2)]
    for c in copies:
        c.load_state_dict(reference.state_dict())
    expected = torch.cat([c(chunk) for c, chunk in zip(copies, x.chunk(2))])
    with bn_groups(grouped, 2):
        got = grouped(x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grouped.running_mean, (copies[0].running_mean + copies[1].running_mean) / 2)
    torch.testing.assert_close(grouped.running_var, (copies[0].running_var + copies[1].running_var) / 2)
    # the path used across processes (per-group sums) gives the same normalisation for any grouping
    ids = torch.tensor([1, 0, 1, 0, 0, 1, 1, 0])
    fresh = convert_to_global_bn(nn.Sequential(nn.BatchNorm2d(3)))[0]
    fresh.load_state_dict(reference.state_dict())
    order = torch.argsort(ids, stable=True)
    expected = torch.cat([c(chunk) for c, chunk in zip([nn.BatchNorm2d(3), nn.BatchNorm2d(3)], x[order].chunk(2))])
    expected = expected * fresh.weight.view(1, 3, 1, 1) + fresh.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(fresh._all_reduce_groups(x, ids, 2), expected[torch.argsort(order)], rtol=1e-4, atol=1e-5)


def test_training_step_is_info_nce_against_the_queue_then_enqueues_keys():
    model = smoke(AlternatingViews())
    images, _ = blob_images(16)
    queue_before = model.queue.keys.clone()
    captured = {}
    model.head.register_forward_hook(lambda m, i, o: captured.__setitem__("q", o))
    model.head_k.register_forward_hook(lambda m, i, o: captured.__setitem__("k_shuffled", o))
    torch.manual_seed(3)
    perm = torch.randperm(16)
    torch.manual_seed(3)
    loss = model.training_step(flux_batch(images))["loss"]
    k = captured["k_shuffled"][torch.argsort(perm)]  # keys were computed on the shuffled batch
    torch.testing.assert_close(loss, info_nce_loss(captured["q"], k, queue_before, 0.2))
    torch.testing.assert_close(model.queue.keys[:16], F.normalize(k, dim=1))
    torch.testing.assert_close(model.queue.keys[16:], queue_before[16:])
    assert int(model.queue.ptr) == 16


def test_shuffle_bn_keys_do_not_depend_on_the_order_of_their_own_group():
    # the key of an image is computed with the statistics of a random group: two different shuffles
    # give different keys (the property shuffle-BN relies on), the same shuffle the same keys
    images, _ = blob_images(16)
    keys = []
    for seed in (3, 3, 4):
        model = smoke(AlternatingViews())
        model.head_k.register_forward_hook(lambda m, i, o: keys.append(o))
        torch.manual_seed(seed)
        model.training_step(flux_batch(images))
    assert torch.equal(keys[0], keys[1]) and not torch.allclose(keys[0], keys[2])


def test_queue_must_be_a_multiple_of_the_global_batch():
    model = smoke(AlternatingViews(), queue_size=60)
    with pytest.raises(ValueError, match="queue size 60 must be a multiple of the global batch 16"):
        model.training_step(flux_batch(blob_images(16)[0]))


def test_queue_is_checked_against_the_training_set_before_any_training():
    # quick: 4,200 training images in batches of 64
    assert MoCoV2.check_training_set({"queue_size": 512}, 4200, 64) is None
    note = MoCoV2.check_training_set({"queue_size": 4096}, 4200, 64)
    assert "holds 98% of the 4200 training images" in note and "512 or fewer" in note
    with pytest.raises(ValueError, match="queue_size 8192 is not smaller than the 4200 training images.*queue_size=512"):
        MoCoV2.check_training_set({"queue_size": 8192}, 4200, 64)
    with pytest.raises(ValueError, match="queue_size 500 is not a multiple of the global batch 64"):
        MoCoV2.check_training_set({"queue_size": 500}, 4200, 64)
    assert "65536" in MoCoV2.check_training_set({}, 100_000, 256)  # the default, on a small set: noted
    # every profile's queue fits its own simulated survey's training split (70%)
    from astrobench.profiles import PROFILE_TRAIN, SYNTHETIC_SIZES
    for profile, n in SYNTHETIC_SIZES.items():
        batch = {**PROFILE_TRAIN[profile], **MoCoV2.training[profile]}["batch_size"]
        assert MoCoV2.check_training_set(MoCoV2.profiles[profile], int(0.7 * n), batch) is None, profile


def test_key_encoder_follows_by_momentum_only():
    model = smoke(AlternatingViews())
    assert all(not p.requires_grad for p in model.backbone_k.parameters())
    batches = [flux_batch(blob_images(16)[0])]
    before = [p.clone() for p in model.backbone_k.parameters()]
    train(model, batches, steps=1, lr=0.1, optimizer="sgd")
    for b, q, k in zip(before, model.backbone.parameters(), model.backbone_k.parameters()):
        torch.testing.assert_close(k, 0.99 * b + 0.01 * q.detach())


def test_loss_falls_and_checkpoint_reloads(tmp_path):
    images, _ = blob_images(64)
    batches = [flux_batch(chunk) for chunk in images.split(16)]
    model = smoke(RandomViews())
    losses = train(model, batches, steps=24, lr=0.1, optimizer="sgd")
    # the loss first rises while real keys replace the random initial queue (64 = 4 batches of 16);
    # from a full queue on it falls
    assert sum(losses[-4:]) / 4 < sum(losses[4:8]) / 4 - 0.2, losses
    model.eval()
    fresh = reload_through_safetensors(model, smoke(RandomViews(), seed=1).eval(), tmp_path)
    assert torch.equal(fresh.queue.keys, model.queue.keys)
    with torch.no_grad():
        assert torch.equal(fresh.embed(images[:8]), model.embed(images[:8]))
