"""Checks that need a CUDA GPU (skipped without one; `benchmarks/device_check.sh` runs them).

The CPU tests run the same torch ops; these pin what only a GPU can show: the real CUDA autocast,
CUDA generators, device-resident training rows, and that the GPU path agrees with the CPU's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from astrobench.augment import functional as AF
from astrobench.augment.pipeline import ViewPipeline
from astrobench.datasets.batches import ResidentRows, make_batch
from astrobench.benchmark.config import RunConfig
from astrobench.benchmark.pretrain import pretrain
from astrobench.benchmark.build import build_model, resolve_method
from astrobench.augment.normalize import Normalizer
from astrobench.testing import flux_survey_batch, make_tiny_survey

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
ALL_CODES = ["RR", "JC", "GN", "GR", "PS", "FL", "MK"]


def to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


@pytest.mark.parametrize("method", ["simclr", "mocov2", "mae", "supervised"])
def test_each_method_pretrains_under_bf16_on_the_gpu(tmp_path, method):
    data = make_tiny_survey(64, image_size=32, bands=("u", "g", "r", "i", "z"))
    spec = resolve_method(method, RunConfig(methods=[method], profile="smoke"))
    train = dataclasses.replace(spec.train, steps=4, batch_size=16, precision="bf16", log_every=2)
    extra, targets = ({"num_classes": 2}, data.labels["big"]) if spec.cls.uses_labels else ({}, None)
    model = build_model(spec, data, Normalizer.fit(data), 0, extra)
    stats = pretrain(model, data, np.arange(64), train, 0, tmp_path, CUDA, {}, targets)
    assert all(np.isfinite(loss) for _, loss in stats.losses)
    assert stats.flops_per_image and stats.images_per_s


def test_resident_rows_on_the_gpu_equal_the_host_batch():
    data = make_tiny_survey(40, image_size=16)
    rows = np.array([3, 9, 0, 31])
    resident = ResidentRows(data, rows, CUDA)
    got = resident.batch(torch.tensor([2, 0, 3], device=CUDA))
    expected = make_batch(data, rows[[2, 0, 3]])
    for key in ("image", "mask", "ivar", "psf_fwhm", "ebv", "pixel_scale"):
        assert torch.equal(got[key].cpu(), expected[key]), key


def test_a_cuda_generator_decides_the_views():
    batch, normalizer = flux_survey_batch()
    batch = to(batch, CUDA)
    views = ViewPipeline(ALL_CODES, None, normalizer, 32)
    first = views(batch, generator=torch.Generator(device="cuda").manual_seed(5))
    again = views(batch, generator=torch.Generator(device="cuda").manual_seed(5))
    other = views(batch, generator=torch.Generator(device="cuda").manual_seed(6))
    assert first.device.type == "cuda" and torch.equal(first, again) and not torch.equal(first, other)


def test_views_under_cuda_autocast_stay_float32():
    batch, normalizer = flux_survey_batch()
    batch = to(batch, CUDA)
    views = ViewPipeline(ALL_CODES, None, normalizer, 32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        view = views(batch)
    assert view.dtype == torch.float32 and bool(torch.isfinite(view).all())


def test_a_cpu_generator_gives_the_same_views_on_both_devices():
    # parameters drawn from a CPU generator are the same wherever the batch is; the pixel noise is
    # drawn on the generator's device too, so whole views agree up to float rounding
    batch, normalizer = flux_survey_batch()
    views = ViewPipeline(ALL_CODES, None, normalizer, 32)
    on_cpu = views(batch, generator=torch.Generator().manual_seed(2))
    on_gpu = views(to(batch, CUDA), generator=torch.Generator().manual_seed(2)).cpu()
    assert torch.allclose(on_cpu, on_gpu, atol=2e-3, rtol=1e-3)


def test_resampling_blur_and_noise_level_agree_with_the_cpu():
    batch, _ = flux_survey_batch()
    matrix = AF.rotation_flip_matrix(torch.linspace(0, 300, 8), torch.arange(8) % 2 == 0)
    cpu = AF.resample(batch["image"], matrix, (24, 24), mask=batch["mask"], ivar=batch["ivar"])
    gpu = AF.resample(batch["image"].to(CUDA), matrix.to(CUDA), (24, 24), mask=batch["mask"].to(CUDA), ivar=batch["ivar"].to(CUDA))
    assert torch.equal(cpu[1], gpu[1].cpu())  # the same invalid pixels
    assert torch.allclose(cpu[0], gpu[0].cpu(), atol=1e-4) and torch.allclose(cpu[2], gpu[2].cpu(), rtol=1e-4)
    fwhm = torch.linspace(0.0, 4.0, 8)
    blurred = AF.gaussian_blur_fwhm(batch["image"], fwhm, 8)
    assert torch.allclose(blurred, AF.gaussian_blur_fwhm(batch["image"].to(CUDA), fwhm.to(CUDA), 8).cpu(), atol=1e-5)
    sigma = AF.noise_sigma(batch["image"], batch["mask"], batch["ivar"])
    assert torch.allclose(sigma, AF.noise_sigma(*(batch[k].to(CUDA) for k in ("image", "mask", "ivar"))).cpu(), rtol=1e-6)
