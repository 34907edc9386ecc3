"""Every trainable method's full step under bf16 autocast, through the torch augmentation ops.

On a GPU the training step runs inside ``torch.autocast(bfloat16)``; the augmentations inside it
once received bf16 operands and failed (``index_copy_(): ... Float and BFloat16``). The same ops run
here on the CPU, where bf16 autocast exists too.
"""

from __future__ import annotations

import pytest
import torch

from astrobench.augment.pipeline import ViewPipeline
from astrobench.registry import METHODS
from astrobench.testing import check_training_step, flux_survey_batch

TRAINABLE = sorted(name for name in METHODS.names() if getattr(METHODS.get(name), "trainable", False))


def test_every_builtin_method_is_covered():
    assert {"simclr", "mocov2", "mae", "supervised"} <= set(TRAINABLE)


@pytest.mark.parametrize("name", TRAINABLE)
def test_training_step_under_bf16_autocast(name):
    loss = check_training_step(name, precision="bf16")
    assert loss > 0


def test_all_augmentations_under_bf16_autocast_keep_float32():
    batch, normalizer = flux_survey_batch()
    views = ViewPipeline(["RR", "JC", "GN", "GR", "PS", "FL", "MK"], None, normalizer, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        view = views(batch)
        evaluation = views.eval_view(batch)
    assert view.dtype == torch.float32 and evaluation.dtype == torch.float32
    assert torch.isfinite(view).all()


def test_a_plugin_method_gets_the_same_check():
    from astrobench.testing import TinyAutoencoder

    assert check_training_step(TinyAutoencoder, views=("RR", "GN", "PS")) > 0


class _GeneratorOn:
    """A CPU generator that says it lives on another device (as a CUDA generator does): every draw
    from it must ask for that device, never a hard-coded CPU."""

    def __init__(self, device: str, seed: int = 0):
        self.device = torch.device(device)
        self.inner = torch.Generator().manual_seed(seed)


def test_a_generator_on_another_device_is_drawn_on_its_own_device(monkeypatch):
    calls = []
    real = {name: getattr(torch, name) for name in ("rand", "randn", "randint", "randperm")}

    def recorder(name):
        def draw(*args, generator=None, device=None, **kwargs):
            if isinstance(generator, _GeneratorOn):
                calls.append(name)
                assert torch.device(device) == generator.device, f"torch.{name} on {device} with a {generator.device} generator"
                return real[name](*args, generator=generator.inner, device="cpu", **kwargs)
            return real[name](*args, generator=generator, device=device, **kwargs)
        return draw

    for name in real:
        monkeypatch.setattr(torch, name, recorder(name))
    batch, normalizer = flux_survey_batch()
    views = ViewPipeline(["RR", "JC", "GN", "GR", "PS", "FL", "MK"], None, normalizer, 32)
    first = views(batch, generator=_GeneratorOn("cuda", seed=3))
    again = views(batch, generator=_GeneratorOn("cuda", seed=3))
    assert len(calls) >= 14  # every op drew from it, twice
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # and the generator alone decided
