"""Generation speed of the simulated survey, and the ratio to drawing the same galaxies with GalSim.

    python -m pytest benchmarks/bench_synthetic.py --benchmark-enable -p no:cacheprovider -s

Target: >= 300 galaxies/s for sdss (5 bands, 64x64) on 2 CPU cores, >= 25x GalSim one by one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from astrobench.datasets import synthetic
from astrobench.datasets.sim.population import sample_population
from astrobench.datasets.sim.presets import get_preset

N_GALAXIES = 2048
N_GALSIM = 48
RESULTS: dict[str, float] = {}


def test_generate_sdss_two_workers(benchmark) -> None:
    synthetic.generate("sdss", 128, seed=99, workers=2)  # warm the imports
    data = benchmark.pedantic(lambda: synthetic.generate("sdss", N_GALAXIES, seed=1, workers=2), rounds=2, iterations=1)
    assert len(data) == N_GALAXIES
    rate = N_GALAXIES / benchmark.stats.stats.mean
    RESULTS["ours_2_workers"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    print(f"\nsynthetic sdss, 2 workers: {rate:.0f} galaxies/s")


def test_generate_sdss_one_process(benchmark) -> None:
    data = benchmark.pedantic(lambda: synthetic.generate("sdss", 512, seed=1, workers=1), rounds=2, iterations=1)
    rate = len(data) / benchmark.stats.stats.mean
    RESULTS["ours_1_worker"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    print(f"\nsynthetic sdss, 1 process: {rate:.0f} galaxies/s")


def _galsim_bulge_disk(n_objects: int) -> float:
    """Draw the same bulge + disk galaxies (5 bands, per-band Moffat PSF) one by one with GalSim."""
    galsim = pytest.importorskip("galsim")
    preset = get_preset("sdss")
    uniforms = np.random.default_rng(0).random((n_objects, synthetic.N_UNIFORMS))
    pop = sample_population(preset, uniforms)
    comps = pop.components
    start = time.perf_counter()
    for obj in range(n_objects):
        mine = np.flatnonzero(comps.owner == obj)[:2]  # bulge and disk come first
        for band in range(len(preset.bands)):
            parts = []
            for c in mine:
                n = float(np.clip(comps.sersic_row[c] * 0.05 + 0.5, 0.3, 6.2))
                profile = galsim.Sersic(n, half_light_radius=max(comps.r_e[c], 0.05), flux=comps.flux[c, band])
                parts.append(profile.shear(q=comps.q[c], beta=comps.angle[c] * galsim.radians))
            psf = galsim.Moffat(beta=preset.moffat_beta, fwhm=pop.psf_fwhm[obj, band] / preset.pixel_scale)
            image = galsim.ImageF(64, 64, scale=1.0)
            galsim.Convolve(galsim.Add(parts), psf).drawImage(image)
    return n_objects / (time.perf_counter() - start)


def test_galsim_one_by_one(benchmark) -> None:
    rate = benchmark.pedantic(lambda: _galsim_bulge_disk(N_GALSIM), rounds=1, iterations=1)
    RESULTS["galsim_1_core"] = rate
    benchmark.extra_info["galaxies_per_second"] = rate
    print(f"\nGalSim bulge+disk one by one (1 core): {rate:.1f} galaxies/s")
    if "ours_2_workers" in RESULTS:
        ratio = RESULTS["ours_2_workers"] / rate
        per_core = RESULTS.get("ours_1_worker", float("nan")) / rate
        benchmark.extra_info["ratio_2_workers_vs_galsim"] = ratio
        benchmark.extra_info["ratio_per_core"] = per_core
        print(f"speed-up: {ratio:.0f}x (2 workers vs GalSim on 1 core), {per_core:.0f}x per core")
