"""Batched rendering of PSF-convolved, pixel-integrated galaxy scenes in Fourier space (torch, CPU).

Every smooth component is an elliptical Sersic profile. Its 2D Fourier transform is a 1D function
of kappa = |A^T k| r_e (tabulated once per Sersic index), so drawing a component costs one table
lookup per Fourier pixel, whatever its index or size. The pixel response (a sinc) and a Moffat PSF
(analytic transform) multiply in Fourier space, so the stamp is pixel-integrated and convolved
exactly, up to aliasing beyond the padded grid. Spiral arms and tidal features are a zero-mean
azimuthal modulation of the disk drawn in real space and transformed with the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import special

from astrobench.datasets.sim.tables import load_tables

PAD = 16  # pixels of padding on each side: flux beyond it wraps around (negligible at these sizes)


@dataclass
class Components:
    """Flat list of the smooth components of a batch of scenes (M components for N scenes)."""

    owner: np.ndarray  # (M,) int, scene index
    flux: np.ndarray  # (M, C) nanomaggies
    sersic_row: np.ndarray  # (M,) int, row of the Sersic table
    r_e: np.ndarray  # (M,) half-light radius in pixels (circularised); 0 for a point source
    q: np.ndarray  # (M,) axis ratio b/a
    angle: np.ndarray  # (M,) position angle of the major axis from +x, radians
    x: np.ndarray  # (M,) centre, stamp pixel coordinates (pixel centres at 0..W-1)
    y: np.ndarray


@dataclass
class ArmModulations:
    """Zero-mean azimuthal modulations (spiral arms, tidal features) of exponential disks."""

    owner: np.ndarray  # (A,) scene index
    flux: np.ndarray  # (A, C) disk flux the modulation multiplies
    scale_length: np.ndarray  # (A,) exponential scale length along the major axis, pixels
    q: np.ndarray
    angle: np.ndarray
    x: np.ndarray
    y: np.ndarray
    arms: np.ndarray  # (A,) number of arms m
    pitch: np.ndarray  # (A,) pitch angle, radians
    amplitude: np.ndarray  # (A,) 0..1
    phase: np.ndarray  # (A,) radians
    sharpness: np.ndarray  # (A,) exponent p of ((1 + cos)/2)^p


@lru_cache(maxsize=8)
def _moffat_ft_table(beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Fourier transform of a unit-flux Moffat, as a function of u = 2 pi k alpha (log grid)."""
    log_u = np.linspace(np.log(1e-5), np.log(80.0), 4000)
    u = np.exp(log_u)
    nu = beta - 1.0
    ft = 2.0 ** (1.0 - nu) / special.gamma(nu) * u**nu * special.kv(nu, u)
    return log_u, np.nan_to_num(ft, nan=0.0)


def moffat_alpha(fwhm: np.ndarray | float, beta: float) -> np.ndarray:
    return np.asarray(fwhm) / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _interp_log(log_grid: torch.Tensor, values: torch.Tensor, log_x: torch.Tensor, row: torch.Tensor | None) -> torch.Tensor:
    """Linear interpolation on a uniform log grid; ``values`` from ``_value_slope``; ``row`` picks a table row."""
    step = float(log_grid[1] - log_grid[0])
    n = log_grid.shape[0]
    pos = ((log_x - float(log_grid[0])) / step).clamp_(0.0, n - 1.0001)
    lo = pos.to(torch.int64)
    frac = pos - lo
    if row is not None:
        lo = lo + row * n
    picked = values[lo]
    return picked[..., 0] + frac * picked[..., 1]


def _value_slope(values: torch.Tensor) -> torch.Tensor:
    """(rows * n, 2) table of value and slope to the next grid point: one gather per lookup."""
    table = values.reshape(-1, values.shape[-1])
    slope = torch.diff(table, dim=-1, append=table[:, -1:])
    return torch.stack([table, slope], dim=-1).reshape(-1, 2)


