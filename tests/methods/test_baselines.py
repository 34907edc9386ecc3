"""The chance line (``constant``) and the classical photometric baseline (``colours``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from astrobench.augment.pipeline import ViewPipeline
from astrobench.datasets.batches import make_batch
from astrobench.benchmark.config import RunConfig
from astrobench.augment.normalize import Normalizer
from astrobench.datasets.schema import SurveyData
from astrobench.datasets.splits import split_indices
from astrobench.datasets.synthetic import generate
from astrobench.methods.baselines import Constant
from astrobench.methods.classical import Colours, aperture_flux, aperture_weights, asinh_magnitudes
from astrobench.registry import METHODS
from astrobench.tasks import metrics
from astrobench.tasks.base import EmbeddingInputs
from astrobench.tasks.dwarfs import DwarfTask
from astrobench.tasks.redshift import RedshiftTask

BANDS = ("u", "g", "r", "i", "z")


@pytest.fixture(scope="module")
def survey():
    """The smoke profile's simulated survey (512 ugriz 64x64 galaxies), its splits and normaliser."""
    data = generate("sdss", n=512, seed=0, workers=1)
    splits = split_indices(data)
    return data, splits, Normalizer.fit(data.subset(splits["train"]))


def _embed(model, data: SurveyData, splits) -> np.ndarray:
    model.initialize(model.views.eval_view(make_batch(data, splits["train"])))
    with torch.no_grad():
        return model.embed(model.views.eval_view(make_batch(data, np.arange(len(data))))).numpy()


def _inputs(emb: np.ndarray, data: SurveyData, splits) -> EmbeddingInputs:
    return EmbeddingInputs(emb, data.object_id, data.labels, splits)


def _views(normalizer: Normalizer, size: int) -> ViewPipeline:
    return ViewPipeline([], None, normalizer, size)


# -- registration ------------------------------------------------------------------------------


def test_registered_and_in_the_default_matrix():
    assert METHODS.get("constant") is Constant and METHODS.get("colours") is Colours
    assert not Constant.trainable and not Colours.trainable
    assert {"random", "constant", "colours"} <= set(RunConfig().methods)


# -- constant: what the probes make of it ---------------------------------------------------------


def test_constant_redshift_linear_predicts_the_binned_training_mean(survey):
    data, splits, normalizer = survey
    emb = _embed(Constant(5, 64, _views(normalizer, 64)), data, splits)
    assert emb.shape == (len(data), 1) and np.all(emb == 1.0)
    task = RedshiftTask()
    result = task.evaluate(_inputs(emb, data, splits), protocol="linear", seed=0, label_budget=None)
    z_phot = result.predictions["z_phot"].to_numpy()
    assert np.ptp(z_phot) < 1e-9  # the same for every object
    z = data.labels["redshift"].astype(np.float64)
    z_train, z_test = z[splits["train"]], z[splits["test"]]
    # the probability-weighted bin centre of the training bin frequencies = the binned training mean
    binned_mean = task.bin_centres[task.to_bins(z_train)].mean()
    assert z_phot[0] == pytest.approx(binned_mean, abs=2e-4)
    assert z_phot[0] == pytest.approx(z_train.mean(), abs=task.bin_centres[0])  # within half a bin
    mean_line = metrics.redshift_metrics(np.full(z_test.size, z_train.mean()), z_test)
    median_line = metrics.redshift_metrics(np.full(z_test.size, np.median(z_train)), z_test)
    assert result.scores["sigma_mad"] == pytest.approx(mean_line["sigma_mad"], abs=1e-3)
    assert result.scores["sigma_mad"] == pytest.approx(median_line["sigma_mad"], abs=5e-3)
    assert result.scores["sigma_mad"] > 0.05  # no information: far from the colours' 0.04


