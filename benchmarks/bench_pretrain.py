"""Pretraining throughput of each method against the raw training step of its own backbone.

For each method the real pipeline runs (``benchmark.pretrain.pretrain``: data order, batches,
augmented views, the method's step, optimizer, non-finite guard) on a random flux survey, and timm's
plain training step runs on the same backbone, input shape, batch and precision (inputs already on
the device, a linear head, cross-entropy, the same optimizer; what timm's ``benchmark.py --bench
train`` times). The two do different work per image (SimCLR embeds two views, MAE a quarter of
the tokens and a decoder), so the raw rate is scaled by the ratio of training FLOPs per image that
``torch.utils.flop_counter.FlopCounterMode`` counts for each:

    ratio = pipeline images/s / (raw images/s x raw FLOPs per image / method FLOPs per image)

1.0 means the pipeline turns FLOPs into images as fast as the bare model does; the target on a GPU
is >= 0.85 (DESIGN section 6). Nothing here asserts a time.

Run on the CPU (small sizes; no target there):

    python3 -m pytest benchmarks/bench_pretrain.py --benchmark-enable -s -p no:cacheprovider

or as a script (the GPU check calls this):

    PYTHONPATH=src python3 benchmarks/bench_pretrain.py --device cuda --profile paper --batch 256
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from astrobench.benchmark.config import RunConfig
from astrobench.benchmark.pretrain import autocast_context, build_optimizer, peak_flops, pretrain, use_channels_last
from astrobench.benchmark.build import build_model, resolve_method
from astrobench.augment.normalize import Normalizer
from astrobench.datasets.schema import SurveyData
from astrobench.methods.base import create_backbone

METHODS = ("simclr", "mocov2", "mae", "supervised")
BANDS = ("u", "g", "r", "i", "z")


def random_survey(n: int, side: int = 64, seed: int = 0) -> SurveyData:
    """Elliptical blobs with sky and Poisson-like noise, a per-pixel ivar and a few flagged pixels:
    what the views need, made in a second (speed does not depend on the content)."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(side, dtype=np.float32) - (side - 1) / 2
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    galaxy = np.exp(-(xx**2 / 20 + yy**2 / 8)).astype(np.float32)
    image = np.empty((n, len(BANDS), side, side), dtype=np.float32)
    ivar = np.empty_like(image)
    for start in range(0, n, 1024):
        stop = min(n, start + 1024)
        source = galaxy * rng.uniform(0, 5, (stop - start, len(BANDS), 1, 1)).astype(np.float32)
        variance = (0.05 * rng.uniform(0.5, 1.5, (stop - start, len(BANDS), 1, 1))) ** 2 + 0.002 * source
        image[start:stop] = source + np.sqrt(variance) * rng.standard_normal(source.shape, dtype=np.float32)
        ivar[start:stop] = 1.0 / variance
    mask = np.zeros(image.shape, dtype=bool)
    mask[::7, :, :2, :3] = True  # every seventh image has a flagged corner
    image[mask], ivar[mask] = 0.0, 0.0
    return SurveyData(
        object_id=np.array([f"bench-{i}" for i in range(n)]), image=image, mask=mask, bands=BANDS,
        pixel_scale=np.full(n, 0.396, np.float32), psf_fwhm=np.full((n, len(BANDS)), 1.4, np.float32),
        ebv=rng.uniform(0, 0.1, n).astype(np.float32), ra=np.zeros(n), dec=np.zeros(n), ivar=ivar,
        labels={"kind": (np.arange(n) % 10).astype(np.int64)}, origin="<bench_pretrain random survey>",
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pipeline_rate(method: str, profile: str, data: SurveyData, device: torch.device, batch: int,
                  steps: int, warmup: int, compile: bool = False) -> dict[str, Any]:
    """Images/s of ``pretrain`` after ``warmup`` steps, its training FLOPs per image and MFU."""
    spec = resolve_method(method, RunConfig(methods=[method], profile=profile))
    steps = -(-steps // warmup) * warmup  # a whole number of logging intervals after the warm-up
    # a log (which waits for the device: the non-finite check) every `warmup` steps; timed from the first
    train = dataclasses.replace(spec.train, steps=warmup + steps, batch_size=batch, log_every=warmup,
                                warmup_steps=1, checkpoint_every=0, compile=compile)
    normalizer = Normalizer.fit(data)
    extra, targets = {}, None
    if spec.cls.uses_labels:
        extra, targets = {"num_classes": 10}, data.labels["kind"]
    model = build_model(spec, data, normalizer, seed=0, extra=extra)
    marks: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as run_dir:
        stats = pretrain(model, data, np.arange(len(data)), train, 0, Path(run_dir), device, {}, targets,
                         progress=lambda done, total, logs: marks.append((done, time.perf_counter())))
    (first, t0), (last, t1) = marks[0], marks[-1]
    rate = (last - first) * batch / (t1 - t0)
    peak = peak_flops(device)
    flops = stats.flops_per_image
    backbone = spec.options.get("backbone", inspect.signature(spec.cls).parameters["backbone"].default)
    return {"images_per_s": rate, "flops_per_image": flops, "mfu": rate * flops / peak if (peak and flops) else None,
            "backbone": backbone, "model": model}


def raw_step_rate(model: nn.Module, in_chans: int, side: int, device: torch.device, batch: int, steps: int,
                  warmup: int, precision: str = "auto", channels_last: bool = False) -> dict[str, Any]:
    """Images/s and training FLOPs per image of a bare ``model`` + linear head: random inputs
    already on the device, cross-entropy, fused AdamW on a GPU (timm's ``--bench train``)."""
    from torch.utils.flop_counter import FlopCounterMode

    head = nn.Linear(model.num_features, 1000)
    net = nn.Sequential(model, head).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    cfg = dataclasses.replace(RunConfig().train, precision=precision)
    optimizer = build_optimizer(list(net.parameters()), cfg, batch, device)
    inputs = torch.randn(batch, in_chans, side, side, device=device)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with autocast_context(cfg, device):
            loss = nn.functional.cross_entropy(net(inputs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    counter = FlopCounterMode(display=False)
    with counter:
        with autocast_context(cfg, device):
            loss = nn.functional.cross_entropy(net(inputs), target)
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    for _ in range(warmup):
        step()
    _synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    rate = steps * batch / (time.perf_counter() - t0)
    return {"images_per_s": rate, "flops_per_image": counter.get_total_flops() / batch}


def compare_method(method: str, profile: str, data: SurveyData, device: torch.device, batch: int, steps: int,
                   warmup: int, compile: bool = False) -> dict[str, Any]:
    """One row: the pipeline against the raw step of the method's own backbone (a fresh copy)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as timm's benchmark and the pretraining loop do
    piped = pipeline_rate(method, profile, data, device, batch, steps, warmup, compile)
    backbone_module = piped.pop("model").backbone
    fresh = create_like(backbone_module)
    cfg = RunConfig().train
    channels_last = use_channels_last(cfg, device) and not hasattr(fresh, "patch_embed")
    raw = raw_step_rate(fresh, data.n_bands, data.image_size, device, batch, steps, warmup, channels_last=channels_last)
    scaled = raw["images_per_s"] * raw["flops_per_image"] / piped["flops_per_image"] if piped["flops_per_image"] else None
    return {
        "method": method, "backbone": piped["backbone"], "batch": batch, "device": device_label(device),
        "pipeline_images_per_s": piped["images_per_s"], "method_gflop_per_image": (piped["flops_per_image"] or 0) / 1e9,
        "raw_images_per_s": raw["images_per_s"], "raw_gflop_per_image": raw["flops_per_image"] / 1e9,
        "raw_scaled_images_per_s": scaled, "ratio": piped["images_per_s"] / scaled if scaled else None,
        "mfu": piped["mfu"],
    }


def create_like(backbone: nn.Module) -> nn.Module:
    """A freshly initialised copy of a method's backbone (same class and configuration)."""
    import copy

    fresh = copy.deepcopy(backbone)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return fresh


def device_label(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | backbone | batch | pipeline img/s | GFLOP/img | raw img/s | raw GFLOP/img | raw scaled img/s | ratio | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mfu = "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        scaled = "" if r["raw_scaled_images_per_s"] is None else f"{r['raw_scaled_images_per_s']:,.0f}"
        lines.append(f"| {r['method']} | {r['backbone']} | {r['batch']} | {r['pipeline_images_per_s']:,.0f} | "
                     f"{r['method_gflop_per_image']:.2f} | {r['raw_images_per_s']:,.0f} | {r['raw_gflop_per_image']:.2f} | "
                     f"{scaled} | {ratio} | {mfu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--compile", action="store_true", help="train.compile: torch.compile the method's step")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data = random_survey(args.images)
    rows = []
    for method in args.methods.split(","):
        try:
            rows.append(compare_method(method, args.profile, data, device, args.batch, args.steps, args.warmup, args.compile))
            print(f"{method}: {rows[-1]['pipeline_images_per_s']:,.0f} img/s, ratio {rows[-1]['ratio']:.2f}", flush=True)
        except Exception as exc:  # one method's failure must not hide the others' numbers
            print(f"{method}: FAILED {type(exc).__name__}: {exc}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(format_table(rows))
    return 0 if len(rows) == len(args.methods.split(",")) else 1


# -- pytest-benchmark entry (CPU, small sizes) -----------------------------------------------------
def test_pipeline_against_raw_step_cpu(benchmark):
    device = torch.device("cpu")
    data = random_survey(256, side=32)
    rows: list[dict[str, Any]] = []

    def run() -> None:
        rows.clear()
        for method in METHODS:
            rows.append(compare_method(method, "smoke", data, device, batch=32, steps=6, warmup=3))

    benchmark.pedantic(run, rounds=1, iterations=1)
    print("\n" + format_table(rows))
    assert {r["method"] for r in rows} == set(METHODS)


if __name__ == "__main__":
    sys.exit(main())
