"""The embedded simulated survey, registered as the dataset ``synthetic``.

``generate(preset, n, seed)`` draws a magnitude-limited galaxy population (plus nearby dwarfs and
their background look-alikes), renders bulge + disk Sersic scenes with arms, bars, knots,
companions, neighbours and field stars through a per-band Moffat PSF, applies Galactic extinction,
adds sky + source noise and flags invalid pixels. Images are sky-subtracted nanomaggies (zero point
22.5). Noise is Gaussian with the Poisson variance (sky + source) / gain, which is what Poisson
noise is at these count levels.

On the CPU (the reference) every object's randomness comes from ``SeedSequence([seed, index])``
and chunks have a fixed size, so the data are bit-identical whatever the number of workers. On a
GPU the same per-object uniforms give the same galaxies (population and labels); scenes, noise,
inverse variance and masks are made on the device in chunks of ``DEVICE_CHUNK_SIZE`` (noise from the
device's generator, one stream per chunk), while host threads draw the next chunks' populations.
``generate_to_disk`` streams chunks into Arrow shards (``astrobench.datasets.storage``): memory
holds a few chunks, never all N.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import MANIFEST_NAME, SurveyData
from astrobench.datasets.sim.population import MORPHOLOGY_CLASSES, N_UNIFORMS, Population, sample_population
from astrobench.datasets.sim.presets import PRESETS, SurveyPreset, get_preset
from astrobench.datasets.storage import ShardWriter, load_survey
from astrobench.profiles import SYNTHETIC_SIZES
from astrobench.registry import register_dataset

GENERATOR_VERSION = "synthetic-2"
CHUNK_SIZE = 64  # objects rendered together on the CPU; fixed so results never depend on the worker count
DEVICE_CHUNK_SIZE = 4096  # objects rendered together on a GPU (~3 GB of device memory for sdss)
SHARD_SIZE = 4096  # rows per Arrow file written by generate_to_disk (~650 MB for sdss)
MAX_IN_MEMORY = 8192  # generate() refuses more: use generate_to_disk
DEVICE_NOISE_STREAM = 1  # SeedSequence([seed, chunk start, this]) seeds a device chunk's noise

Progress = Callable[[int, int], None]


def _check_params(preset: str, n: int, seed: int, workers: int | None, device: str = "cpu") -> SurveyPreset:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"parameter n must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"parameter seed must be a non-negative integer, got {seed!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"parameter workers must be a positive integer or None, got {workers!r}")
    _check_device(device)
    return get_preset(preset)


def _check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"parameter device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from error
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"parameter device={device!r}: no CUDA GPU is available here (render on 'cpu')")


def object_ids(preset: str, seed: int, start: int, stop: int, n_total: int) -> np.ndarray:
    width = max(6, len(str(n_total - 1)))
    return np.array([f"sim-{preset}-s{seed}-{i:0{width}d}" for i in range(start, stop)])


def _object_draws(seed: int, start: int, stop: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Uniforms and unit-normal noise of objects start..stop, each from its own stream.

    The noise comes from torch's generator (a vectorised Box-Muller, ~3x faster than NumPy's
    ziggurat) seeded from a child of the object's SeedSequence.
    """
    import torch

    uniforms = np.empty((stop - start, N_UNIFORMS))
    noise = torch.empty((stop - start, *shape), dtype=torch.float32)
    for row, index in enumerate(range(start, stop)):
        sequence = np.random.SeedSequence([seed, index])
        uniforms[row] = np.random.Generator(np.random.PCG64(sequence)).random(N_UNIFORMS)
        noise_seed = int(sequence.spawn(1)[0].generate_state(1, np.uint64)[0])
        noise[row].normal_(generator=torch.Generator().manual_seed(noise_seed))
    return uniforms, noise.numpy()


def _invalid_pixels(preset: SurveyPreset, pop: Population, model: np.ndarray, bad_pixels: bool) -> np.ndarray:
    """True where a pixel is invalid: saturated (with a bleed trail along columns) or a bad column."""
    mask = np.zeros(model.shape, dtype=bool)
    if not bad_pixels:
        return mask
    saturated = model > preset.saturation
    if saturated.any():
        bleed = pop.bleed[:, None, None, None]
        for shift in range(1, int(pop.bleed.max()) + 1):
            reach = shift <= bleed
            mask[:, :, shift:, :] |= saturated[:, :, :-shift, :] & reach
            mask[:, :, :-shift, :] |= saturated[:, :, shift:, :] & reach
        mask |= saturated
    for row in np.flatnonzero(pop.bad_column[:, 0]):
        mask[row, pop.bad_column[row, 1], :, pop.bad_column[row, 2]] = True
    return mask


