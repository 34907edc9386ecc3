"""Test doubles: a tiny survey, a tiny task and a tiny trainable method for runner tests.

Never registered as user-facing names: a test (or a ``--plugin`` file in a test) calls
``register_test_doubles()`` explicitly, which registers ``tiny`` (dataset), ``tiny-size`` (task)
and ``tiny-ae`` (method).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import torch
from torch import nn

from astrobench.augment.pipeline import ViewPipeline
from astrobench.datasets.base import DataSource
from astrobench.methods.base import Method
from astrobench.datasets.schema import SurveyData
from astrobench.augment.normalize import Normalizer
from astrobench.tasks.base import EmbeddingInputs, Task, TaskResult


class TinySurvey(DataSource):
    """Gaussian blobs in a few bands; the label ``size`` (blob sigma in px) is visible in the pixels."""

    profiles: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"n": 96}}

    def __init__(self, n: int = 96, image_size: int = 16, bands: tuple[str, ...] = ("g", "r", "i"), seed: int = 0,
                 noise: float = 0.05):
        self.n, self.image_size, self.bands, self.seed, self.noise = n, image_size, tuple(bands), seed, noise

    def load(self, cache_dir: Path) -> SurveyData:
        return make_tiny_survey(self.n, self.image_size, self.bands, self.seed, self.noise)


def make_tiny_survey(n: int = 96, image_size: int = 16, bands: tuple[str, ...] = ("g", "r", "i"), seed: int = 0,
                     noise: float = 0.05) -> SurveyData:
    rng = np.random.default_rng(seed)
    c, s = len(bands), image_size
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    size = rng.uniform(1.0, 4.0, n).astype(np.float32)
    colour = rng.uniform(0.5, 1.5, (n, c)).astype(np.float32)
    blob = np.exp(-(xx**2 + yy**2)[None] / (2 * size[:, None, None] ** 2))
    image = (colour[:, :, None, None] * blob[:, None]).astype(np.float32)
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    return SurveyData(
        object_id=np.array([f"tiny-{seed}-{i:05d}" for i in range(n)]),
        image=image,
        mask=np.zeros(image.shape, dtype=bool),
        bands=bands,
        pixel_scale=np.full(n, 0.4, np.float32),
        psf_fwhm=np.full((n, c), 1.2, np.float32),
        ebv=np.full(n, 0.02, np.float32),
        ra=rng.uniform(0, 360, n),
        dec=rng.uniform(-30, 30, n),
        ivar=np.full(image.shape, 1 / noise**2, np.float32),
        labels={"size": size, "big": (size > 2.5).astype(np.int64)},
        manifest={"source": "astrobench.testing.TinySurvey", "n": n, "seed": seed},
        origin=f"<tiny survey n={n} seed={seed}>",
    ).validate()


class TinySizeTask(Task):
    """Ridge regression of the blob size from embeddings; score R² on the test split."""

    version = "1"
    required_labels = ("size",)
    main_score = "r2"
    higher_is_better = {"r2": True, "rmse": False}
    protocols = ("linear",)
    default_protocols = ("linear",)

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def evaluate(self, inputs: EmbeddingInputs, *, protocol: str, seed: int, label_budget: int | None) -> TaskResult:
        import pandas as pd
        from sklearn.linear_model import Ridge
        from sklearn.metrics import mean_squared_error, r2_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        train, test = inputs.splits["train"], inputs.splits["test"]
        if label_budget is not None and label_budget < len(train):
            train = np.sort(np.random.default_rng(seed).choice(train, label_budget, replace=False))
        y = inputs.labels["size"]
        model = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(inputs.embeddings[train], y[train])
        pred = model.predict(inputs.embeddings[test])
        scores = {"r2": float(r2_score(y[test], pred)), "rmse": float(np.sqrt(mean_squared_error(y[test], pred)))}
        predictions = pd.DataFrame({"object_id": inputs.object_id[test], "size": y[test], "predicted": pred})
        return TaskResult(scores, predictions, {"n_train": int(len(train))})


class TinyAutoencoder(Method):
    """A small conv autoencoder trained on augmented views: real gradients, a few ms per step."""

    default_views = ()
    training = {"smoke": {"optimizer": "adamw", "lr": 3e-3}}

    def __init__(self, in_chans: int, image_size: int, views: ViewPipeline, width: int = 8, inject_nan_at: int = -1,
                 slow_step_s: float = 0.0):
        super().__init__(in_chans, image_size, views)
        self.encoder = nn.Sequential(nn.Conv2d(in_chans, width, 3, 2, 1), nn.GELU(), nn.Conv2d(width, width, 3, 2, 1))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(width, width, 4, 2, 1), nn.GELU(),
                                     nn.ConvTranspose2d(width, in_chans, 4, 2, 1))
        self.inject_nan_at = inject_nan_at  # for tests of the non-finite guard
        self.slow_step_s = slow_step_s  # lets kill tests land between checkpoints
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))

    def training_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.slow_step_s:
            import time

            time.sleep(self.slow_step_s)
        view = self.views(batch)
        loss = nn.functional.mse_loss(self.decoder(self.encoder(view)), view)
        if int(self.steps_seen) == self.inject_nan_at:
            loss = loss * float("nan")
        return {"loss": loss}

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.steps_seen += 1

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images).mean(dim=(2, 3))


def flux_survey_batch(n: int = 8, image_size: int = 32, bands: tuple[str, ...] = ("u", "g", "r", "i", "z"),
                      seed: int = 0) -> tuple[dict[str, Any], "Normalizer"]:
    """A flux-space batch as the runner makes it (image, ivar, a few invalid pixels, PSF, E(B-V),
    pixel scale) and the normaliser fitted on it: enough for every built-in augmentation."""
    from astrobench.datasets.batches import make_batch
    from astrobench.augment.normalize import Normalizer

    data = make_tiny_survey(n, image_size, bands, seed)
    data.mask[:, :, :2, :3] = True  # a flagged corner, as real cutouts have
    data.image[data.mask] = 0.0
    data.ivar[data.mask] = 0.0
    return make_batch(data, np.arange(n)), Normalizer.fit(data)


def check_training_step(method: str | type[Method], precision: str = "bf16", profile: str = "smoke",
                        views: tuple[str, ...] | None = None, **options: Any) -> float:
    """One full training step of a registered method (its default views, the ``profile``'s sizes)
    on a small flux batch, forward under the autocast that ``train.precision`` selects and backward,
    on the CPU: the same ops a GPU runs. Returns the loss; raises AssertionError when the loss or
    a gradient is not finite or no parameter gets a gradient. Plugin authors call it in their tests.
    """
    from astrobench.registry import METHODS

    cls = METHODS.get(method) if isinstance(method, str) else method
    batch, normalizer = flux_survey_batch()
    image_size = batch["image"].shape[-1]
    pipeline = ViewPipeline(views if views is not None else cls.default_views, None, normalizer, image_size)
    kwargs = {**cls.profiles.get(profile, {}), **options}
    if cls.uses_labels:
        kwargs.setdefault("num_classes", 3)
        batch["target"] = torch.arange(batch["image"].shape[0]) % kwargs["num_classes"]
    torch.manual_seed(0)
    model = cls(in_chans=batch["image"].shape[1], image_size=image_size, views=pipeline, **kwargs)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model.training_step(batch)["loss"]
    assert torch.isfinite(loss), f"{cls.__name__}: non-finite loss {float(loss)} under {precision}"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, f"{cls.__name__}: no parameter received a gradient"
    assert all(bool(torch.isfinite(g).all()) for g in grads), f"{cls.__name__}: non-finite gradient under {precision}"
    return float(loss.detach())


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300):
    """Run the real ``astrobench`` command line in a subprocess (for end-to-end tests)."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "astrobench", *args], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )


def register_test_doubles() -> None:
    """Register ``tiny``, ``tiny-size`` and ``tiny-ae`` (idempotent)."""
    from astrobench.registry import DATASETS, METHODS, TASKS

    for registry, name, obj in ((DATASETS, "tiny", TinySurvey), (TASKS, "tiny-size", TinySizeTask),
                                (METHODS, "tiny-ae", TinyAutoencoder)):
        registry.register(name, obj, source="astrobench.testing")
        obj.registered_name = name
