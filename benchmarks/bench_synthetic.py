"""Generation speed of the simulated survey, and the ratio to drawing galaxies with GalSim.

    python -m pytest benchmarks/bench_synthetic.py --benchmark-enable -p no:cacheprovider -s
    python benchmarks/bench_synthetic.py --n 20000 --device cuda [--out DIR]   # one rate, any device

``simulator_rate(n, device)`` is the number a GPU check calls: galaxies/s of the whole pipeline
(population, scenes, noise, ivar, masks, back on the host), timed after a warm-up chunk; with
``out`` it times ``generate_to_disk`` (Arrow shards, content hash, manifest) instead.

Two ratios, both against GalSim drawing bulge + disk galaxies one by one on one core (5 bands,
per-band Moffat PSF, 64x64, warm caches):
- full pipeline: our complete scenes (bulge, disk, bar, arms, knots, companions, neighbours, stars,
  extinction, noise, ivar, masks) against GalSim drawing only their bulge + disk. Ours does more.
- like for like: our batched renderer drawing exactly the same bulge + disk components with the
  same PSFs (noiseless, nothing else), one thread, against the same GalSim draws.
Target: >= 300 galaxies/s for sdss on 2 CPU cores, full-pipeline ratio per core >= 25x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from astrobench.datasets import synthetic
from astrobench.datasets.sim.population import sample_population
from astrobench.datasets.sim.presets import get_preset
from astrobench.datasets.sim.render import Components

N_GALAXIES = 2048
N_GALSIM = 48
RESULTS: dict[str, float] = {}


def simulator_rate(n: int, device: str = "cpu", preset: str = "sdss", workers: int | None = None,
                   out: str | Path | None = None) -> float:
    """Galaxies/s making ``n`` galaxies on ``device``, after a warm-up chunk (tables, FFT plans,
    CUDA context and kernels). Without ``out`` the chunks are made and dropped (memory stays flat
    for any n); with ``out`` (a folder to create) they are streamed to disk by ``generate_to_disk``."""
    import torch

    warm = synthetic.DEVICE_CHUNK_SIZE if torch.device(device).type != "cpu" else synthetic.CHUNK_SIZE * 2
    for _ in synthetic.iter_chunks(preset, min(n, warm), seed=12345, workers=workers, device=device):
        pass
    start = time.perf_counter()
    if out is not None:
        synthetic.generate_to_disk(preset, n, 0, out, workers=workers, device=device)
    else:
        made = sum(len(chunk.object_id) for chunk in synthetic.iter_chunks(preset, n, seed=0, workers=workers, device=device))
        assert made == n, (made, n)
    return n / (time.perf_counter() - start)


def test_simulator_rate_in_memory_and_to_disk(benchmark) -> None:
    """The function the GPU check calls, on this machine's CPU: generation alone and to disk."""
    rate = benchmark.pedantic(lambda: simulator_rate(512, "cpu", workers=2), rounds=1, iterations=1)
    folder = Path(tempfile.mkdtemp(prefix="astrobench-bench-"))
    try:
        disk = simulator_rate(512, "cpu", workers=2, out=folder / "survey")
        size = sum(f.stat().st_size for f in (folder / "survey").rglob("*") if f.is_file())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    benchmark.extra_info.update(galaxies_per_second=rate, to_disk_galaxies_per_second=disk, bytes_per_galaxy=size / 512)
    print(f"\nsimulator_rate(512, 'cpu'): {rate:.0f} galaxies/s; to disk {disk:.0f} galaxies/s, "
          f"{size / 512 / 1024:.1f} KiB a galaxy on disk")