def _labels(preset: SurveyPreset, pop: Population) -> dict[str, np.ndarray]:
    rb = preset.r_band
    hlr = pop.half_light_radius_arcsec
    mag_r = pop.mags[:, rb]
    flux_r = 10 ** (-0.4 * (mag_r - 22.5))  # extinction-free truth
    # S/N of the half-light flux inside the PSF-broadened half-light aperture
    aperture_px = np.pi * ((hlr**2 + (pop.psf_fwhm[:, rb] / 2) ** 2) / preset.pixel_scale**2)
    sigma_sky_sq = pop.sky[:, rb] / pop.gain[:, rb]
    snr = 0.5 * flux_r / np.sqrt(sigma_sky_sq * aperture_px + 0.5 * flux_r / pop.gain[:, rb])
    labels: dict[str, np.ndarray] = {
        "redshift": pop.redshift.astype(np.float32),
        "log_stellar_mass": pop.log_stellar_mass.astype(np.float32),
        "dwarf": pop.dwarf.astype(bool),
        "morphology": pop.morphology.astype(np.int64),
        **{name: values.astype(np.float32) for name, values in pop.votes.items()},
        "half_light_radius_arcsec": hlr.astype(np.float32),
        "surface_brightness_r": (mag_r + 2.5 * np.log10(2 * np.pi * hlr**2)).astype(np.float32),
        "snr_r": snr.astype(np.float32),
    }
    for b, band in enumerate(preset.bands):
        labels[f"mag_{band}"] = pop.mags[:, b].astype(np.float32)
    return labels


def _chunk_data(preset: SurveyPreset, seed: int, start: int, stop: int, n_total: int, pop: Population,
                image: np.ndarray, ivar: np.ndarray, mask: np.ndarray) -> SurveyData:
    n = stop - start
    return SurveyData(
        object_id=object_ids(preset.name, seed, start, stop, n_total), image=image, mask=mask, bands=preset.bands,
        pixel_scale=np.full(n, preset.pixel_scale, dtype=np.float32), psf_fwhm=pop.psf_fwhm.astype(np.float32),
        ebv=pop.ebv.astype(np.float32), ra=pop.ra, dec=pop.dec, ivar=ivar, labels=_labels(preset, pop),
    )


def _generate_chunk(preset_name: str, seed: int, start: int, stop: int, n_total: int, bad_pixels: bool) -> SurveyData:
    """Objects start..stop on the CPU: the reference rendering."""
    import torch

    preset = get_preset(preset_name)
    shape = (len(preset.bands), preset.stamp, preset.stamp)
    uniforms, noise = _object_draws(seed, start, stop, shape)
    pop = sample_population(preset, uniforms)
    # torch runs single-threaded here (see _cpu_chunks): bit-identical results in any worker layout
    model = _renderer(preset, "cpu").render(stop - start, pop.components, pop.arms, pop.psf_fwhm / preset.pixel_scale)
    per_band = lambda a: torch.as_tensor(a, dtype=torch.float32)[:, :, None, None]  # noqa: E731
    model_t = torch.from_numpy(model)
    variance = model_t.clamp(min=0).add_(per_band(pop.sky)).div_(per_band(pop.gain))
    ivar = torch.reciprocal(variance).numpy()
    image = variance.sqrt_().mul_(torch.from_numpy(noise)).add_(model_t).numpy()
    mask = _invalid_pixels(preset, pop, model, bad_pixels)
    image[mask] = 0.0
    ivar[mask] = 0.0
    return _chunk_data(preset, seed, start, stop, n_total, pop, image, ivar, mask)


def _object_uniforms(seed: int, start: int, stop: int) -> np.ndarray:
    """The uniforms of ``_object_draws`` alone (the device path draws its noise on the device)."""
    uniforms = np.empty((stop - start, N_UNIFORMS))
    for row, index in enumerate(range(start, stop)):
        sequence = np.random.SeedSequence([seed, index])
        uniforms[row] = np.random.Generator(np.random.PCG64(sequence)).random(N_UNIFORMS)
    return uniforms


def _device_population(preset_name: str, seed: int, start: int, stop: int) -> Population:
    return sample_population(get_preset(preset_name), _object_uniforms(seed, start, stop))


