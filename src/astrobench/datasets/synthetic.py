"""The embedded simulated survey, registered as the dataset ``synthetic``.

``generate(preset, n, seed)`` draws a magnitude-limited galaxy population (plus nearby dwarfs and
their background look-alikes), renders bulge + disk Sersic scenes with arms, bars, knots,
companions, neighbours and field stars through a per-band Moffat PSF, applies Galactic extinction,
adds sky + source noise and flags invalid pixels. Images are sky-subtracted nanomaggies (zero point
22.5). Noise is Gaussian with the Poisson variance (sky + source) / gain, which is what Poisson
noise is at these count levels.

Every object's randomness comes from ``SeedSequence([seed, index])`` and chunks have a fixed
size, so the data are bit-identical whatever the number of workers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import MANIFEST_NAME, SCHEMA_VERSION, SurveyData, write_dataset_folder
from astrobench.datasets.sim.population import MORPHOLOGY_CLASSES, N_UNIFORMS, Population, sample_population
from astrobench.datasets.sim.presets import PRESETS, SurveyPreset, get_preset
from astrobench.registry import register_dataset

GENERATOR_VERSION = "synthetic-2"
CHUNK_SIZE = 64  # objects rendered together; fixed so results never depend on the worker count
SHARD_SIZE = 4096  # objects held in memory at once by generate_to_disk (~0.75 GB for sdss)
MAX_IN_MEMORY = 8192  # generate() refuses more: use generate_to_disk

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


def _generate_chunk(preset_name: str, seed: int, start: int, stop: int, n_total: int, bad_pixels: bool,
                    device: str) -> SurveyData:
    import torch

    preset = get_preset(preset_name)
    shape = (len(preset.bands), preset.stamp, preset.stamp)
    uniforms, noise = _object_draws(seed, start, stop, shape)
    pop = sample_population(preset, uniforms)
    # torch runs single-threaded here (see _generation): bit-identical results in any worker layout
    model = _renderer(preset, device).render(stop - start, pop.components, pop.arms, pop.psf_fwhm / preset.pixel_scale)
    per_band = lambda a: torch.as_tensor(a, dtype=torch.float32)[:, :, None, None]  # noqa: E731
    model_t = torch.from_numpy(model)
    variance = model_t.clamp(min=0).add_(per_band(pop.sky)).div_(per_band(pop.gain))
    ivar = torch.reciprocal(variance).numpy()
    image = variance.sqrt_().mul_(torch.from_numpy(noise)).add_(model_t).numpy()
    mask = _invalid_pixels(preset, pop, model, bad_pixels)
    image[mask] = 0.0
    ivar[mask] = 0.0
    n = stop - start
    return SurveyData(
        object_id=object_ids(preset_name, seed, start, stop, n_total), image=image, mask=mask, bands=preset.bands,
        pixel_scale=np.full(n, preset.pixel_scale, dtype=np.float32), psf_fwhm=pop.psf_fwhm.astype(np.float32),
        ebv=pop.ebv.astype(np.float32), ra=pop.ra, dec=pop.dec, ivar=ivar, labels=_labels(preset, pop),
    )


_RENDERERS: dict[tuple[str, str], Any] = {}


def _renderer(preset: SurveyPreset, device: str):
    from astrobench.datasets.sim.render import Renderer

    key = (preset.name, device)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(preset.stamp, preset.moffat_beta, device)
    return _RENDERERS[key]


_PIXELS = ("image", "mask", "ivar")  # the bulk of the data: copied once, into arrays allocated once


def _concatenate(parts: list[SurveyData], pixels: dict[str, np.ndarray]) -> SurveyData:
    first = parts[0]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return SurveyData(
        object_id=cat("object_id"), image=pixels["image"], mask=pixels["mask"], bands=first.bands,
        pixel_scale=cat("pixel_scale"), psf_fwhm=cat("psf_fwhm"), ebv=cat("ebv"), ra=cat("ra"), dec=cat("dec"),
        ivar=pixels["ivar"], labels={k: np.concatenate([p.labels[k] for p in parts]) for k in first.labels},
    )


def _chunks(start: int, stop: int) -> list[tuple[int, int]]:
    # boundaries on multiples of CHUNK_SIZE from 0, so a shard never changes how objects are grouped
    edges = list(range(start - start % CHUNK_SIZE, stop, CHUNK_SIZE))
    return [(max(a, start), min(a + CHUNK_SIZE, stop)) for a in edges]


def _generate_range(preset: str, seed: int, start: int, stop: int, n_total: int, bad_pixels: bool, device: str,
                    pool: concurrent.futures.Executor | None, on_chunk: Callable[[int], None]) -> SurveyData:
    ranges = _chunks(start, stop)
    if pool is None:
        results = (_generate_chunk(preset, seed, a, b, n_total, bad_pixels, device) for a, b in ranges)
    else:
        futures = [pool.submit(_generate_chunk, preset, seed, a, b, n_total, bad_pixels, device) for a, b in ranges]
        results = (future.result() for future in futures)
    parts: list[SurveyData] = []
    pixels: dict[str, np.ndarray] = {}
    for (a, b), part in zip(ranges, results):
        for name in _PIXELS:  # copy each chunk's pixels as it arrives, then drop them
            chunk = getattr(part, name)
            if name not in pixels:
                pixels[name] = np.empty((stop - start, *chunk.shape[1:]), dtype=chunk.dtype)
            pixels[name][a - start : b - start] = chunk
            setattr(part, name, None)
        parts.append(part)
        on_chunk(b - a)
    return _concatenate(parts, pixels)


def _pool(workers: int | None, n_chunks: int) -> concurrent.futures.Executor | None:
    """Worker threads: torch and NumPy release the GIL in the heavy work, and threads share the
    output arrays (worker processes spent as long sending pixels back as rendering them)."""
    workers = min(workers or os.cpu_count() or 1, n_chunks)
    return concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else None


def generation_manifest(preset: str, n: int, seed: int, bad_pixels: bool, device: str = "cpu") -> dict[str, Any]:
    """What determines the data (everything except the number of workers).

    The CPU rendering is the reference; another device rounds differently, so its data are another
    dataset (named by ``render_device``, with its own cache and results).
    """
    manifest = {
        "dataset": "synthetic", "generator_version": GENERATOR_VERSION, "preset": preset, "n": n, "seed": seed,
        "bad_pixels": bad_pixels, "morphology_classes": list(MORPHOLOGY_CLASSES),
        "pixel_scale": get_preset(preset).pixel_scale, "image_units": "nanomaggies (AB zero point 22.5)",
    }
    if device != "cpu":
        manifest["render_device"] = device
    return manifest


@contextlib.contextmanager
def _generation(workers: int | None, n: int, progress: Progress | None, device: str):
    """The worker pool (None: this thread) and a per-chunk callback that reports progress.

    On a GPU the chunks run one after another: the device, not the host threads, does the work.
    """
    done = 0

    def on_chunk(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, n)

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one intra-op thread per chunk: the same bits whatever the workers
    pool = _pool(workers, len(_chunks(0, n))) if device == "cpu" else None
    try:
        yield pool, on_chunk
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        torch.set_num_threads(threads)


def generate(preset: str = "sdss", n: int = 4000, seed: int = 0, workers: int | None = None,
             progress: Progress | None = None, bad_pixels: bool = True, device: str = "cpu") -> SurveyData:
    """Simulate ``n`` objects in memory (at most ``MAX_IN_MEMORY``; use ``generate_to_disk`` beyond).

    ``device``: where the scenes are rendered ('cpu', the reference, or a GPU such as 'cuda').
    """
    survey = _check_params(preset, n, seed, workers, device)
    if n > MAX_IN_MEMORY:
        raise ValueError(f"parameter n={n} is more than generate() holds in memory ({MAX_IN_MEMORY}); use generate_to_disk")
    with _generation(workers, n, progress, device) as (pool, on_chunk):
        data = _generate_range(survey.name, seed, 0, n, n, bad_pixels, device, pool, on_chunk)
    data.manifest = generation_manifest(survey.name, n, seed, bad_pixels, device)
    data.origin = f"<synthetic {survey.name} n={n} seed={seed}>"
    return data.validate()


def generate_to_disk(preset: str, n: int, seed: int, out: str | os.PathLike, workers: int | None = None,
                     progress: Progress | None = None, bad_pixels: bool = True, device: str = "cpu") -> Path:
    """Simulate and save to ``out`` (a ``SurveyData`` folder), holding at most ``SHARD_SIZE`` objects."""
    survey = _check_params(preset, n, seed, workers, device)
    out = Path(out)
    manifest = generation_manifest(survey.name, n, seed, bad_pixels, device)
    if n <= SHARD_SIZE:
        return generate(survey.name, n, seed, workers, progress, bad_pixels, device).save(out, manifest=manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.shards-", dir=out.parent))
    try:
        with _generation(workers, n, progress, device) as (pool, on_chunk):
            shards = []
            for start in range(0, n, SHARD_SIZE):
                part = _generate_range(survey.name, seed, start, min(start + SHARD_SIZE, n), n, bad_pixels, device, pool,
                                       on_chunk)
                part.origin = f"<synthetic shard {start}>"
                shards.append(part.validate().save(work / f"shard-{start:09d}"))
                del part
        _merge_shards(shards, out, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _merge_shards(shards: list[Path], out: Path, manifest: dict[str, Any]) -> None:
    """Concatenate shard folders (memory-mapped) into one ``SurveyData`` folder with its manifest."""
    from datasets import concatenate_datasets, load_from_disk


    shard_manifests = [json.loads((s / MANIFEST_NAME).read_text()) for s in shards]
    tables = [load_from_disk(str(s / "data")) for s in shards]
    merged = concatenate_datasets(tables)
    first = shard_manifests[0]
    n = sum(m["n"] for m in shard_manifests)
    full = {**manifest, **{k: first[k] for k in ("bands", "image_shape", "image_is_flux", "has_ivar", "labels")}}
    full.update(schema_version=SCHEMA_VERSION, n=n, content_hash=_streaming_content_hash(tables, first, n))
    write_dataset_folder(merged, full, out)


def _streaming_content_hash(tables: list, manifest: dict[str, Any], n: int) -> str:
    """``SurveyData.content_hash`` computed one shard column at a time (same bytes, same order)."""
    c, h_, w = manifest["image_shape"]
    h = hashlib.sha256()
    h.update(json.dumps({"schema": SCHEMA_VERSION, "bands": manifest["bands"], "flux": manifest["image_is_flux"]}).encode())
    fields = [("object_id", None, ()), ("image", np.float32, (c, h_, w)), ("mask", np.bool_, (c, h_, w)),
              ("pixel_scale", np.float32, ()), ("psf_fwhm", np.float32, (c,)), ("ebv", np.float32, ()),
              ("ra", np.float64, ()), ("dec", np.float64, ()), ("ivar", np.float32, (c, h_, w))]
    fields += [(f"label_{name}", "label", ()) for name in sorted(manifest["labels"])]
    for column, dtype, shape in fields:
        h.update(b"label:" + column.removeprefix("label_").encode() if dtype == "label" else column.encode())
        for k, table in enumerate(tables):
            values = np.asarray(table.with_format("numpy")[column])
            if column == "object_id":
                values = values.astype(str)
                if k == 0:
                    h.update(str(values.dtype).encode() + str((n,)).encode())
                h.update(("\x00" if k else "").encode() + "\x00".join(values.tolist()).encode())
                continue
            if dtype != "label":
                values = values.astype(dtype).reshape((len(values), *shape))
            if k == 0:
                h.update(str(values.dtype).encode() + str((n, *values.shape[1:])).encode())
            h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


@register_dataset("synthetic")
class SyntheticSurvey(DataSource):
    """The embedded simulated survey (no download). Presets: ``sdss`` (default), ``decals``, ``unions``.

    Parameters: ``preset`` survey preset; ``n`` number of objects; ``seed``; ``workers`` threads
    (None: all cores; never changes the data); ``bad_pixels`` flag saturated pixels and bad columns;
    ``device`` renders on 'cpu' (the reference) or a GPU ('cuda': another dataset, rounded differently).
    """

    profiles = {"smoke": {"n": 512}, "quick": {"n": 6000}, "paper": {"n": 200_000}}

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
        return SurveyData.load(path)


__all__ = ["GENERATOR_VERSION", "PRESETS", "SyntheticSurvey", "generate", "generate_to_disk"]
