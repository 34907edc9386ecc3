"""Batched rendering of PSF-convolved, pixel-integrated galaxy scenes in Fourier space (torch, on
the CPU or a GPU).

Every smooth component is an elliptical Sersic profile. Its 2D Fourier transform is a 1D function
of kappa = |A^T k| r_e (tabulated once per Sersic index), so drawing a component costs one table
lookup per Fourier pixel, whatever its index or size. The pixel response (a sinc) and a Moffat PSF
(analytic transform) multiply in Fourier space, so the stamp is pixel-integrated and convolved
exactly, up to aliasing beyond the padded grid. Spiral arms and tidal features are a zero-mean
azimuthal modulation of the disk drawn in real space and transformed with the rest.

Speed: the pixel response, the centre shift and round Gaussians (knots, stars) are products of 1D
factors in fx and fy (one outer product per component); the Sersic lookups are one grid_sample
pass; each scene's components are summed with one small matrix product (bands x components x
Fourier pixels); the radial PSF is looked up once per distinct |k|.
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


def _interp_log(rows: torch.Tensor, log_grid: tuple[float, float], log_x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of each table row (B, n), tabulated on a uniform grid from log_grid[0]
    to log_grid[1], at log_x (B, P), clamped at both ends (log_x = -inf gives the first value).

    One grid_sample pass does the clamp, the gather and the interpolation.
    """
    lo, hi = log_grid
    grid = torch.zeros((*log_x.shape[:-1], 1, log_x.shape[-1], 2), dtype=torch.float32, device=log_x.device)
    torch.sub(log_x, 0.5 * (lo + hi), out=grid[..., 0, :, 0]).mul_(2.0 / (hi - lo))
    values = torch.nn.functional.grid_sample(rows[:, None, None, :], grid, mode="bilinear", padding_mode="border",
                                             align_corners=True)
    return values.reshape(log_x.shape)


def _per_scene_sum_by_rank(scene_hat: torch.Tensor, owner: np.ndarray, flux: np.ndarray, comp_hat: torch.Tensor) -> None:
    """``_per_scene_sum`` for a GPU: the k-th component of every scene in one pass (a scene has at
    most ~16), instead of one small matrix product (one kernel launch) per scene.

    ``owner`` must be sorted. Rounds differently from the CPU's matrix products.
    """
    m = len(owner)
    starts = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
    rank = np.arange(m) - np.repeat(starts, np.diff(np.r_[starts, m]))
    comp = torch.view_as_real(comp_hat).reshape(m, -1)
    flux_t = torch.as_tensor(np.asarray(flux, dtype=np.float32), device=comp_hat.device)
    out = torch.view_as_real(scene_hat).reshape(scene_hat.shape[0], scene_hat.shape[1], -1)
    for k in range(int(rank.max()) + 1 if m else 0):
        sel = torch.as_tensor(np.flatnonzero(rank == k), device=comp_hat.device)
        scenes = torch.as_tensor(owner[rank == k], dtype=torch.int64, device=comp_hat.device)
        # each scene at most once per pass: a plain (deterministic) add per row
        out.index_add_(0, scenes, flux_t[sel, :, None] * comp[sel, None, :])


def _per_scene_sum(scene_hat: torch.Tensor, owner: np.ndarray, flux: np.ndarray, comp_hat: torch.Tensor) -> None:
    """scene_hat[n, b] += sum over the components m of scene n of flux[m, b] * comp_hat[m].

    ``owner`` must be sorted. One small matrix product per scene, so the (M, C, K) products of
    every component with every band are never materialised.
    """
    comp = torch.view_as_real(comp_hat).reshape(len(owner), -1)
    flux_t = torch.as_tensor(np.asarray(flux, dtype=np.float32), device=comp_hat.device).T
    out = torch.view_as_real(scene_hat).reshape(scene_hat.shape[0], scene_hat.shape[1], -1)
    edges = np.flatnonzero(np.diff(owner)) + 1
    for a, b in zip(np.r_[0, edges], np.r_[edges, len(owner)]):
        out[owner[a]].addmm_(flux_t[:, a:b], comp[a:b])


