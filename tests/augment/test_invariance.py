"""The invariance metric: hand-computed values, and encoders that are or are not invariant."""

from __future__ import annotations

import math

import pytest
import torch

from astrobench.augment import ops
from astrobench.augment.invariance import invariance_from_embeddings, invariance_report, invariance_score
from astrobench.augment.pipeline import ViewPipeline
from astrobench.augment.normalize import Normalizer

BANDS = ("u", "g", "r", "i", "z")
NORMALIZER = Normalizer(BANDS, (1.0,) * 5)


def galaxies(size: int = 32, side: int = 32, seed: int = 0) -> dict:
    """Compact sources of random brightness, colour and position angle: distinct galaxies."""
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(side, dtype=torch.float32) - (side - 1) / 2
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    angle = torch.rand(size, 1, 1, generator=generator) * math.pi
    u = xx * torch.cos(angle) + yy * torch.sin(angle)
    v = -xx * torch.sin(angle) + yy * torch.cos(angle)
    profile = torch.exp(-(u**2 / 18 + v**2 / 3))  # elongated: orientation is visible
    colour = torch.rand(size, 5, generator=generator) + 0.2
    image = 20 * colour.view(size, 5, 1, 1) * profile.unsqueeze(1)
    return {
        "image": image.contiguous(),
        "mask": torch.zeros(size, 5, side, side, dtype=torch.bool),
        "psf_fwhm": torch.full((size, 5), 1.2),
        "ebv": torch.zeros(size),
        "pixel_scale": torch.full((size,), 0.396),
        "bands": BANDS,
    }


def band_fluxes(images: torch.Tensor) -> torch.Tensor:
    """A rotation-invariant encoder: total (asinh-scaled) flux per band."""
    return images.sum(dim=(2, 3))


def pixels(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1)


def test_hand_computed_scores():
    angle = math.pi / 3
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[math.cos(angle), math.sin(angle)], [0.0, 2.0]])  # scale does not matter
    scores = invariance_from_embeddings(torch.stack([first, second]))
    # same: cos(60) = 0.5 and 1; different: <(1,0),(0,1)> = 0 and <(0,1),(cos,sin)> = sin(60)
    same = (0.5 + 1.0) / 2
    different = (0.0 + math.sin(angle)) / 2
    assert scores["same_galaxy"] == pytest.approx(same)
    assert scores["different_galaxy"] == pytest.approx(different)
    assert scores["invariance"] == pytest.approx((same - different) / (1 - different))
    # view 0 of galaxy 0 is nearest to view 1 of galaxy 0 (0.5 > 0); galaxy 1: 1 > sin 60;
    # view 1 of galaxy 0: cos 60 = 0.5 vs sin 60 = 0.87 to galaxy 1: a miss
    assert scores["retrieval_top1"] == pytest.approx(3 / 4)
    assert scores["n_galaxies"] == 2 and scores["n_views"] == 2


def test_more_than_two_views_average_over_view_pairs():
    z = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    tripled = torch.stack([z[0], z[1], z[1]])
    scores = invariance_from_embeddings(tripled)
    pair = invariance_from_embeddings(z)
    # pairs (0,1), (0,2) equal the two-view pair; pair (1,2) is identical views
    assert scores["same_galaxy"] == pytest.approx((2 * pair["same_galaxy"] + 1.0) / 3)


def test_identical_views_score_one_and_identical_galaxies_nan():
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    assert invariance_from_embeddings(torch.stack([z, z]))["invariance"] == pytest.approx(1.0)
    same = torch.ones(2, 4, 8)
    assert math.isnan(invariance_from_embeddings(same)["invariance"])
    with pytest.raises(ValueError, match="views >= 2"):
        invariance_from_embeddings(torch.randn(1, 4, 8))


def test_an_op_that_is_never_applied_gives_perfect_invariance():
    batch = galaxies()
    scores = invariance_score(pixels, batch, ops.GalacticReddening(p=0.0), finish=lambda b: b["image"])
    assert scores["invariance"] == pytest.approx(1.0) and scores["retrieval_top1"] == 1.0


def test_a_rotation_invariant_encoder_is_invariant_to_rotation_and_pixels_are_not():
    batch = galaxies()
    rotation = ViewPipeline(["RR"], {"RR": {"p": 1.0}}, NORMALIZER, 32)
    generator = torch.Generator().manual_seed(2)
    flux_scores = invariance_score(band_fluxes, batch, rotation, generator=generator)
    pixel_scores = invariance_score(pixels, batch, rotation, generator=generator)
    assert flux_scores["invariance"] > 0.999  # bilinear rotation conserves flux (to ~0.2%)
    assert pixel_scores["invariance"] < 0.9  # orientations differ: pixel vectors decorrelate


def test_noise_that_drowns_the_signal_scores_near_zero():
    batch = galaxies(size=32)
    batch["ivar"] = torch.full_like(batch["image"], 1.0)
    drown = ops.GaussianNoise(p=1.0, min_factor=300.0, max_factor=300.0, reference_from_batch=False)
    scores = invariance_score(pixels, batch, drown, finish=lambda b: b["image"], generator=torch.Generator().manual_seed(3))
    # cosines of independent 5120-dim noise vectors: ~1/sqrt(5120) = 0.014 each
    assert abs(scores["invariance"]) < 0.05
    assert scores["retrieval_top1"] < 0.25


def test_report_scores_each_code_with_p_one_and_the_whole_pipeline():
    batch = galaxies(size=16)
    views = ViewPipeline(["RR", "GR"], {"GR": {"p": 0.0}}, NORMALIZER, 32)  # p=0 in training...
    report = invariance_report(band_fluxes, batch, views, generator=torch.Generator().manual_seed(4))
    assert set(report) == {"RR", "GR", "all"}
    assert report["GR"]["invariance"] < 1.0 - 1e-4  # ...yet measured with p=1: colours change
    assert report["RR"]["invariance"] > 0.999
    with pytest.raises(ValueError, match="not one of the views"):
        invariance_report(band_fluxes, batch, views, codes=["PS"])


def test_score_needs_a_finish_step_for_a_bare_op():
    with pytest.raises(ValueError, match="finish"):
        invariance_score(pixels, galaxies(size=4), ops.RandomFlip())
    with pytest.raises(ValueError, match="at least 2 views"):
        invariance_score(pixels, galaxies(size=4), ops.RandomFlip(), n_views=1, finish=lambda b: b["image"])