def _device_noise(seed: int, start: int, shape: tuple[int, ...], device: Any):
    """Unit normals for a device chunk, drawn at full ``DEVICE_CHUNK_SIZE`` rows whatever the chunk
    holds: the kernels' split of the work depends on the count, so a shorter draw would change the
    first rows too and the prefix of a larger dataset would differ."""
    import torch

    state = np.random.SeedSequence([seed, start, DEVICE_NOISE_STREAM]).generate_state(1, np.uint64)[0]
    generator = torch.Generator(device=device).manual_seed(int(state))
    noise = torch.randn((DEVICE_CHUNK_SIZE, *shape[1:]), generator=generator, device=device, dtype=torch.float32)
    return noise[: shape[0]]


def _invalid_pixels_torch(preset: SurveyPreset, pop: Population, model):
    """``_invalid_pixels`` on the device, with no host round trip (no early exit on "nothing saturated")."""
    import torch

    device = model.device
    mask = torch.zeros(model.shape, dtype=torch.bool, device=device)
    saturated = model > preset.saturation
    bleed = torch.as_tensor(pop.bleed, device=device)[:, None, None, None]
    for shift in range(1, int(pop.bleed.max()) + 1):
        reach = bleed >= shift
        mask[:, :, shift:, :] |= saturated[:, :, :-shift, :] & reach
        mask[:, :, :-shift, :] |= saturated[:, :, shift:, :] & reach
    mask |= saturated
    rows = np.flatnonzero(pop.bad_column[:, 0])
    if len(rows):
        index = lambda a: torch.as_tensor(a, dtype=torch.int64, device=device)  # noqa: E731
        mask[index(rows), index(pop.bad_column[rows, 1]), :, index(pop.bad_column[rows, 2])] = True
    return mask


def _render_chunk_on_device(preset_name: str, seed: int, start: int, stop: int, n_total: int, bad_pixels: bool,
                            device: str, pop: Population) -> SurveyData:
    """Scenes, noise, ivar and masks of one device chunk on the device; one copy of each array back."""
    import torch

    preset = get_preset(preset_name)
    n = stop - start
    model = _renderer(preset, device, batched_sums=True).render(n, pop.components, pop.arms,
                                                                pop.psf_fwhm / preset.pixel_scale, to_numpy=False)
    per_band = lambda a: torch.as_tensor(a, dtype=torch.float32, device=model.device)[:, :, None, None]  # noqa: E731
    variance = model.clamp(min=0).add_(per_band(pop.sky)).div_(per_band(pop.gain))
    ivar = torch.reciprocal(variance)
    image = variance.sqrt_().mul_(_device_noise(seed, start, tuple(model.shape), model.device)).add_(model)
    if bad_pixels:
        mask = _invalid_pixels_torch(preset, pop, model)
        image.masked_fill_(mask, 0.0)
        ivar.masked_fill_(mask, 0.0)
    else:
        mask = torch.zeros(model.shape, dtype=torch.bool, device=model.device)
    del model
    return _chunk_data(preset, seed, start, stop, n_total, pop, image.cpu().numpy(), ivar.cpu().numpy(),
                       mask.cpu().numpy())


_RENDERERS: dict[tuple[str, str, bool], Any] = {}


def _renderer(preset: SurveyPreset, device: str, batched_sums: bool = False):
    """One renderer per (preset, device, summation), kept for the process (tables and grids built once)."""
    from astrobench.datasets.sim.render import Renderer

    key = (preset.name, device, batched_sums)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(preset.stamp, preset.moffat_beta, device, batched_sums=batched_sums)
    return _RENDERERS[key]


def _chunks(start: int, stop: int, size: int = CHUNK_SIZE) -> list[tuple[int, int]]:
    # boundaries on multiples of the chunk size from 0, so objects are grouped the same for any n
    edges = list(range(start - start % size, stop, size))
    return [(max(a, start), min(a + size, stop)) for a in edges]