class Renderer:
    """Draws noiseless scenes: ``render(n_scenes, components, arms, psf_fwhm_px) -> (N, C, H, W)``
    float32, computed on ``device`` (the same pixels on any device, up to float rounding).

    On the CPU each scene's components are summed by its own matrix product (the reference
    rounding); elsewhere by ``_per_scene_sum_by_rank`` (a few large kernels for many scenes).
    """

    def __init__(self, stamp: int, moffat_beta: float, device: str | torch.device = "cpu",
                 batched_sums: bool | None = None):
        """``batched_sums``: sum scenes with ``_per_scene_sum_by_rank`` (default: on any device but the CPU)."""
        self.device = torch.device(device)
        self.stamp = stamp
        self.size = stamp + 2 * PAD
        self.beta = moffat_beta
        batched = self.device.type != "cpu" if batched_sums is None else batched_sums
        self._sum = _per_scene_sum_by_rank if batched else _per_scene_sum
        tables = load_tables()
        self.sersic_ft = torch.as_tensor(tables.sersic_ft, dtype=torch.float32)
        self.sersic_log_kappa_sq = (2.0 * float(tables.log_kappa[0]), 2.0 * float(tables.log_kappa[-1]))
        log_u, ft = _moffat_ft_table(moffat_beta)
        self.moffat_ft = torch.as_tensor(ft, dtype=torch.float32)[None]
        self.moffat_log_u = (float(log_u[0]), float(log_u[-1]))
        # the Fourier grid is (fx, fy), fx the rfft half-axis: fy last, so the first (complex) inverse
        # transform runs along contiguous memory. 1D axes for the separable factors.
        fy = torch.fft.fftfreq(self.size, dtype=torch.float64)
        fx = torch.fft.rfftfreq(self.size, dtype=torch.float64)
        self.fy, self.fx = fy, fx
        self.fxfy = (fx[:, None] * fy[None, :]).reshape(-1).to(torch.float32)
        self.sinc_y, self.sinc_x = torch.sinc(fy), torch.sinc(fx)
        # the PSF is radial: look it up once per distinct |k| (exact integer k^2) and gather
        ky, kx = torch.round(fy * self.size).to(torch.int64), torch.round(fx * self.size).to(torch.int64)
        k_sq, self.k_index = torch.unique((kx[:, None] ** 2 + ky[None, :] ** 2).reshape(-1), return_inverse=True)
        self.log_2pi_k = torch.log(2 * math.pi * torch.sqrt(k_sq.to(torch.float64)) / self.size).to(torch.float32)
        coords = torch.arange(stamp, dtype=torch.float32)
        self.grid_y, self.grid_x = torch.meshgrid(coords, coords, indexing="ij")
        for name in ("sersic_ft", "moffat_ft", "fy", "fx", "fxfy", "sinc_y", "sinc_x", "k_index", "log_2pi_k", "grid_y", "grid_x"):
            setattr(self, name, getattr(self, name).to(self.device))

    def _tensor(self, values, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=dtype, device=self.device)

    def render(self, n_scenes: int, comps: Components, arms: ArmModulations | None, psf_fwhm_px: np.ndarray,
               to_numpy: bool = True) -> np.ndarray | torch.Tensor:
        """NumPy on the host, or (``to_numpy=False``) a tensor left on the device."""
        n_bands = comps.flux.shape[1]
        scene_hat = torch.zeros((n_scenes, n_bands, self.fx.shape[0], self.size), dtype=torch.complex64, device=self.device)
        self._add_components(scene_hat, comps)
        if arms is not None and len(arms.owner):
            self._add_arms(scene_hat, arms)
        scene_hat *= self._psf_hat(psf_fwhm_px)
        # irfft2 in two passes, keeping only the stamp's rows (y) before the second
        cols = torch.fft.ifft(scene_hat, dim=-1)[..., PAD : PAD + self.stamp]
        image = torch.fft.irfft(cols, n=self.size, dim=-2)[..., PAD : PAD + self.stamp, :]  # (x, y)
        image = image.transpose(-1, -2).contiguous()
        return image.cpu().numpy() if to_numpy else image

    def _add_components(self, scene_hat: torch.Tensor, comps: Components) -> None:
        # ellipse: kappa^2 = r_e^2 |A^T k|^2 = a fx^2 + b fx fy + c fy^2
        r_e, q = np.maximum(np.asarray(comps.r_e, dtype=np.float64), 0.0), np.asarray(comps.q, dtype=np.float64)
        cos, sin = np.cos(comps.angle), np.sin(comps.angle)
        quad = np.stack([r_e**2 * (cos**2 / q + sin**2 * q), 2 * r_e**2 * cos * sin * (1 / q - q),
                         r_e**2 * (sin**2 / q + cos**2 * q)], axis=1)
        gaussian = (r_e == 0) | (comps.sersic_row == 0)  # points and n = 0.5 (knots): analytic transform
        round_ = gaussian & (quad[:, 1] == 0)  # transform is a product of 1D factors in fx and fy
        for group, kind in ((round_, "round"), (gaussian & ~round_, "gaussian"), (~gaussian, "sersic")):
            idx = np.flatnonzero(group)
            if len(idx):
                idx = idx[np.argsort(comps.owner[idx], kind="stable")]
                comp_hat = self._transform(comps, idx, self._tensor(quad[idx], torch.float64), kind)
                self._sum(scene_hat, comps.owner[idx], comps.flux[idx], comp_hat)

    def _transform(self, comps: Components, idx: np.ndarray, quad: torch.Tensor, kind: str) -> torch.Tensor:
        """(M, size // 2 + 1, size) unit-flux transforms, pixel response and centre shift included.

        The pixel response, the shift phase and, for a round Gaussian, its transform are products
        of 1D factors in fx and fy: one outer product. Other profiles multiply it pixel by pixel.
        """
        a, b, c = quad[:, 0:1], quad[:, 1:2], quad[:, 2:3]
        g = math.pi**2 / math.log(2.0)  # Gaussian transform exp(-g kappa^2): sigma = r_e / sqrt(2 ln 2)
        centre = lambda v: self._tensor(np.asarray(v, dtype=np.float64)[idx] + PAD, torch.float64)[:, None]  # noqa: E731
        fy_part = torch.polar(self.sinc_y.expand(len(idx), -1), centre(comps.y) * self.fy * (-2 * math.pi))
        fx_part = torch.polar(self.sinc_x.expand(len(idx), -1), centre(comps.x) * self.fx * (-2 * math.pi))
        if kind == "round":
            fy_part *= torch.exp(-g * c * self.fy**2)
            fx_part *= torch.exp(-g * a * self.fx**2)
        comp_hat = fx_part.to(torch.complex64)[:, :, None] * fy_part.to(torch.complex64)[:, None, :]
        if kind == "round":
            return comp_hat
        kappa_sq = self._kappa_sq(a, b, c)
        if kind == "gaussian":
            profile = kappa_sq.mul_(-g).exp_()
        else:
            rows = self.sersic_ft[self._tensor(comps.sersic_row[idx], torch.int64)]
            profile = _interp_log(rows, self.sersic_log_kappa_sq, kappa_sq.log_())  # log(0) = -inf: the k = 0 value
        comp_hat *= profile.to(torch.complex64).view(comp_hat.shape)  # complex x complex: vectorised
        return comp_hat

    def _kappa_sq(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(M, K) a fx^2 + b fx fy + c fy^2, float32 (clamped at 0 against rounding)."""
        f32 = lambda t: t.to(torch.float32)  # noqa: E731
        kappa_sq = f32(a * self.fx**2)[:, :, None] + f32(c * self.fy**2)[:, None, :]
        return kappa_sq.reshape(len(a), -1).addcmul_(f32(b), self.fxfy).clamp_(min=0.0)

    def _add_arms(self, scene_hat: torch.Tensor, arms: ArmModulations) -> None:
        order = np.argsort(arms.owner, kind="stable")
        t = lambda a: self._tensor(np.asarray(a, dtype=np.float32)[order])[:, None, None]  # noqa: E731
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
        self._sum(scene_hat, arms.owner[order], np.asarray(arms.flux)[order], torch.fft.rfft2(padded).transpose(-1, -2))

    def _psf_hat(self, psf_fwhm_px: np.ndarray) -> torch.Tensor:
        """(N, C, size // 2 + 1, size) Moffat transforms, looked up once per distinct |k|.

        Complex, though real: complex x complex products are vectorised, complex x real are not.
        """
        log_alpha = self._tensor(np.log(moffat_alpha(psf_fwhm_px, self.beta)))
        log_u = (log_alpha[..., None] + self.log_2pi_k).reshape(1, -1)
        radial = _interp_log(self.moffat_ft, self.moffat_log_u, log_u).reshape(*log_alpha.shape, -1)
        return radial.to(torch.complex64).index_select(-1, self.k_index).reshape(*log_alpha.shape, -1, self.size)
