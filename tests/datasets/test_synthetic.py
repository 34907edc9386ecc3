"""The embedded simulated survey: physics, determinism, schema, caching, no giveaways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astrobench.datasets.schema import SurveyData
from astrobench.datasets.sim.population import MORPHOLOGY_CLASSES
from astrobench.datasets.storage import load_survey
from astrobench.datasets.synthetic import SyntheticSurvey, generate, generate_to_disk
from astrobench.registry import DATASETS


@pytest.fixture(scope="module")
def survey() -> SurveyData:
    return generate("sdss", 1536, seed=3, workers=1)


def test_schema_and_labels(survey: SurveyData) -> None:
    assert survey.image.shape == (1536, 5, 64, 64) and survey.bands == ("u", "g", "r", "i", "z")
    assert survey.ivar is not None and np.all(survey.ivar[survey.mask] == 0) and np.all(survey.image[survey.mask] == 0)
    assert np.all(survey.ivar[~survey.mask] > 0)
    assert survey.object_id[123] == "sim-sdss-s3-000123"
    assert np.allclose(survey.pixel_scale, 0.396)
    assert survey.manifest["morphology_classes"] == list(MORPHOLOGY_CLASSES)
    labels = survey.labels
    assert labels["redshift"].dtype == np.float32 and labels["morphology"].dtype == np.int64
    assert labels["dwarf"].dtype == np.bool_
    assert set(np.unique(labels["morphology"])) == set(range(7))
    for name in ("gz_smooth", "gz_featured", "gz_edge_on", "gz_spiral", "gz_bar", "gz_merger"):
        assert labels[name].dtype == np.float32 and labels[name].min() >= 0 and labels[name].max() <= 1
    assert np.all(labels["gz_smooth"] + labels["gz_featured"] <= 1 + 1e-6)
    for band in survey.bands:
        assert np.all(np.isfinite(labels[f"mag_{band}"]))
    # volunteers see what the truth is
    morph = labels["morphology"]
    assert labels["gz_smooth"][morph == 0].mean() > labels["gz_smooth"][morph == 2].mean() + 0.3
    assert labels["gz_bar"][morph == 3].mean() > 0.4 > labels["gz_bar"][morph == 2].mean()
    assert labels["gz_edge_on"][morph == 4].mean() > 0.6


def test_population_like_a_magnitude_limited_survey(survey: SurveyData) -> None:
    labels = survey.labels
    main = ~labels["dwarf"] & (labels["mag_r"] < 17.77)
    z = labels["redshift"][main]
    assert 0.06 < np.median(z) < 0.14
    assert np.quantile(z, 0.98) > 0.2 and z.max() < 0.6
    assert 0.10 <= labels["dwarf"].mean() <= 0.25
    assert np.all(labels["redshift"][labels["dwarf"]] < 0.05)


def test_median_angular_size_falls_with_redshift(survey: SurveyData) -> None:
    z, hlr = survey.labels["redshift"], survey.labels["half_light_radius_arcsec"]
    keep = ~survey.labels["dwarf"]
    bins = [(0.02, 0.06), (0.06, 0.1), (0.1, 0.16), (0.16, 0.3)]
    medians = [np.median(hlr[keep & (z >= a) & (z < b)]) for a, b in bins]
    assert all(b < a for a, b in zip(medians, medians[1:])), medians


def test_elliptical_colours_redden_with_redshift(survey: SurveyData) -> None:
    labels = survey.labels
    ell = (labels["morphology"] == 0) & ~labels["dwarf"]
    z, gr = labels["redshift"][ell], (labels["mag_g"] - labels["mag_r"])[ell]
    slope = np.polyfit(z, gr, 1)[0]
    assert slope > 2.0  # the 4000 A break moves through g: about +0.7 mag by z = 0.25
    assert np.median(gr[z > 0.15]) > np.median(gr[z < 0.08]) + 0.2


def test_dwarfs_have_lower_surface_brightness_at_the_same_magnitude(survey: SurveyData) -> None:
    labels = survey.labels
    mag, sb, dwarf = labels["mag_r"], labels["surface_brightness_r"], labels["dwarf"]
    compared = 0
    for lo in np.arange(17.5, 20.5, 0.5):
        sel = (mag >= lo) & (mag < lo + 0.5)
        if (sel & dwarf).sum() >= 5 and (sel & ~dwarf).sum() >= 5:
            assert np.median(sb[sel & dwarf]) > np.median(sb[sel & ~dwarf]) + 0.5  # fainter = larger mag/arcsec^2
            compared += 1
    assert compared >= 3


def test_dwarf_lookalikes_match_in_magnitude_and_overlap_in_size(survey: SurveyData) -> None:
    labels = survey.labels
    faint = labels["mag_r"] > 18.0
    dwarf, other = faint & labels["dwarf"], faint & ~labels["dwarf"]
    assert other.sum() > 0.5 * dwarf.sum()
    assert abs(np.median(labels["mag_r"][dwarf]) - np.median(labels["mag_r"][other])) < 0.6
    size_d, size_o = labels["half_light_radius_arcsec"][dwarf], labels["half_light_radius_arcsec"][other]
    assert np.quantile(size_o, 0.9) > np.quantile(size_d, 0.25)  # the size ranges overlap


def _global_statistics(data: SurveyData) -> np.ndarray:
    image = np.where(data.mask, 0, data.image)
    total = image.sum(axis=(2, 3))
    noise = 1.4826 * np.median(np.abs(image[:, :, :8, :] - np.median(image[:, :, :8, :], axis=(2, 3), keepdims=True)), axis=(2, 3))
    return np.concatenate([np.arcsinh(total), noise, data.psf_fwhm], axis=1)


def _structure_features(data: SurveyData) -> np.ndarray:
    """Truth-level structure: surface brightness, size, colour (what a good encoder can recover)."""
    labels = data.labels
    return np.stack([labels["surface_brightness_r"], np.log(labels["half_light_radius_arcsec"]), labels["mag_r"],
                     labels["mag_u"] - labels["mag_g"], labels["mag_g"] - labels["mag_r"], labels["mag_r"] - labels["mag_i"]],
                    axis=1)


def test_no_giveaway_from_global_pixel_statistics(survey: SurveyData) -> None:
    y = survey.labels["dwarf"]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    balanced = lambda X: cross_val_score(probe, X, y, cv=4, scoring="balanced_accuracy").mean()  # noqa: E731
    trivial = balanced(_global_statistics(survey))
    structure = balanced(_structure_features(survey))
    # a good encoder can recover the structure; total flux, noise level and seeing say almost nothing
    assert structure > 0.85, structure
    assert trivial < 0.65, (trivial, structure)


def test_one_seed_bit_identical_with_one_and_two_workers() -> None:
    one = generate("sdss", 160, seed=11, workers=1)
    two = generate("sdss", 160, seed=11, workers=2)
    assert one.content_hash() == two.content_hash()
    assert np.array_equal(one.image, two.image)
    other = generate("sdss", 64, seed=12, workers=1)
    assert not np.array_equal(one.image[:64], other.image)


def test_prefix_is_stable_when_n_grows() -> None:
    small, large = generate("sdss", 70, seed=5, workers=1), generate("sdss", 130, seed=5, workers=1)
    assert np.array_equal(small.image, large.image[:70])
    assert np.array_equal(small.labels["redshift"], large.labels["redshift"][:70])


@pytest.mark.parametrize("preset, bands, scale", [("decals", ("g", "r", "z"), 0.262), ("unions", ("u", "g", "r", "i", "z"), 0.1857)])
def test_other_presets(preset: str, bands: tuple[str, ...], scale: float) -> None:
    data = generate(preset, 64, seed=0, workers=1)
    assert data.bands == bands and data.image.shape == (64, len(bands), 64, 64)
    assert np.allclose(data.pixel_scale, scale)
    assert np.all(np.isfinite(data.image))


def test_extinction_dims_the_bluest_band_most() -> None:
    from astrobench.datasets.sim import population as pop
    from astrobench.datasets.sim.presets import get_preset

    preset = get_preset("sdss")
    u = np.random.default_rng(0).random((32, pop.N_UNIFORMS))
    clear, dusty = u.copy(), u.copy()
    clear[:, pop._OFFSETS["ebv"]] = 1 - 1e-9  # E(B-V) at its floor
    dusty[:, pop._OFFSETS["ebv"]] = np.exp(-(0.3 - 0.005) / 0.03)  # E(B-V) = 0.3
    a, b = pop.sample_population(preset, clear), pop.sample_population(preset, dusty)
    assert np.allclose(b.ebv, 0.3)
    ratio = b.components.flux[a.components.owner == 0].sum(0) / a.components.flux[a.components.owner == 0].sum(0)
    expected = 10 ** (-0.4 * (0.3 - a.ebv[0]) * np.array([4.239, 3.303, 2.285, 1.698, 1.263]))
    assert np.allclose(ratio, expected, rtol=1e-5)


def test_stored_planck18_distances_are_astropys() -> None:
    """The simulator reads Planck18 from package data (no astropy at run time): the same numbers."""
    pytest.importorskip("astropy")
    from astrobench.datasets.sim.population import planck18_grids, planck18_grids_from_astropy

    stored, fresh = planck18_grids(), planck18_grids_from_astropy()
    assert sorted(stored) == sorted(fresh)
    for name in fresh:
        np.testing.assert_allclose(stored[name], fresh[name], rtol=1e-12, err_msg=name)


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="preset"):
        generate("hubble", 10)
    with pytest.raises(ValueError, match="parameter n"):
        generate("sdss", 0)
    with pytest.raises(ValueError, match="parameter seed"):
        SyntheticSurvey(seed=-1)
    with pytest.raises(ValueError, match="parameter workers"):
        generate("sdss", 10, workers=0)


def test_registered_and_cached(tmp_path, monkeypatch) -> None:
    assert DATASETS.get("synthetic") is SyntheticSurvey
    assert SyntheticSurvey.profiles["smoke"] == {"n": 512}
    source = SyntheticSurvey(n=40, seed=2, workers=1)
    assert source.cache_key() == SyntheticSurvey(n=40, seed=2, workers=2).cache_key()
    assert source.cache_key() != SyntheticSurvey(n=40, seed=3).cache_key()
    first = source.load(tmp_path)
    assert first.origin.endswith(f"synthetic-{source.cache_key()}")
    assert first.manifest["generator_version"] and first.manifest["preset"] == "sdss"
    import astrobench.datasets.synthetic as synthetic

    monkeypatch.setattr(synthetic, "generate_to_disk", lambda *a, **k: pytest.fail("regenerated despite the cache"))
    again = source.load(tmp_path)
    assert again.content_hash() == first.content_hash() == first.manifest["content_hash"]


def test_generate_to_disk_in_shards_matches_in_memory(tmp_path, monkeypatch) -> None:
    import astrobench.datasets.synthetic as synthetic

    monkeypatch.setattr(synthetic, "SHARD_SIZE", 64)
    calls = []
    path = generate_to_disk("sdss", 150, 4, tmp_path / "out", workers=1, progress=lambda d, t: calls.append((d, t)))
    files = sorted(p.name for p in (path / "data").glob("*.arrow"))
    assert files == ["data-00000-of-00003.arrow", "data-00001-of-00003.arrow", "data-00002-of-00003.arrow"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    loaded = load_survey(path)
    direct = generate("sdss", 150, 4, workers=1)
    assert np.array_equal(loaded.image, direct.image) and np.array_equal(loaded.mask, direct.mask)
    assert np.array_equal(loaded.ivar, direct.ivar) and np.array_equal(loaded.object_id, direct.object_id)
    assert loaded.manifest["content_hash"] == direct.content_hash() == loaded.content_hash()
    assert loaded.manifest["generator_version"] == direct.manifest["generator_version"]
    assert calls[-1] == (150, 150) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_reference_data_unchanged() -> None:
    """The CPU reference data, fixed: cached datasets, pretraining caches and committed results are
    keyed by this content hash (a change here means regenerating them and saying so)."""
    assert generate("sdss", 200, 3, workers=2).content_hash() == (
        "84cdb8db06833586ef7df304697d71044e6b13af5a94f181e27818ec1bcc10ce")
    assert generate("decals", 70, 1, workers=1).content_hash() == (
        "ce7d3b3a7d5786333182a2013246cc5dba111cc11437a66053c2dc48cd373cb5")


def test_a_failed_generation_leaves_no_dataset(tmp_path, monkeypatch) -> None:
    import astrobench.datasets.synthetic as synthetic

    real = synthetic._generate_chunk

    def failing(preset, seed, start, stop, n_total, bad_pixels):
        if start >= 128:
            raise RuntimeError(f"killed at object {start}")
        return real(preset, seed, start, stop, n_total, bad_pixels)

    monkeypatch.setattr(synthetic, "_generate_chunk", failing)
    monkeypatch.setattr(synthetic, "SHARD_SIZE", 64)
    with pytest.raises(RuntimeError, match="killed at object 128"):
        generate_to_disk("sdss", 200, 0, tmp_path / "out", workers=1)
    assert list(tmp_path.iterdir()) == []
    source = SyntheticSurvey(n=200, seed=0, workers=1)
    with pytest.raises(RuntimeError, match="killed at object 128"):
        source.load(tmp_path / "cache")
    assert not source.cache_path(tmp_path / "cache").exists()


def test_chunks_are_made_a_bounded_number_ahead() -> None:
    import concurrent.futures
    import threading

    from astrobench.datasets.synthetic import _ordered

    started, lock = [], threading.Lock()

    def call(i: int):
        with lock:
            started.append(i)
        return i

    consumed = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for value in _ordered(pool, ((lambda i=i: call(i)) for i in range(20)), ahead=3):
            consumed.append(value)
            assert len(started) <= len(consumed) + 3
    assert consumed == list(range(20))


@pytest.fixture()
def small_device_chunks(monkeypatch):
    """The GPU pipeline (device noise, masks, batched sums) run on CPU tensors, 64 objects a chunk."""
    import astrobench.datasets.synthetic as synthetic

    monkeypatch.setattr(synthetic, "DEVICE_CHUNK_SIZE", 64)

    def make(n: int, seed: int) -> SurveyData:
        parts = list(synthetic._device_chunks("sdss", seed, n, True, 2, "cpu"))
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return SurveyData(object_id=cat("object_id"), image=cat("image"), mask=cat("mask"), bands=parts[0].bands,
                          pixel_scale=cat("pixel_scale"), psf_fwhm=cat("psf_fwhm"), ebv=cat("ebv"), ra=cat("ra"),
                          dec=cat("dec"), ivar=cat("ivar"),
                          labels={k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels})

    return make


def _assert_same_galaxies_other_noise(reference: SurveyData, other: SurveyData, ivar_rtol: float) -> None:
    """Same population and scenes (labels, masks, ivar up to rounding); independent noise draws."""
    assert np.array_equal(reference.object_id, other.object_id)
    for name, values in reference.labels.items():
        np.testing.assert_allclose(other.labels[name], values, rtol=1e-6, err_msg=name)
    assert np.array_equal(reference.mask, other.mask) and reference.mask.any()
    ok = ~reference.mask
    assert np.max(np.abs(other.ivar[ok] / reference.ivar[ok] - 1)) < ivar_rtol
    assert np.all(other.image[reference.mask] == 0) and np.all(other.ivar[reference.mask] == 0)
    # two independent unit-variance draws in units of the noise: difference has variance 2, mean 0
    chi = (other.image - reference.image)[ok] * np.sqrt(reference.ivar[ok])
    assert abs(chi.std() - np.sqrt(2)) < 0.01 and abs(chi.mean()) < 0.01
    assert not np.array_equal(other.image, reference.image)


def test_device_pipeline_makes_the_same_galaxies_with_its_own_noise(small_device_chunks) -> None:
    reference = generate("sdss", 150, 4, workers=1)
    emulated = small_device_chunks(150, 4)
    emulated.validate()
    _assert_same_galaxies_other_noise(reference, emulated, ivar_rtol=1e-4)


def test_device_pipeline_is_deterministic_and_prefix_stable(small_device_chunks) -> None:
    a, b, longer = small_device_chunks(100, 7), small_device_chunks(100, 7), small_device_chunks(170, 7)
    assert a.content_hash() == b.content_hash()
    assert np.array_equal(longer.image[:100], a.image) and np.array_equal(longer.ivar[:100], a.ivar)


def test_cpu_rendering_is_the_reference_dataset() -> None:
    default, cpu = generate("sdss", 64, seed=2, workers=1), generate("sdss", 64, seed=2, workers=2, device="cpu")
    assert default.content_hash() == cpu.content_hash()
    assert "render_device" not in cpu.manifest
    assert SyntheticSurvey(device="cpu").cache_key() == SyntheticSurvey().cache_key()


def test_bad_or_missing_render_device_is_named() -> None:
    with pytest.raises(ValueError, match="device must be a torch device"):
        SyntheticSurvey(device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda': no CUDA GPU"):
            generate("sdss", 8, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_renders_the_same_galaxies_with_its_own_noise(tmp_path) -> None:
    cpu = generate("sdss", 300, seed=4, workers=1)
    gpu = generate("sdss", 300, seed=4, device="cuda")
    assert gpu.manifest["render_device"] == "cuda"
    assert SyntheticSurvey(device="cuda").cache_key() != SyntheticSurvey().cache_key()
    _assert_same_galaxies_other_noise(cpu, gpu, ivar_rtol=1e-3)
    assert generate("sdss", 300, seed=4, device="cuda").content_hash() == gpu.content_hash()  # same GPU, same data
    path = generate_to_disk("sdss", 300, 4, tmp_path / "gpu", device="cuda")
    loaded = load_survey(path)
    assert loaded.content_hash() == gpu.content_hash() == loaded.manifest["content_hash"]
