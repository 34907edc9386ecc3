"""Building the pieces of a run from registered names and options: the public way to get a
dataset, a method, a model or a task outside the runner (the report, a Python API, benchmarks).

Every option is checked against the constructor of the class it configures before anything is
built, so a typo fails at once with the list of valid options.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from astrobench import distributed
from astrobench.augment.normalize import Normalizer
from astrobench.augment.pipeline import ViewPipeline
from astrobench.benchmark.config import ConfigError, RunConfig, TrainConfig
from astrobench.benchmark.identity import method_code
from astrobench.benchmark.store import stable_hash
from astrobench.datasets.base import DataSource
from astrobench.datasets.schema import SurveyData
from astrobench.methods.base import Method
from astrobench.registry import DATASETS, METHODS, TASKS
from astrobench.tasks.base import Task

# constructor arguments the runner supplies itself: never options
_CTOR_RESERVED = {"self", "in_chans", "image_size", "views"}
# training settings that do not change what a model learns (left out of its identity)
_COSMETIC_TRAIN = ("log_every", "checkpoint_every", "keep_checkpoints", "compile", "data_on_device", "channels_last")


def check_options(cls: type, options: dict[str, Any], what: str, reserved: set[str] = frozenset({"self"})) -> None:
    """Every option must be a named constructor parameter of ``cls`` (no blind **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    allowed = [n for n in params if n not in reserved and params[n].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.75)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{what} has no option {key!r}.{hint} Its options are {allowed}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if distributed.is_distributed() and torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device {name!r} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA device is available")
    return device


def build_dataset(name: str, options: dict[str, Any], profile: str, cache_dir: Path,
                  progress: Callable[[int, int], None] | None = None) -> tuple[SurveyData, dict[str, Any]]:
    """The validated data of dataset ``name`` and the options it was built with (profile < ``options``).

    ``progress(done, total)`` hears from sources that generate on first use (``reports_progress``).
    """
    source_cls = DATASETS.get(name)
    resolved = {**getattr(source_cls, "profiles", {}).get(profile, {}), **options}
    check_options(source_cls, resolved, f"dataset {name!r}")
    source: DataSource = source_cls(**resolved)
    if progress is not None and getattr(source_cls, "reports_progress", False):
        data = source.load(cache_dir, progress=progress)
    else:
        data = source.load(cache_dir)
    data.validate()
    return data, resolved


def fingerprint(data: SurveyData) -> str:
    return data.manifest.get("content_hash") or data.content_hash()


def build_task(name: str, options: dict[str, Any] | None = None) -> Task:
    cls = TASKS.get(name)
    options = dict(options or {})
    check_options(cls, options, f"task {name!r}")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:  # a missing or bad option (e.g. no label=): a usage error
        raise ConfigError(f"task {name!r}: {exc}") from exc


@dataclass(eq=False)
class MethodSpec:
    """A method fully resolved for one profile: what determines its pretrained weights."""

    name: str
    cls: type
    options: dict[str, Any]
    views_codes: list[str]
    views_params: dict[str, dict[str, Any]]
    train: TrainConfig

    def identity(self) -> dict[str, Any]:
        train = asdict(self.train)
        for cosmetic in _COSMETIC_TRAIN:
            train.pop(cosmetic)
        return {
            "method": self.name,
            "target": f"{self.cls.__module__}:{self.cls.__qualname__}",
            "options": self.options,
            "views": {"codes": self.views_codes, "params": self.views_params},
            "train": train if self.cls.trainable else None,
        }

    @property
    def config_hash(self) -> str:
        """The configuration the user chose (one leaderboard row per value); the code that ran it is
        in ``code()``, part of the pretraining key and of each result's identity."""
        return stable_hash(self.identity(), 12)

    def code(self) -> dict[str, Any]:
        """Version and source hash of the method and of its augmentations (benchmark/identity.py)."""
        return method_code(self.cls, self.views_codes)


def resolve_method(name: str, config: RunConfig) -> MethodSpec:
    """Method ``name`` with its options, views and training settings for ``config``'s profile."""
    cls = METHODS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"method {name!r} resolves to {cls!r}, which is not an astrobench Method subclass")
    options = {**cls.profiles.get(config.profile, {}), **config.method_options.get(name, {})}
    reserved = _CTOR_RESERVED | ({"num_classes"} if cls.uses_labels else set())
    check_options(cls, options, f"method {name!r}", reserved)
    views = config.views.get(name)
    codes = list(views.codes) if views is not None else list(cls.default_views)
    params = dict(views.params) if views is not None else {}
    return MethodSpec(name, cls, options, codes, params, config.resolved_train(cls.training, name))


def views_for_data(spec: MethodSpec, image_is_flux: bool, explicit: bool) -> tuple[MethodSpec, str | None]:
    """``spec`` with views the data can take, and a note saying what changed (None: nothing).

    On RGB composites (not flux) augmentations that need flux (GR, PS) mean nothing. A method's
    *default* views lose them, with the note printed before any training; views the user *chose*
    (``views:`` in the config) that include them are a ``ConfigError`` (exit 2), also before any
    training: a request that cannot be honoured is refused, a default is adapted.
    """
    from astrobench.registry import AUGMENTATIONS

    if image_is_flux:
        return spec, None
    flux_only = [code for code in spec.views_codes if getattr(AUGMENTATIONS.get(code), "needs_flux", False)]
    if not flux_only:
        return spec, None
    if explicit:
        raise ConfigError(f"method {spec.name!r}: views {flux_only} need flux images, but the data holds RGB "
                          f"composites; remove them from views.{spec.name}.codes")
    kept = [code for code in spec.views_codes if code not in flux_only]
    params = {code: p for code, p in spec.views_params.items() if code in kept}
    note = (f"method {spec.name!r}: RGB data, so its default views {spec.views_codes} run without "
            f"{flux_only} (they need flux images): {kept}")
    return dataclasses.replace(spec, views_codes=kept, views_params=params), note


def build_model(spec: MethodSpec, data: SurveyData, normalizer: Normalizer, seed: int, extra: dict[str, Any]) -> Method:
    """A freshly initialised model of ``spec`` for ``data`` (weights drawn with ``seed``)."""
    out_size = int(spec.views_params.get("JC", {}).get("out_size") or data.image_size)
    views = ViewPipeline(spec.views_codes, spec.views_params, normalizer, out_size)
    seed_everything(seed)
    return spec.cls(in_chans=data.n_bands, image_size=out_size, views=views, **spec.options, **extra)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
