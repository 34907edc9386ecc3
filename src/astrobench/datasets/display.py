"""Colour composites of flux cutouts for display: one asinh stretch for every picture astrobench
draws (``data show`` grids, the report's similarity and reconstruction panels)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# (blue, green, red) band triples, in order of preference
RGB_TRIPLES = (("g", "r", "i"), ("g", "r", "z"), ("r", "i", "z"), ("u", "g", "r"), ("B", "V", "R"))


def rgb_band_indices(bands: Sequence[str]) -> tuple[int, int, int] | None:
    """Indices of the bands shown as (R, G, B), or None for a grey image (one or two bands).

    ugriz -> i, r, g; grz -> z, r, g; an unknown set of three or more bands -> the three central
    ones, assumed ordered from blue to red (the reddest shown as red).
    """
    bands = list(bands)
    if len(bands) < 3:
        return None
    for blue, green, red in RGB_TRIPLES:
        if {blue, green, red} <= set(bands):
            return bands.index(red), bands.index(green), bands.index(blue)
    first = (len(bands) - 3) // 2
    return first + 2, first + 1, first


def asinh_rgb(image: np.ndarray, bands: Sequence[str], *, q: float = 8.0, stretch: float | None = None,
              minimum: float = 0.0) -> np.ndarray:
    """Lupton et al. (2004)-style asinh colour composite of one ``(C, H, W)`` flux image -> uint8 ``(H, W, 3)``.

    Three bands are mapped to R, G, B (``rgb_band_indices``; one or two bands give a grey image of
    their mean). The stretch acts on the intensity I = mean of the three channels, so colours
    (channel ratios) are kept: each channel becomes ``c * asinh(q * I / stretch) / (I * asinh(q))``,
    pixels where a channel exceeds 1 are scaled down as a whole (no hue shift), negatives are black.
    ``stretch`` is the intensity shown at full brightness (default: the 99.5th percentile of I, so
    pass the same value to show several images on one scale); ``minimum`` is subtracted first.
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] != len(bands):
        raise ValueError(f"asinh_rgb: expected a (C, H, W) image with C = {len(bands)} bands, got shape {image.shape}")
    picks = rgb_band_indices(bands)
    if picks is None:
        grey = image.mean(axis=0)
        channels = np.stack([grey, grey, grey])
    else:
        channels = image[list(picks)]
    channels = np.clip(channels - minimum, 0.0, None)
    intensity = channels.mean(axis=0)
    if stretch is None:
        positive = intensity[intensity > 0]
        stretch = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    stretch = max(float(stretch), 1e-30)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(intensity > 0, np.arcsinh(q * intensity / stretch) / (intensity * np.arcsinh(q)), 0.0)
    rgb = channels * factor
    peak = rgb.max(axis=0)
    rgb = rgb / np.maximum(peak, 1.0)  # saturate as a whole: keeps the hue of bright cores
    return np.round(np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8)


def noise_floor(image: np.ndarray, bands: Sequence[str]) -> float:
    """Robust noise level (1.4826 x MAD) of the RGB intensity of one ``(C, H, W)`` image: a black point
    (``minimum``) for ``asinh_rgb`` that keeps sky noise dark around faint galaxies."""
    image = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    picks = rgb_band_indices(bands)
    intensity = image.mean(axis=0) if picks is None else image[list(picks)].mean(axis=0)
    return float(1.4826 * np.median(np.abs(intensity - np.median(intensity))))


def display_stretch(images: np.ndarray, bands: Sequence[str], minimum: float = 0.0) -> float:
    """A common ``stretch`` for several cutouts (99.5th percentile of their RGB intensity)."""
    images = np.nan_to_num(np.asarray(images, dtype=np.float64))
    picks = rgb_band_indices(bands)
    channels = images.mean(axis=1, keepdims=True) if picks is None else images[:, list(picks)]
    intensity = np.clip(channels - minimum, 0, None).mean(axis=1)
    positive = intensity[intensity > 0]
    return float(np.percentile(positive, 99.5)) if positive.size else 1.0
