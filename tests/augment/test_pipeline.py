"""ViewPipeline: one resampling for all geometric ops, sizes, order, and the deterministic view."""

from __future__ import annotations

import pytest
import torch

from astrobench.augment import functional as AF
from astrobench.augment import ops
from astrobench.augment.pipeline import ViewPipeline, centre_crop
from astrobench.augment.normalize import Normalizer

BANDS = ("u", "g", "r", "i", "z")


def flux_batch(size: int = 6, side: int = 48, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(side, dtype=torch.float32) - (side - 1) / 2
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    smooth = torch.exp(-((xx - 2) ** 2 + (yy + 1) ** 2) / (2 * 6.0**2)) + 0.5 * torch.exp(-((xx + 5) ** 2 + yy**2) / (2 * 4.0**2))
    image = 10.0 * smooth.expand(size, 5, side, side) * torch.linspace(0.5, 1.5, 5).view(1, 5, 1, 1)
    image = image + 0.01 * torch.randn(size, 5, side, side, generator=generator)
    return {
        "image": image.contiguous(),
        "mask": torch.zeros(size, 5, side, side, dtype=torch.bool),
        "ivar": torch.full((size, 5, side, side), 1e4),
        "psf_fwhm": torch.full((size, 5), 1.3),
        "ebv": torch.full((size,), 0.05),
        "pixel_scale": torch.full((size,), 0.396),
        "bands": BANDS,
    }


NORMALIZER = Normalizer(BANDS, (0.01,) * 5)


def count_resamplings(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = AF.resample

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(AF, "resample", counting)
    return calls


def test_rotation_jitter_and_flip_cost_a_single_resampling(monkeypatch):
    calls = count_resamplings(monkeypatch)
    views = ViewPipeline(["RR", "GN", "JC", "GR", "PS", "FL"], None, NORMALIZER, 32)
    out = views(flux_batch(), torch.Generator().manual_seed(0))
    assert len(calls) == 1
    assert out.shape == (6, 5, 32, 32) and torch.isfinite(out).all()


def test_composition_matches_sequential_resampling_away_from_the_borders():
    batch = flux_batch(size=8, side=64)
    views = ViewPipeline(["RR", "JC"], None, NORMALIZER, 64)
    composed = views.augment(batch, torch.Generator().manual_seed(3))["image"]
    # the same draws applied one op at a time: two bilinear passes instead of one
    generator = torch.Generator().manual_seed(3)
    rotated = ops.RandomRotation()(batch, generator)
    sequential = ops.JitterCrop()(rotated, generator)["image"]
    inner = (slice(None), slice(None), slice(20, 44), slice(20, 44))
    scale = batch["image"].abs().max()
    assert float((composed[inner] - sequential[inner]).abs().max()) < 0.02 * float(scale)
    # ... while the other composition order (shift, then rotate) differs visibly
    generator = torch.Generator().manual_seed(3)
    rotation = ops.RandomRotation().sampling_matrix(batch, generator)
    shift = ops.JitterCrop().sampling_matrix(batch, generator)
    wrong, _, _ = AF.resample(batch["image"], shift @ rotation, (64, 64))
    assert float((composed[inner] - wrong[inner]).abs().max()) > 0.1 * float(scale)


def test_photometric_ops_run_before_geometric_ones_whatever_the_code_order():
    views = ViewPipeline(["JC", "RR", "PS", "GN"], None, NORMALIZER, 32)
    assert [op.code for op in views.ops] == ["PS", "GN", "JC", "RR"]
    assert views.codes == ("JC", "RR", "PS", "GN")


def test_resampling_to_the_crop_equals_resampling_then_centre_crop_for_odd_margins():
    batch = flux_batch(size=3, side=47)  # 47 -> 32: a margin of 15, the crop centre sits 1/2 px off
    views = ViewPipeline(["RR"], {"RR": {"p": 0.0}}, NORMALIZER, 32)
    augmented = views(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(augmented, views.eval_view(batch), atol=1e-4)


def test_jitter_crop_may_produce_a_larger_image_than_the_view():
    batch = flux_batch(size=4, side=64)
    views = ViewPipeline(["JC"], {"JC": {"p": 0.0, "out_size": 48}}, NORMALIZER, 32)
    out = views(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(out, views.eval_view(batch), atol=1e-4)


def test_a_view_larger_than_the_geometric_output_is_an_error():
    views = ViewPipeline(["JC"], {"JC": {"out_size": 24}}, NORMALIZER, 32)
    with pytest.raises(ValueError, match="smaller than the view size 32"):
        views(flux_batch(side=48))


def test_pipeline_without_geometric_ops_centre_crops():
    batch = flux_batch(size=2, side=40)
    views = ViewPipeline(["GR"], {"GR": {"p": 0.0}}, NORMALIZER, 32)
    assert torch.equal(views(batch, torch.Generator().manual_seed(0)), views.eval_view(batch))


def test_augment_updates_the_physical_fields():
    batch = flux_batch()
    views = ViewPipeline(["GR", "PS", "JC"], {"GR": {"p": 1.0}, "PS": {"p": 1.0, "fwhm_arcsec_min": 0.5}}, NORMALIZER, 32)
    out = views.augment(batch, torch.Generator().manual_seed(1))
    assert not torch.equal(out["ebv"], batch["ebv"])
    assert (out["psf_fwhm"] > batch["psf_fwhm"]).all()
    assert out["image"].shape == out["mask"].shape == out["ivar"].shape == (6, 5, 32, 32)


def test_eval_view_is_deterministic_and_unaugmented():
    batch = flux_batch()
    views = ViewPipeline(["RR", "JC", "GN"], None, NORMALIZER, 32)
    expected = centre_crop(NORMALIZER(batch["image"], batch["mask"]), 32)
    assert torch.equal(views.eval_view(batch), expected)
    assert torch.equal(views.eval_view(batch), views.finish(batch))


def test_views_differ_between_calls_and_repeat_with_the_same_seed():
    batch = flux_batch()
    views = ViewPipeline(["RR", "JC", "GN", "GR", "PS"], None, NORMALIZER, 32)
    first = views(batch, torch.Generator().manual_seed(5))
    again = views(batch, torch.Generator().manual_seed(5))
    other = views(batch, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_flux_ops_are_refused_on_rgb_composites():
    rgb = Normalizer(("r", "g", "b"), (1.0, 1.0, 1.0), is_flux=False)
    with pytest.raises(ValueError, match="GR needs flux"):
        ViewPipeline(["RR", "GR"], None, rgb, 32)
    ViewPipeline(["RR", "JC", "FL", "GN", "MK"], None, rgb, 32)  # geometric ops and noise are fine


def test_parameters_for_codes_not_in_the_views_are_an_error():
    with pytest.raises(ValueError, match="PS"):
        ViewPipeline(["RR"], {"PS": {"p": 0.5}}, NORMALIZER, 32)


def test_config_records_every_parameter():
    views = ViewPipeline(["RR", "GR"], {"GR": {"ebv_max": 0.3}}, NORMALIZER, 32)
    assert views.config() == {
        "codes": ["RR", "GR"],
        "params": {"GR": {"p": 0.8, "ebv_max": 0.3, "survey": None}, "RR": {"p": 1.0, "flip": True}},
        "out_size": 32,
    }


def test_masked_input_pixels_stay_invalid_through_the_pipeline():
    batch = flux_batch(size=2, side=32)
    batch["mask"][:, 2, 10:14, 10:14] = True
    batch["image"] = batch["image"].masked_fill(batch["mask"], 0.0)
    views = ViewPipeline(["FL"], {"FL": {"p": 1.0}}, NORMALIZER, 32)
    out = views.augment(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out["mask"], batch["mask"].flip(-1))
    assert (views(batch)[out["mask"]] == 0).all()


def test_views_drop_ivar_after_its_last_reader_without_changing_the_images(monkeypatch):
    batch = flux_batch()
    views = ViewPipeline(["RR", "GR", "GN", "PS", "JC"], {"GR": {"p": 1.0}, "PS": {"p": 1.0}}, NORMALIZER, 32)
    seen: dict[str, tuple[bool, bool]] = {}  # code -> (ivar given, its update wanted)
    # the pipeline asks GR (a plane-scale op) for its factors, the others to run
    for cls, method in ((ops.GalacticReddening, "plane_factors"), (ops.GaussianNoise, "__call__"), (ops.PSFSmoothing, "__call__")):
        original = getattr(cls, method)

        def spy(self, batch, generator=None, original=original):
            seen[self.code] = ("ivar" in batch, batch.get("keep_ivar", True))
            out = original(self, batch, generator)
            if self.code == "GN":
                assert ("ivar" in out) == batch.get("keep_ivar", True)  # no update when none is wanted
            return out

        monkeypatch.setattr(cls, method, spy)
    kept = views.augment(batch, torch.Generator().manual_seed(2), keep_ivar=True)
    assert seen == {"GR": (True, True), "GN": (True, True), "PS": (True, True)} and "ivar" in kept
    dropped = views.augment(batch, torch.Generator().manual_seed(2), keep_ivar=False)
    # GN reads ivar last: it gets it, told that nobody needs its update; PS gets none
    assert seen == {"GR": (True, True), "GN": (True, False), "PS": (False, True)}
    assert "ivar" not in dropped and "keep_ivar" not in dropped
    assert torch.equal(kept["image"], dropped["image"]) and torch.equal(kept["mask"], dropped["mask"])


def test_views_equal_normalising_the_augmented_batch_with_its_mask():
    batch = flux_batch()
    batch["mask"][:, 1, 10:20, 5:9] = True
    batch["image"][batch["mask"]] = 1e6  # garbage under the mask
    views = ViewPipeline(["RR", "JC", "GN", "GR", "PS"], {"PS": {"p": 1.0}}, NORMALIZER, 32)
    view = views(batch, torch.Generator().manual_seed(4))
    augmented = views.augment(batch, torch.Generator().manual_seed(4), keep_ivar=False)
    assert augmented["mask"].any()
    assert torch.equal(view, views.finish(augmented))


@pytest.mark.parametrize("keep_ivar", [True, False])
@pytest.mark.parametrize("codes", [["GN", "GR", "PS", "RR", "JC"], ["GR", "PS"], ["GR", "MK", "GN", "FL"]])
def test_reddening_factors_applied_later_give_the_reddened_batch(monkeypatch, codes, keep_ivar):
    """GR's factors ride past the ops that commute with them and are applied by the resampling
    (or before the first op that does not commute, or at the end): the same batch, to float32
    rounding, as multiplying at GR's turn, and no pass of its own."""
    batch = flux_batch()
    batch["mask"][:, 3, 5:9, 20:30] = True
    params = {code: {"p": 1.0} for code in codes if code in ("GR", "PS", "MK")}
    views = ViewPipeline(codes, params, NORMALIZER, 32 if "JC" in codes else 48)
    deferred = views.augment(batch, torch.Generator().manual_seed(3), keep_ivar=keep_ivar)

    scaled: list[int] = []
    original = ops.scale_planes
    monkeypatch.setattr("astrobench.augment.pipeline.scale_planes", lambda b, f: scaled.append(1) or original(b, f))
    for cls in (ops.PSFSmoothing, ops.RandomMask, ops.GeometricAugmentation):
        monkeypatch.setattr(cls, "commutes_with_plane_scale", False)
    immediate = views.augment(batch, torch.Generator().manual_seed(3), keep_ivar=keep_ivar)

    assert set(deferred) == set(immediate)
    for key, value in deferred.items():
        if torch.is_tensor(value) and value.dtype.is_floating_point:
            assert torch.allclose(value, immediate[key], rtol=1e-5, atol=1e-6), key
        elif torch.is_tensor(value):
            assert torch.equal(value, immediate[key]), key
    # the reference run applied the factors at GR's turn, as a pass of their own
    assert scaled == [1]
    assert not torch.equal(deferred["ebv"], batch["ebv"])


def test_resampling_applies_a_plane_scale():
    batch = flux_batch(size=4, side=24)
    matrix = AF.rotation_flip_matrix(torch.tensor([10.0, 100.0, 0.0, 250.0]), torch.tensor([False, True, False, True]))
    scale = torch.rand(4, 5, generator=torch.Generator().manual_seed(1)) + 0.5
    plain = AF.resample(batch["image"], matrix, (24, 24), ivar=batch["ivar"])
    scaled = AF.resample(batch["image"], matrix, (24, 24), ivar=batch["ivar"], scale=scale)
    factors = scale.view(4, 5, 1, 1)
    assert torch.allclose(scaled[0], plain[0] * factors, rtol=1e-6, atol=1e-6)
    assert torch.allclose(scaled[2], plain[2] / factors**2, rtol=1e-5)
    assert torch.equal(scaled[1], plain[1])
    with pytest.raises(ValueError, match="scale must be"):
        AF.resample(batch["image"], matrix, (24, 24), scale=scale[:, :2])
