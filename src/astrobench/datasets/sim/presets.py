"""Survey presets: bands, pixel scale, seeing, sky, depth, saturation, main-sample magnitude limit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurveyPreset:
    name: str
    bands: tuple[str, ...]
    r_band: int  # index of the r-like band (magnitude limit, surface brightness, S/N)
    pixel_scale: float  # arcsec / pixel
    stamp: int  # pixels per side
    seeing_r: float  # median FWHM in the r-like band, arcsec
    seeing_band_factor: tuple[float, ...]  # FWHM_band / FWHM_r
    sky_mag: tuple[float, ...]  # sky brightness, AB mag / arcsec^2
    depth_mag: tuple[float, ...]  # 5-sigma point-source depth at median seeing, AB mag
    moffat_beta: float
    saturation: float  # nanomaggies per pixel above which a pixel is saturated
    main_mag_limit: float  # magnitude limit of the main (bright) sample in the r-like band
    faint_mag_limit: float  # dwarfs and their background look-alikes reach this magnitude
    extinction_survey: str | None  # key for astrobench.photometry.extinction_coefficients (None: generic)

    def noise_model(self) -> tuple[np.ndarray, np.ndarray]:
        """Nominal sky (nanomaggies/pixel) and gain (electrons per nanomaggy) per band.

        The pixel noise sigma follows from the point-source depth: S/N = 5 at ``depth_mag`` in the
        noise-equivalent area 4 pi sigma_psf^2 of a Gaussian PSF; the gain then makes the sky
        variance equal sky / gain, and a source adds flux / gain (Poisson).
        """
        area = self.pixel_scale**2
        sky = 10 ** ((22.5 - np.asarray(self.sky_mag)) / 2.5) * area
        sigma_psf_px = self.seeing_r * np.asarray(self.seeing_band_factor) / 2.3548 / self.pixel_scale
        flux_limit = 10 ** ((22.5 - np.asarray(self.depth_mag)) / 2.5)
        sigma_pixel = flux_limit / (5.0 * np.sqrt(4 * np.pi * sigma_psf_px**2))
        gain = sky / sigma_pixel**2
        return sky, gain


PRESETS: dict[str, SurveyPreset] = {
    # SDSS imaging: Stoughton et al. 2002 / DR7 typical values (sky, 95% completeness depths)
    "sdss": SurveyPreset(
        name="sdss", bands=("u", "g", "r", "i", "z"), r_band=2, pixel_scale=0.396, stamp=64,
        seeing_r=1.3, seeing_band_factor=(1.12, 1.06, 1.0, 0.97, 0.95),
        sky_mag=(22.1, 21.8, 20.9, 20.2, 18.9), depth_mag=(22.0, 22.2, 22.2, 21.3, 20.5),
        moffat_beta=3.0, saturation=250.0, main_mag_limit=17.77, faint_mag_limit=20.5,
        extinction_survey="sdss",
    ),
    # DECaLS DR9-like: 0.262"/px, grz, deeper, sharper
    "decals": SurveyPreset(
        name="decals", bands=("g", "r", "z"), r_band=1, pixel_scale=0.262, stamp=64,
        seeing_r=1.2, seeing_band_factor=(1.08, 1.0, 0.93),
        sky_mag=(22.0, 21.0, 19.0), depth_mag=(24.7, 23.9, 23.0),
        moffat_beta=3.5, saturation=2000.0, main_mag_limit=18.5, faint_mag_limit=21.5,
        extinction_survey="decals",
    ),
    # UNIONS-like: CFHT u, r; HSC g, z; Pan-STARRS i; 0.1857"/px, excellent r-band seeing
    "unions": SurveyPreset(
        name="unions", bands=("u", "g", "r", "i", "z"), r_band=2, pixel_scale=0.1857, stamp=64,
        seeing_r=0.7, seeing_band_factor=(1.3, 1.2, 1.0, 1.25, 1.2),
        sky_mag=(22.7, 22.0, 21.0, 20.2, 19.0), depth_mag=(23.7, 24.5, 24.9, 24.0, 23.6),
        moffat_beta=3.5, saturation=3000.0, main_mag_limit=18.5, faint_mag_limit=21.5,
        extinction_survey=None,  # mixed cameras: SDSS-like u, HSC-like g r i z coefficients
    ),
}


def get_preset(name: str) -> SurveyPreset:
    """The preset called ``name``; an unknown name is an error listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown survey preset {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[name]