def test_constant_dwarfs_linear_is_a_coin_on_a_balanced_draw(survey):
    data, splits, normalizer = survey
    emb = _embed(Constant(5, 64, _views(normalizer, 64)), data, splits)
    result = DwarfTask(n_repeats=2).evaluate(_inputs(emb, data, splits), protocol="linear", seed=0, label_budget=None)
    assert np.allclose(result.predictions["probability"], 0.5)
    assert (result.predictions["predicted"] == 0).all()  # the tie goes to the first class: not a dwarf
    dwarf = data.labels["dwarf"][splits["test"]]
    assert result.scores["accuracy"] == pytest.approx(1.0 - dwarf.mean())  # the majority-class rate
    assert result.scores["roc_auc"] == 0.5 and result.scores["f1"] == 0.0


# -- colours: aperture photometry ---------------------------------------------------------------


def test_aperture_weights_cover_the_circle_and_are_point_symmetric():
    for radius in (2.5, 6.0, 10.0):
        w = aperture_weights(64, radius)
        assert w.sum() == pytest.approx(math.pi * radius**2, rel=1e-3)
        assert np.array_equal(w[1:, 1:], w[1:, 1:][::-1, ::-1])  # symmetric about pixel (32, 32)
        assert w[32, 32] == 1.0 and w[32, 32 + math.ceil(radius + 1)] == 0.0
    with pytest.raises(ValueError, match="radius must be > 0 px, got -1"):
        aperture_weights(64, -1)


def test_asinh_magnitudes_follow_lupton_and_stay_finite():
    b = torch.tensor([2.0], dtype=torch.float64)
    a = 2.5 / math.log(10)
    # f = 2 b sinh(1): m = zp - a (1 + ln b), by the definition
    m = asinh_magnitudes(torch.tensor([[2 * 2.0 * math.sinh(1.0)]], dtype=torch.float64), b, 22.5)
    assert m.item() == pytest.approx(22.5 - a * (1 + math.log(2.0)), abs=1e-12)
    assert asinh_magnitudes(torch.zeros(1, 1, dtype=torch.float64), b, 22.5).item() == pytest.approx(22.5 - a * math.log(2.0))
    bright = torch.tensor([[1e6]], dtype=torch.float64)  # f >> b: the Pogson magnitude
    assert asinh_magnitudes(bright, b, 22.5).item() == pytest.approx(22.5 - 2.5 * math.log10(1e6), abs=1e-9)
    faint = asinh_magnitudes(torch.tensor([[-50.0, -1.0, 0.0, 1.0, 50.0]], dtype=torch.float64).T, b)
    assert torch.isfinite(faint).all() and torch.all(faint[1:] < faint[:-1])  # brighter = smaller
    with pytest.raises(ValueError, match="softening > 0"):
        asinh_magnitudes(bright, torch.tensor([0.0]))