def _ordered(pool: concurrent.futures.Executor, calls: Iterator[Callable[[], Any]], ahead: int) -> Iterator[Any]:
    """Results of ``calls`` in order, at most ``ahead`` submitted and not yet consumed (bounded memory)."""
    window: collections.deque = collections.deque()
    for call in calls:
        window.append(pool.submit(call))
        if len(window) >= ahead:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def _cpu_chunks(preset: str, seed: int, n: int, bad_pixels: bool, workers: int | None) -> Iterator[SurveyData]:
    """Worker threads: torch and NumPy release the GIL in the heavy work (worker processes spent as
    long sending pixels back as rendering them). One intra-op thread each: the same bits whatever
    the workers."""
    import torch

    ranges = _chunks(0, n)
    workers = min(workers or os.cpu_count() or 1, len(ranges))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers == 1:
            for a, b in ranges:
                yield _generate_chunk(preset, seed, a, b, n, bad_pixels)
            return
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            calls = ((lambda a=a, b=b: _generate_chunk(preset, seed, a, b, n, bad_pixels)) for a, b in ranges)
            try:
                yield from _ordered(pool, calls, ahead=2 * workers)
            finally:
                pool.shutdown(cancel_futures=True)
    finally:
        torch.set_num_threads(threads)


def _device_chunks(preset: str, seed: int, n: int, bad_pixels: bool, workers: int | None,
                   device: str) -> Iterator[SurveyData]:
    """Host threads draw populations (per-object uniforms, NumPy/SciPy) a few chunks ahead while this
    thread renders on the device: the device never waits for the host's Python."""
    ranges = _chunks(0, n, DEVICE_CHUNK_SIZE)
    host_workers = max(1, min(workers or min(os.cpu_count() or 1, 8), len(ranges)))
    with concurrent.futures.ThreadPoolExecutor(host_workers) as pool:
        calls = ((lambda a=a, b=b: _device_population(preset, seed, a, b)) for a, b in ranges)
        try:
            for (a, b), pop in zip(ranges, _ordered(pool, calls, ahead=host_workers + 1)):
                yield _render_chunk_on_device(preset, seed, a, b, n, bad_pixels, device, pop)
        finally:
            pool.shutdown(cancel_futures=True)


def iter_chunks(preset: str = "sdss", n: int = 4000, seed: int = 0, workers: int | None = None,
                bad_pixels: bool = True, device: str = "cpu") -> Iterator[SurveyData]:
    """The survey's objects 0..n in order, as consecutive ``SurveyData`` chunks (not validated).

    Holds a few chunks at a time, whatever ``n``: what ``generate_to_disk`` and the speed benchmark
    consume. CPU chunks hold ``CHUNK_SIZE`` objects, device chunks ``DEVICE_CHUNK_SIZE``.
    """
    survey = _check_params(preset, n, seed, workers, device)
    if _is_cpu(device):
        return _cpu_chunks(survey.name, int(seed), int(n), bad_pixels, workers)
    return _device_chunks(survey.name, int(seed), int(n), bad_pixels, workers, device)


def _is_cpu(device: str) -> bool:
    import torch

    return torch.device(device).type == "cpu"


def generation_manifest(preset: str, n: int, seed: int, bad_pixels: bool, device: str = "cpu") -> dict[str, Any]:
    """What determines the data (everything except the number of workers).

    The CPU rendering is the reference; another device rounds differently and draws its own noise,
    so its data are another dataset (named by ``render_device``, with its own cache and results).
    """
    manifest = {
        "dataset": "synthetic", "generator_version": GENERATOR_VERSION, "preset": preset, "n": n, "seed": seed,
        "bad_pixels": bad_pixels, "morphology_classes": list(MORPHOLOGY_CLASSES),
        "pixel_scale": get_preset(preset).pixel_scale, "image_units": "nanomaggies (AB zero point 22.5)",
    }
    if device != "cpu":
        # the device's noise is drawn per chunk: the chunk size is part of what makes its data
        manifest.update(render_device=device, device_chunk_size=DEVICE_CHUNK_SIZE)
    return manifest


def generate(preset: str = "sdss", n: int = 4000, seed: int = 0, workers: int | None = None,
             progress: Progress | None = None, bad_pixels: bool = True, device: str = "cpu") -> SurveyData:
    """Simulate ``n`` objects in memory (at most ``MAX_IN_MEMORY``; use ``generate_to_disk`` beyond).

    ``device``: where the scenes are rendered ('cpu', the reference, or a GPU such as 'cuda').
    """
    survey = _check_params(preset, n, seed, workers, device)
    if n > MAX_IN_MEMORY:
        raise ValueError(f"parameter n={n} is more than generate() holds in memory ({MAX_IN_MEMORY}); use generate_to_disk")
    parts: list[SurveyData] = []
    pixels: dict[str, np.ndarray] = {}
    done = 0
    for part in iter_chunks(survey.name, n, seed, workers, bad_pixels, device):
        for name in ("image", "mask", "ivar"):  # copy each chunk's pixels as it arrives, then drop them
            chunk = getattr(part, name)
            if name not in pixels:
                pixels[name] = np.empty((n, *chunk.shape[1:]), dtype=chunk.dtype)
            pixels[name][done : done + len(chunk)] = chunk
            setattr(part, name, None)
        parts.append(part)
        done += len(part.object_id)
        if progress is not None:
            progress(done, n)
    data = _concatenate(parts, pixels)
    data.manifest = generation_manifest(survey.name, n, seed, bad_pixels, device)
    data.origin = f"<synthetic {survey.name} n={n} seed={seed}>"
    return data.validate()


