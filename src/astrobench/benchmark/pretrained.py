"""The pretrained-model artefact ``<cache>/pretrain/<name>-<key>/final``: reuse it, make it, reload it.

``final`` holds the weights (safetensors) and ``meta.json`` with everything needed to rebuild the
model from registered names alone (method name, options, views, normaliser, input shape), so the
report reloads a model without running any code the results name.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from astrobench import distributed
from astrobench.augment.normalize import Normalizer
from astrobench.augment.pipeline import ViewPipeline
from astrobench.benchmark import checkpoints
from astrobench.benchmark.build import MethodSpec
from astrobench.benchmark.pretrain import PretrainStats, cache_lock, pretrain
from astrobench.datasets.batches import make_batch
from astrobench.datasets.schema import SurveyData
from astrobench.datasets.splits import draw_rows
from astrobench.fsutil import atomic_directory
from astrobench.methods.base import Method
from astrobench.registry import METHODS

INIT_SAMPLE = 2048  # training images an untrained baseline (PCA, colours) is initialised from

ProgressBar = Callable[[str, int], Any]  # (label, total) -> context manager yielding advance(done, logs)


def pretrained_model(model: Method, spec: MethodSpec, seed: int, data: SurveyData, train_index: np.ndarray,
                     targets: np.ndarray | None, run_dir: Path, key: str, device: torch.device,
                     normalizer: Normalizer, progress_bar: ProgressBar) -> dict[str, Any]:
    """Load ``run_dir/final`` into ``model`` when it exists, else train (or initialise) and write it.

    Returns the pretraining statistics, with ``cached`` saying whether they were reused. Identical
    concurrent runs share one training (``cache_lock``); a damaged ``final`` is trained again."""
    with cache_lock(run_dir, waiting=_say_waiting):
        return _reuse_or_make(model, spec, seed, data, train_index, targets, run_dir, key, device, normalizer,
                              progress_bar)


def _say_waiting(lock: Path) -> None:
    print(f"astrobench: another run is training this model ({lock.parent}); waiting to share it",
          file=sys.stderr, flush=True)


def _reuse_or_make(model: Method, spec: MethodSpec, seed: int, data: SurveyData, train_index: np.ndarray,
                   targets: np.ndarray | None, run_dir: Path, key: str, device: torch.device,
                   normalizer: Normalizer, progress_bar: ProgressBar) -> dict[str, Any]:
    final = run_dir / "final"
    if (final / checkpoints.META).is_file():
        try:
            stats = checkpoints.read_meta(final)["stats"]
            checkpoints.load_weights(model, final / checkpoints.WEIGHTS)
            model.to(device)
            return {**stats, "cached": True}
        except (checkpoints.CheckpointError, KeyError) as exc:
            warnings.warn(f"{exc}; training it again (from its newest complete checkpoint, if any)",
                          RuntimeWarning, stacklevel=2)
    meta = {
        "key": key, "method": spec.identity(), "seed": seed, "normalizer": normalizer.to_dict(),
        "in_chans": model.in_chans, "image_size": model.image_size, "out_size": model.views.out_size,
        "extra_args": {"num_classes": model.num_classes} if spec.cls.uses_labels else {},
    }
    if spec.cls.trainable:
        with progress_bar(f"pretrain {spec.name} seed {seed}", spec.train.steps) as advance:
            stats: PretrainStats = pretrain(
                model, data, train_index, spec.train, seed, run_dir, device, meta, targets,
                progress=lambda done, total, logs: advance(done, logs),
            )
        stats_dict = {k: v for k, v in asdict(stats).items() if k != "losses"}
        stats_dict["loss_curve"] = stats.losses
    else:
        t0 = time.perf_counter()
        sample = draw_rows(train_index, INIT_SAMPLE, seed)
        model.to(device)
        model.initialize(model.views.eval_view(make_batch(data, sample, device)))
        stats_dict = {"steps": 0, "wall_time_s": time.perf_counter() - t0}
    if distributed.rank() == 0:
        write_final(model, final, {**meta, "stats": stats_dict})
    distributed.barrier()
    return {**stats_dict, "cached": False}


def write_final(model: Method, final: Path, meta: dict[str, Any]) -> None:
    with atomic_directory(final) as tmp:
        checkpoints.save_weights(model, tmp / checkpoints.WEIGHTS)
        (tmp / checkpoints.META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def load_pretrained(pretrain_dir: Path) -> Method:
    """Rebuild a pretrained method from its cache folder (``<cache>/pretrain/<name>-<key>``).

    The method is looked up by its registered name: a name nothing registered (a plugin not loaded
    in this process) is the registry's unknown-name error, never an import of the stored module."""
    final = Path(pretrain_dir) / "final"
    if not (final / checkpoints.META).is_file():
        raise FileNotFoundError(f"{pretrain_dir}: no complete pretrained model (missing final/{checkpoints.META})")
    meta = checkpoints.read_meta(final)
    identity = meta["method"]
    cls = METHODS.get(identity["method"])
    views = ViewPipeline(identity["views"]["codes"], identity["views"]["params"],
                         Normalizer.from_dict(meta["normalizer"]), meta["out_size"])
    model = cls(in_chans=meta["in_chans"], image_size=meta["image_size"], views=views, **identity["options"],
                **meta.get("extra_args", {}))
    checkpoints.load_weights(model, final / checkpoints.WEIGHTS)
    return model.eval()