def test_generate_sdss_two_workers(benchmark) -> None:
    synthetic.generate("sdss", 128, seed=99, workers=2)  # warm-up: tables, FFT plans
    data = benchmark.pedantic(lambda: synthetic.generate("sdss", N_GALAXIES, seed=1, workers=2), rounds=2, iterations=1)
    assert len(data) == N_GALAXIES
    rate = N_GALAXIES / benchmark.stats.stats.mean
    RESULTS["ours_2_workers"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    print(f"\nsynthetic sdss, 2 worker threads: {rate:.0f} galaxies/s")


def test_generate_sdss_one_process(benchmark) -> None:
    # warm-up round: this process's first render pays one-off set-up (tables, torch and FFT plans)
    data = benchmark.pedantic(lambda: synthetic.generate("sdss", 1024, seed=1, workers=1), rounds=3, iterations=1,
                              warmup_rounds=1)
    rate = len(data) / benchmark.stats.stats.mean
    RESULTS["ours_1_worker"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    print(f"\nsynthetic sdss, 1 process: {rate:.0f} galaxies/s")


def _bulge_disk(n_objects: int, seed: int):
    """A population and, per object, its first two components (bulge and disk come first)."""
    preset = get_preset("sdss")
    pop = sample_population(preset, np.random.default_rng(seed).random((n_objects, synthetic.N_UNIFORMS)))
    owner = pop.components.owner
    order = np.argsort(owner, kind="stable")
    first = np.r_[True, np.diff(owner[order]) != 0]
    rank = np.arange(len(order)) - np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    return preset, pop, np.sort(order[rank < 2])


def test_ours_bulge_disk_like_for_like(benchmark) -> None:
    """Our renderer on exactly the components and PSFs GalSim draws below, 64 per batch, one thread."""
    import torch

    preset, pop, keep = _bulge_disk(N_GALAXIES, seed=0)
    c = pop.components
    renderer = synthetic._renderer(preset, "cpu")
    chunks = []
    for a in range(0, N_GALAXIES, synthetic.CHUNK_SIZE):
        sel = keep[(c.owner[keep] >= a) & (c.owner[keep] < a + synthetic.CHUNK_SIZE)]
        comps = Components(owner=c.owner[sel] - a, flux=c.flux[sel], sersic_row=c.sersic_row[sel],
                           r_e=np.maximum(c.r_e[sel], 0.05), q=c.q[sel], angle=c.angle[sel], x=c.x[sel], y=c.y[sel])
        chunks.append((comps, pop.psf_fwhm[a : a + synthetic.CHUNK_SIZE] / preset.pixel_scale))

    def draw() -> None:
        for comps, psf in chunks:
            renderer.render(len(psf), comps, None, psf)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.pedantic(draw, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)
    rate = N_GALAXIES / benchmark.stats.stats.mean
    RESULTS["ours_bulge_disk"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    print(f"\nour renderer, bulge+disk only, 1 thread: {rate:.0f} galaxies/s")


def _galsim_bulge_disk(n_objects: int) -> float:
    """Draw bulge + disk galaxies (5 bands, per-band Moffat PSF) one by one with GalSim: galaxies/s."""
    galsim = pytest.importorskip("galsim")
    preset, pop, keep = _bulge_disk(n_objects, seed=0)
    comps = pop.components
    mine = [keep[comps.owner[keep] == obj] for obj in range(n_objects)]
    start = time.perf_counter()
    for obj in range(n_objects):
        for band in range(len(preset.bands)):
            parts = []
            for c in mine[obj]:
                n = float(np.clip(comps.sersic_row[c] * 0.05 + 0.5, 0.3, 6.2))
                profile = galsim.Sersic(n, half_light_radius=max(comps.r_e[c], 0.05), flux=comps.flux[c, band])
                parts.append(profile.shear(q=comps.q[c], beta=comps.angle[c] * galsim.radians)
                             .shift(comps.x[c] - 31.5, comps.y[c] - 31.5))
            psf = galsim.Moffat(beta=preset.moffat_beta, fwhm=pop.psf_fwhm[obj, band] / preset.pixel_scale)
            image = galsim.ImageF(64, 64, scale=1.0)
            galsim.Convolve(galsim.Add(parts), psf).drawImage(image)
    return n_objects / (time.perf_counter() - start)


def test_galsim_one_by_one(benchmark) -> None:
    # the first pass builds GalSim's table for each new Sersic index (what the old benchmark timed);
    # the ratios use later passes: steady state, as in a long run
    cold = _galsim_bulge_disk(N_GALSIM)
    rates: list[float] = []
    benchmark.pedantic(lambda: rates.append(_galsim_bulge_disk(N_GALSIM)), rounds=3, iterations=1)
    rate = len(rates) / sum(1 / r for r in rates)  # galaxies over the mean drawing time
    RESULTS["galsim_1_core"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    benchmark.extra_info["galaxies_per_second_cold_caches"] = cold
    print(f"\nGalSim bulge+disk one by one (1 core): {rate:.1f} galaxies/s (first pass, cold caches: {cold:.1f})")
    ratios = {
        "full pipeline, 1 process": RESULTS.get("ours_1_worker"),
        "full pipeline, 2 workers (2 cores vs 1)": RESULTS.get("ours_2_workers"),
        "like for like (bulge+disk, 1 thread)": RESULTS.get("ours_bulge_disk"),
    }
    for name, ours in ratios.items():
        if ours is not None:
            benchmark.extra_info[f"ratio {name}"] = ours / rate
            print(f"speed-up vs GalSim, {name}: {ours / rate:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description="galaxies/s of the simulated survey on one device")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="sdss")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--out", help="also time generate_to_disk into this (new) folder, and report its size")
    args = parser.parse_args()
    result: dict[str, float | str | int] = {"n": args.n, "device": args.device, "preset": args.preset}
    result["galaxies_per_second"] = simulator_rate(args.n, args.device, args.preset, args.workers)
    if args.out:
        result["to_disk_galaxies_per_second"] = simulator_rate(args.n, args.device, args.preset, args.workers, args.out)
        size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
        result["bytes_per_galaxy"] = size / args.n
    print(json.dumps(result))


if __name__ == "__main__":
    main()