def _point_on_sky(size: int, sky: list[float], point: list[float]) -> torch.Tensor:
    image = torch.tensor(sky, dtype=torch.float32).view(-1, 1, 1).repeat(1, size, size)
    image[:, size // 2, size // 2] += torch.tensor(point)
    return image[None]


def test_colours_features_equal_hand_computed_aperture_magnitudes():
    scales = (0.5, 1.0, 2.0, 1.0, 0.25)
    normalizer = Normalizer(BANDS, scales)
    model = Colours(5, 32, _views(normalizer, 32), aperture_radius=6.0)
    sky = [2.0, 5.0, 10.0, 20.0, 3.0]  # per pixel, so 36π of it falls in the aperture
    point = [1e5, 3e5, 6e5, 8e5, 2e5]  # far above the softening (~11 x scale): asinh mag = Pogson mag
    features = model.features(normalizer(_point_on_sky(32, sky, point)))
    flux = np.array(point) + np.array(sky) * math.pi * 36
    mags = 22.5 - 2.5 * np.log10(flux)
    assert model.feature_names == [f"mag_{b}" for b in BANDS] + ["u-g", "g-r", "r-i", "i-z"]
    np.testing.assert_allclose(features[0, :5].numpy(), mags, atol=1e-4)
    np.testing.assert_allclose(features[0, 5:].numpy(), mags[:-1] - mags[1:], atol=1e-4)


def test_colours_recover_flux_through_masked_pixels():
    normalizer = Normalizer(BANDS[:2], (1.0, 1.0))
    model = Colours(2, 32, _views(normalizer, 32), aperture_radius=6.0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = 500 * torch.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 8) + 1.0  # point-symmetric about (16, 16)
    image = torch.stack([blob, 2 * blob])[None]
    clean = model.aperture_fluxes(normalizer(image))
    mask = torch.zeros_like(image, dtype=torch.bool)
    mask[0, :, 16, 17] = True  # next to the core: its mirror (16, 15) is valid
    mask[0, 1, 14, 18] = True
    masked = model.aperture_fluxes(normalizer(image, mask))
    torch.testing.assert_close(masked, clean, rtol=1e-6, atol=0)
    # a pixel and its mirror both lost: they take the aperture's mean surface brightness
    flat = torch.full((1, 2, 32, 32), 3.0)
    both = torch.zeros_like(flat, dtype=torch.bool)
    both[0, :, 16, 18] = both[0, :, 16, 14] = True
    area = aperture_weights(32, 6.0).sum()
    torch.testing.assert_close(model.aperture_fluxes(normalizer(flat, both)), torch.full((1, 2), 3.0 * area, dtype=torch.float64))
    # a band with nothing valid has flux 0 and a finite magnitude
    gone = torch.zeros_like(flat, dtype=torch.bool)
    gone[0, 0] = True
    assert model.aperture_fluxes(normalizer(flat, gone))[0, 0].item() == 0.0
    assert torch.isfinite(model.features(normalizer(flat, gone))).all()


def test_aperture_flux_fills_from_mirror_then_mean():
    values = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=torch.float64)
    weight = torch.tensor([1.0, 0.5, 0.5, 1.0], dtype=torch.float64)
    mirror = torch.tensor([3, 2, 1, 0])
    valid = torch.tensor([[[False, True, False, True]]])
    # pixel 0 <- its mirror 3 (4.0); pixel 2 <- its mirror 1 (2.0)
    assert aperture_flux(values, valid, weight, mirror).item() == pytest.approx(1 * 4 + 0.5 * 2 + 0.5 * 2 + 1 * 4)
    valid = torch.tensor([[[False, True, True, False]]])
    # 0 and 3 are mirrors of each other: both take the weighted mean (0.5*2 + 0.5*3) / 1 = 2.5
    assert aperture_flux(values, valid, weight, mirror).item() == pytest.approx(2.5 + 0.5 * 2 + 0.5 * 3 + 2.5)


def test_colours_beats_constant_on_simulated_redshift(survey):
    data, splits, normalizer = survey
    colours = _embed(Colours(5, 64, _views(normalizer, 64)), data, splits)
    constant = _embed(Constant(5, 64, _views(normalizer, 64)), data, splits)
    assert colours.shape == (len(data), 10) and np.isfinite(colours).all()
    train = colours[splits["train"], :-1]
    np.testing.assert_allclose(train.mean(0), 0, atol=0.2)  # standardised on (a sample of) the training images
    task = RedshiftTask()
    chance = task.evaluate(_inputs(constant, data, splits), protocol="linear", seed=0, label_budget=None).scores
    # measured on these 512 galaxies: chance 0.077; colours knn 0.054, linear 0.061 (a 180-bin head
    # on 357 training galaxies; 0.047 on the quick survey)
    for protocol, factor in (("knn", 0.75), ("linear", 0.85)):
        scores = task.evaluate(_inputs(colours, data, splits), protocol=protocol, seed=0, label_budget=None).scores
        assert scores["sigma_mad"] < factor * chance["sigma_mad"], protocol
        assert scores["eta_percent"] < chance["eta_percent"], protocol