def _concatenate(parts: list[SurveyData], pixels: dict[str, np.ndarray]) -> SurveyData:
    first = parts[0]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return SurveyData(
        object_id=cat("object_id"), image=pixels["image"], mask=pixels["mask"], bands=first.bands,
        pixel_scale=cat("pixel_scale"), psf_fwhm=cat("psf_fwhm"), ebv=cat("ebv"), ra=cat("ra"), dec=cat("dec"),
        ivar=pixels["ivar"], labels={k: np.concatenate([p.labels[k] for p in parts]) for k in first.labels},
    )


def generate_to_disk(preset: str, n: int, seed: int, out: str | os.PathLike, workers: int | None = None,
                     progress: Progress | None = None, bad_pixels: bool = True, device: str = "cpu") -> Path:
    """Simulate and save to ``out`` (a ``SurveyData`` folder), streaming chunks into Arrow shards.

    Memory holds a few chunks whatever ``n``. Shards go to a temporary folder beside ``out``, renamed
    into place after the manifest (with the content hash, computed from the files) is written: a
    killed run leaves no folder that looks like a dataset.
    """
    survey = _check_params(preset, n, seed, workers, device)
    out = Path(out)
    manifest = generation_manifest(survey.name, n, seed, bad_pixels, device)
    done = 0
    with ShardWriter(out, shard_rows=SHARD_SIZE, validate=True) as writer:
        for part in iter_chunks(survey.name, n, seed, workers, bad_pixels, device):
            part.origin = f"<synthetic {survey.name} objects {done}..{done + len(part.object_id)}>"
            writer.write(part)
            done += len(part.object_id)
            if progress is not None:
                progress(done, n)
        writer.finish(manifest)
    return out


@register_dataset("synthetic")
class SyntheticSurvey(DataSource):
    """The embedded simulated survey (no download). Presets: ``sdss`` (default), ``decals``, ``unions``.

    Parameters: ``preset`` survey preset; ``n`` number of objects; ``seed``; ``workers`` threads
    (None: all cores; never changes the data); ``bad_pixels`` flag saturated pixels and bad columns;
    ``device`` renders on 'cpu' (the reference) or a GPU ('cuda': the same galaxies, rounded
    differently, with the GPU's own noise draws: another dataset).
    """

    profiles = {profile: {"n": n} for profile, n in SYNTHETIC_SIZES.items()}
    reports_progress = True  # generating the survey takes a while: load(progress=...) reports it

    def __init__(self, preset: str = "sdss", n: int = 4000, seed: int = 0, workers: int | None = None,
                 bad_pixels: bool = True, device: str = "cpu"):
        _check_params(preset, n, seed, workers, device)
        self.preset, self.n, self.seed, self.workers, self.bad_pixels = preset, int(n), int(seed), workers, bool(bad_pixels)
        self.device = device

    def cache_key(self) -> str:
        params = generation_manifest(self.preset, self.n, self.seed, self.bad_pixels, self.device)
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]

    def cache_path(self, cache_dir: str | os.PathLike) -> Path:
        return Path(cache_dir) / "data" / f"synthetic-{self.cache_key()}"

    def load(self, cache_dir: Path, progress: Progress | None = None) -> SurveyData:
        """Generate once into ``cache_dir/data/synthetic-<hash>``; later calls read that folder."""
        path = self.cache_path(cache_dir)
        if not (path / MANIFEST_NAME).is_file():
            generate_to_disk(self.preset, self.n, self.seed, path, self.workers, progress, self.bad_pixels, self.device)
        return load_survey(path)


__all__ = ["GENERATOR_VERSION", "PRESETS", "SyntheticSurvey", "generate", "generate_to_disk", "iter_chunks"]