class Renderer:
    """Draws noiseless scenes: ``render(n_scenes, components, arms, psf_fwhm_px) -> (N, C, H, W)``."""

    def __init__(self, stamp: int, moffat_beta: float):
        self.stamp = stamp
        self.size = stamp + 2 * PAD
        self.beta = moffat_beta
        tables = load_tables()
        self.log_kappa = torch.as_tensor(tables.log_kappa, dtype=torch.float32)
        self.sersic_ft = _value_slope(torch.as_tensor(tables.sersic_ft, dtype=torch.float32))
        log_u, ft = _moffat_ft_table(moffat_beta)
        self.moffat_log_u = torch.as_tensor(log_u, dtype=torch.float32)
        self.moffat_ft = _value_slope(torch.as_tensor(ft, dtype=torch.float32))
        fy = torch.fft.fftfreq(self.size, dtype=torch.float64)
        fx = torch.fft.rfftfreq(self.size, dtype=torch.float64)
        self.fy, self.fx = (t.to(torch.float32).reshape(-1) for t in torch.meshgrid(fy, fx, indexing="ij"))
        self.pixel_response = (torch.sinc(self.fx) * torch.sinc(self.fy)).to(torch.float32)
        self.k_radius = torch.sqrt(self.fx**2 + self.fy**2)
        coords = torch.arange(stamp, dtype=torch.float32)
        self.grid_y, self.grid_x = torch.meshgrid(coords, coords, indexing="ij")

    def render(self, n_scenes: int, comps: Components, arms: ArmModulations | None, psf_fwhm_px: np.ndarray) -> np.ndarray:
        n_bands = comps.flux.shape[1]
        scene_hat = torch.zeros((n_scenes, n_bands, self.fx.shape[0]), dtype=torch.complex64)
        self._add_components(scene_hat, comps)
        if arms is not None and len(arms.owner):
            self._add_arms(scene_hat, arms)
        scene_hat *= self._psf_hat(psf_fwhm_px)
        image = torch.fft.irfft2(scene_hat.reshape(n_scenes, n_bands, self.size, -1), s=(self.size, self.size))
        return image[..., PAD : PAD + self.stamp, PAD : PAD + self.stamp].contiguous().numpy()

    def _add_components(self, scene_hat: torch.Tensor, comps: Components) -> None:
        point = comps.r_e <= 0
        gaussian = ~point & (comps.sersic_row == 0)
        for group, kind in ((point, "point"), (gaussian, "gaussian"), (~point & ~gaussian, "sersic")):
            if group.any():
                self._add_group(scene_hat, comps, np.flatnonzero(group), kind)

    def _add_group(self, scene_hat: torch.Tensor, comps: Components, idx: np.ndarray, kind: str) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32)[idx])[:, None]  # noqa: E731
        if kind == "point":
            profile = self.pixel_response.expand(len(idx), -1)
        else:
            r_e, q, angle = t(comps.r_e), t(comps.q), t(comps.angle)
            cos, sin = torch.cos(angle), torch.sin(angle)
            along = cos * self.fx + sin * self.fy
            across = -sin * self.fx + cos * self.fy
            kappa_sq = r_e**2 * (along**2 / q + across**2 * q)
            if kind == "gaussian":  # n = 0.5: analytic transform, sigma = r_e / sqrt(2 ln 2)
                profile = torch.exp(kappa_sq * (-(math.pi**2) / math.log(2.0))) * self.pixel_response
            else:
                row = torch.as_tensor(comps.sersic_row[idx], dtype=torch.int64)[:, None]
                profile = _interp_log(self.log_kappa, self.sersic_ft, 0.5 * torch.log(kappa_sq + 1e-30), row)
                profile *= self.pixel_response
        shift = (t(comps.x) + PAD) * self.fx + (t(comps.y) + PAD) * self.fy
        comp_hat = torch.polar(profile.contiguous(), shift * (-2 * math.pi))
        owner = torch.as_tensor(comps.owner[idx], dtype=torch.int64)
        flux = torch.as_tensor(np.asarray(comps.flux[idx], dtype=np.float32))
        scene_hat.index_add_(0, owner, comp_hat[:, None, :] * flux[:, :, None])

    def _add_arms(self, scene_hat: torch.Tensor, arms: ArmModulations) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))[:, None, None]  # noqa: E731
        dx, dy = self.grid_x - t(arms.x), self.grid_y - t(arms.y)
        cos, sin = torch.cos(t(arms.angle)), torch.sin(t(arms.angle))
        u = cos * dx + sin * dy
        v = (-sin * dx + cos * dy) / t(arms.q)
        h = t(arms.scale_length)
        radius = torch.sqrt(u**2 + v**2) + 1e-3
        theta = torch.atan2(v, u)
        psi = t(arms.arms) * (theta - torch.log(radius / h) / torch.tan(t(arms.pitch))) - t(arms.phase)
        p = t(arms.sharpness)
        mean = torch.exp(torch.lgamma(p + 0.5) - torch.lgamma(p + 1.0)) / math.sqrt(math.pi)
        wave = (((1 + torch.cos(psi)) / 2) ** p - mean) / (1 - mean)
        disk = torch.exp(-radius / h) / (2 * math.pi * h**2 * t(arms.q))
        taper = 1 - torch.exp(-((radius / (0.7 * h)) ** 2))
        modulation = disk * t(arms.amplitude) * wave * taper
        padded = torch.nn.functional.pad(modulation, (PAD, PAD, PAD, PAD))
        mod_hat = torch.fft.rfft2(padded).reshape(len(arms.owner), -1)
        owner = torch.as_tensor(arms.owner, dtype=torch.int64)
        flux = torch.as_tensor(np.asarray(arms.flux, dtype=np.float32))
        scene_hat.index_add_(0, owner, mod_hat[:, None, :] * flux[:, :, None])

    def _psf_hat(self, psf_fwhm_px: np.ndarray) -> torch.Tensor:
        alpha = torch.as_tensor(moffat_alpha(psf_fwhm_px, self.beta), dtype=torch.float32)[..., None]
        log_u = torch.log(2 * math.pi * self.k_radius * alpha + 1e-30)
        return _interp_log(self.moffat_log_u, self.moffat_ft, log_u, None)