def test_colours_state_round_trip_and_errors(survey):
    data, splits, normalizer = survey
    model = Colours(5, 64, _views(normalizer, 64))
    images = model.views.eval_view(make_batch(data, np.arange(8)))
    with pytest.raises(RuntimeError, match="before initialize"):
        model.embed(images)
    model.initialize(model.views.eval_view(make_batch(data, splits["train"][:64])))
    state = model.state_dict()
    assert set(state) == {"mean", "std", "fitted"}  # the aperture is rebuilt from the arguments
    again = Colours(5, 64, _views(normalizer, 64))
    again.load_state_dict(state)
    torch.testing.assert_close(again.embed(images), model.embed(images))
    with pytest.raises(ValueError, match=r"aperture_radius must be in \(0, 30.5\] px .* got 40"):
        Colours(5, 64, _views(normalizer, 64), aperture_radius=40)
    with pytest.raises(ValueError, match="5 band scales for 3 image channels"):
        Colours(3, 64, _views(normalizer, 64))
    with pytest.raises(ValueError, match=r"expected images \(B, 5, 64, 64\), got \(8, 5, 32, 32\)"):
        model.features(images[..., :32, :32])


# -- colours on RGB composites -------------------------------------------------------------------


def _rgb_survey(n: int = 120, size: int = 32) -> SurveyData:
    """Display-scaled composites (0..1): red and blue round galaxies on a dark sky."""
    rng = np.random.default_rng(0)
    red = np.arange(n) % 2 == 0
    tint = np.where(red[:, None], [0.9, 0.5, 0.2], [0.3, 0.5, 0.9]).astype(np.float32)
    yy, xx = np.mgrid[:size, :size] - size // 2
    blob = np.exp(-(xx**2 + yy**2) / (2 * rng.uniform(2, 5, n)[:, None, None] ** 2))
    image = np.clip(tint[:, :, None, None] * blob[:, None] + rng.normal(0, 0.02, (n, 3, size, size)), 0, 1)
    return SurveyData(
        object_id=np.array([f"rgb-{i}" for i in range(n)]), image=image.astype(np.float32),
        mask=np.zeros(image.shape, dtype=bool), bands=("r", "g", "b"), pixel_scale=np.full(n, 0.262, np.float32),
        psf_fwhm=np.full((n, 3), np.nan, np.float32), ebv=np.full(n, np.nan, np.float32),
        ra=np.zeros(n), dec=np.zeros(n), labels={"red": red.astype(np.int64)}, image_is_flux=False,
    ).validate()


def test_colours_on_rgb_composites_use_colour_statistics():
    data = _rgb_survey()
    normalizer = Normalizer.fit(data)
    assert not normalizer.is_flux
    model = Colours(3, 32, _views(normalizer, 32))
    assert model.feature_names[:3] == ["mean_r", "mean_g", "mean_b"] and model.feature_names[-2:] == ["log_r/g", "log_g/b"]
    assert len(model.feature_names) == 3 + 3 * 3 + 2
    # hand computation: a uniform composite has that value as mean and every quantile
    level = torch.tensor([0.6, 0.3, 0.0]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    f = model.features(normalizer(level.clone()))[0].numpy()
    np.testing.assert_allclose(f[:3], [0.6, 0.3, 0.0], atol=1e-7)
    np.testing.assert_allclose(f[3:12], np.repeat([0.6, 0.3, 0.0], 3), atol=1e-7)
    np.testing.assert_allclose(f[12:], [math.log(0.6 / 0.3), math.log(0.3 / (1 / 255))], rtol=1e-6)  # floored
    with pytest.raises(ValueError, match="RGB composites"):
        model.aperture_fluxes(normalizer(level.clone()))
    # red and blue galaxies are told apart by their nearest neighbours
    index = np.arange(len(data))
    emb = _embed(model, data, {"train": index})
    assert np.isfinite(emb).all()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(1)
    assert np.mean(data.labels["red"][nearest] == data.labels["red"]) == 1.0
