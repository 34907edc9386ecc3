"""The batched renderer against GalSim (the test oracle), and the PSF it draws."""

from __future__ import annotations

import numpy as np
import pytest

from astrobench.datasets.sim.render import Components, Renderer
from astrobench.datasets.sim.tables import load_tables

galsim = pytest.importorskip("galsim")


def _draw_both(bulge_n: float, fwhm_px: float, beta: float, x: float, y: float):
    tables = load_tables()
    comps = Components(
        owner=np.array([0, 0]), flux=np.array([[300.0], [700.0]]), sersic_row=tables.sersic_index(np.array([bulge_n, 1.0])),
        r_e=np.array([2.5, 7.0]), q=np.array([0.75, 0.45]), angle=np.array([0.4, 0.4]), x=np.array([x, x]), y=np.array([y, y]),
    )
    ours = Renderer(64, beta).render(1, comps, None, np.array([[fwhm_px]]))[0, 0]
    bulge = galsim.Sersic(bulge_n, half_light_radius=2.5, trunc=8 * 2.5, flux=300).shear(q=0.75, beta=0.4 * galsim.radians)
    disk = galsim.Sersic(1.0, half_light_radius=7.0, trunc=8 * 7.0, flux=700).shear(q=0.45, beta=0.4 * galsim.radians)
    psf = galsim.Moffat(beta=beta, fwhm=fwhm_px)
    image = galsim.ImageD(64, 64, scale=1.0)
    # GalSim's true centre of a 64-pixel image is pixel index 31.5 in 0-based coordinates
    galsim.Convolve(bulge + disk, psf).drawImage(image, offset=(x - 31.5, y - 31.5))
    return ours, image.array


@pytest.mark.parametrize("bulge_n, fwhm_px, beta", [(4.0, 3.3, 3.0), (2.5, 2.4, 3.5)])
def test_bulge_disk_matches_galsim(bulge_n: float, fwhm_px: float, beta: float) -> None:
    x, y = 32.3, 31.8
    ours, oracle = _draw_both(bulge_n, fwhm_px, beta, x, y)
    assert ours.sum() == pytest.approx(oracle.sum(), rel=0.02)
    yy, xx = np.mgrid[:64, :64]
    radius = np.hypot(xx - x, yy - y)
    for aperture in (1.5, 3, 6, 12, 24):
        inside = radius < aperture
        assert ours[inside].sum() == pytest.approx(oracle[inside].sum(), rel=0.02), aperture
    assert np.abs(ours - oracle).max() < 0.01 * oracle.max()


@pytest.mark.parametrize("r_e, q, angle", [(1.2, 0.6, 1.0), (0.8, 1.0, 0.0), (11.0, 0.68, 1.41)])
def test_single_sersic_with_gaussian_limit_matches_galsim(r_e: float, q: float, angle: float) -> None:
    # n = 0.5 (the knots) uses the analytic Gaussian transform: separable when round, and large
    # tilted ones must not overflow (exp of the cross term alone would)
    tables = load_tables()
    comps = Components(owner=np.array([0]), flux=np.array([[50.0]]), sersic_row=tables.sersic_index(np.array([0.5])),
                       r_e=np.array([r_e]), q=np.array([q]), angle=np.array([angle]), x=np.array([30.0]), y=np.array([33.0]))
    ours = Renderer(64, 3.5).render(1, comps, None, np.array([[2.8]]))[0, 0]
    image = galsim.ImageD(64, 64, scale=1.0)
    gal = galsim.Gaussian(half_light_radius=r_e, flux=50).shear(q=q, beta=angle * galsim.radians)
    galsim.Convolve(gal, galsim.Moffat(beta=3.5, fwhm=2.8)).drawImage(image, offset=(30 - 31.5, 33 - 31.5))
    assert np.abs(ours - image.array).max() < 0.01 * image.array.max()


def _fwhm_of_star(image: np.ndarray, x: float, y: float, beta: float) -> float:
    """Fit a pixel-integrated (8x8 sub-sampled) Moffat of free FWHM, flux and centre to the star."""
    from scipy.optimize import least_squares

    sub = (np.arange(8) + 0.5) / 8 - 0.5
    yy, xx = np.mgrid[:64, :64]
    px = (xx[..., None, None] + sub[None, None, None, :]).astype(float)
    py = (yy[..., None, None] + sub[None, None, :, None]).astype(float)

    def model(p):
        fwhm, flux, cx, cy = p
        alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
        r2 = (px - cx) ** 2 + (py - cy) ** 2
        profile = (beta - 1) / (np.pi * alpha**2) * (1 + r2 / alpha**2) ** (-beta)
        return flux * profile.mean(axis=(2, 3))

    fit = least_squares(lambda p: (model(p) - image).ravel(), x0=[3.0, image.sum(), x, y])
    return float(fit.x[0])


@pytest.mark.parametrize("fwhm_arcsec", [1.0, 1.4, 2.0])
def test_star_fwhm_matches_requested_seeing(fwhm_arcsec: float) -> None:
    pixel_scale = 0.396
    comps = Components(owner=np.array([0]), flux=np.array([[1000.0]]), sersic_row=np.array([0]), r_e=np.array([0.0]),
                       q=np.array([1.0]), angle=np.array([0.0]), x=np.array([32.0]), y=np.array([32.0]))
    star = Renderer(64, 3.0).render(1, comps, None, np.array([[fwhm_arcsec / pixel_scale]]))[0, 0]
    assert star.sum() == pytest.approx(1000.0, rel=0.01)
    measured = _fwhm_of_star(star, 32, 32, beta=3.0) * pixel_scale
    assert measured == pytest.approx(fwhm_arcsec, rel=0.02)


def test_batched_scene_sums_match_the_per_scene_products() -> None:
    """The GPU's summation (k-th component of every scene in one pass) draws the CPU's scenes."""
    from astrobench.datasets.sim.population import N_UNIFORMS, sample_population
    from astrobench.datasets.sim.presets import get_preset

    preset = get_preset("sdss")
    pop = sample_population(preset, np.random.default_rng(5).random((48, N_UNIFORMS)))
    assert np.bincount(pop.components.owner).max() >= 8 and len(pop.arms.owner) > 0  # many ranks, arms too
    args = (48, pop.components, pop.arms, pop.psf_fwhm / preset.pixel_scale)
    per_scene = Renderer(64, 3.0).render(*args)
    batched = Renderer(64, 3.0, batched_sums=True).render(*args)
    scale = np.abs(per_scene).max(axis=(2, 3), keepdims=True)
    assert np.max(np.abs(batched - per_scene) / scale) < 1e-5
