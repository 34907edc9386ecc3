"""Typed run configuration. Precedence: CLI > YAML file > method/profile defaults > dataclass defaults.

A YAML file holds the same keys as ``RunConfig`` (``train`` nested as ``TrainConfig``); an unknown
key anywhere is an error naming the key and the file. The resolved config is saved with every
result.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "quick", "gpu", "paper")
OVERWRITE_MODES = ("only-missing", "always", "never")
# `astrobench run` without --method: the baselines that train nothing (the untrained encoder, the
# chance line, the classical photometric baseline)
DEFAULT_METHODS = ("random", "constant", "colours")


class ConfigError(ValueError):
    """A malformed config; the message names the key and the file."""


@dataclass
class TrainConfig:
    """Pretraining settings. Methods override per profile through ``Method.training``."""

    steps: int = 2000
    batch_size: int = 256
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3  # for batch_size 256; scaled linearly with the global batch
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    warmup_steps: int = 100
    grad_clip: float | None = None
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False
    # how the step runs, not what it computes (left out of cache keys): "auto" = on a GPU
    data_on_device: str | bool = "auto"  # training rows resident on the device when they fit
    channels_last: str | bool = "auto"  # NHWC activations (tensor-core convolutions)
    checkpoint_every: int = 0  # steps; 0 = only at the end
    keep_checkpoints: int = 2
    deterministic: bool = False
    log_every: int = 50


# Sizes per profile; a profile never changes an algorithm, only how much of it runs.
PROFILE_TRAIN: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 4, "batch_size": 16, "warmup_steps": 1, "log_every": 1},
    "quick": {"steps": 600, "batch_size": 128, "warmup_steps": 50},
    # gpu: conclusions on one GPU, about 10 minutes a method (50,000 galaxies, 100 epochs)
    "gpu": {"steps": 10_000, "batch_size": 512, "warmup_steps": 500, "log_every": 250},
    "paper": {"steps": 100_000, "batch_size": 256, "warmup_steps": 5000},
}


@dataclass
class ViewsConfig:
    """A method's augmentations: registered codes and per-code constructor parameters."""

    codes: list[str] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunConfig:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    tasks: list[str] = field(default_factory=lambda: ["redshift"])
    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    eval_dataset: str | None = None  # labelled data for tasks, when not the pretraining data
    eval_dataset_options: dict[str, Any] = field(default_factory=dict)
    profile: str = "quick"
    seeds: list[int] = field(default_factory=lambda: [0])
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> ctor overrides
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> ctor overrides
    views: dict[str, ViewsConfig] = field(default_factory=dict)  # method name -> views
    protocols: list[str] | None = None  # None = each task's default protocols
    label_budgets: list[int | None] = field(default_factory=lambda: [None])
    train: TrainConfig = field(default_factory=TrainConfig)
    train_overrides: dict[str, Any] = field(default_factory=dict)  # keys set explicitly by YAML/CLI
    results_dir: str = field(default_factory=lambda: os.environ.get("ASTROBENCH_RESULTS", "results"))
    cache_dir: str = field(
        default_factory=lambda: os.environ.get(
            "ASTROBENCH_CACHE", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "astrobench")
        )
    )
    overwrite: str = "only-missing"
    device: str = "auto"
    plugins: list[str] = field(default_factory=list)
    tag: str | None = None  # free label stored with results (ablation variants)

    def validate(self) -> "RunConfig":
        if self.profile not in PROFILES:
            raise ConfigError(f"profile {self.profile!r} is not one of {list(PROFILES)}")
        if self.overwrite not in OVERWRITE_MODES:
            raise ConfigError(f"overwrite {self.overwrite!r} is not one of {list(OVERWRITE_MODES)}")
        if not self.methods:
            raise ConfigError("no method given")
        if not self.tasks:
            raise ConfigError("no task given")
        if not self.seeds:
            raise ConfigError("no seed given")
        for budget in self.label_budgets:
            if budget is not None and budget <= 0:
                raise ConfigError(f"label budget {budget} must be a positive number of labels")
        return self

    def resolved_train(self, method_training: dict[str, dict[str, Any]]) -> TrainConfig:
        """dataclass defaults < profile sizes < the method's defaults < explicit YAML/CLI keys."""
        merged: dict[str, Any] = {}
        merged.update(PROFILE_TRAIN[self.profile])
        merged.update(method_training.get(self.profile, {}))
        merged.update(self.train_overrides)
        return _build(TrainConfig, merged, "train", "<resolved>")


def _build(cls: type, values: dict[str, Any], where: str, source: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown key {where + '.' if where else ''}{key!r}{hint}")
    return cls(**values)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def build_config(yaml_values: dict[str, Any], cli_values: dict[str, Any], source: str = "<cli>") -> RunConfig:
    """Merge YAML and CLI values (CLI wins) into a validated ``RunConfig``."""
    values: dict[str, Any] = {}
    for origin, layer in ((source, yaml_values), ("command line", cli_values)):
        names = {f.name for f in dataclasses.fields(RunConfig)} - {"train_overrides"}
        for key, value in layer.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{origin}: unknown key {key!r}{hint}")
            if key == "train":
                if not isinstance(value, dict):
                    raise ConfigError(f"{origin}: 'train' must be a mapping")
                _build(TrainConfig, value, "train", origin)  # names every unknown key
                values.setdefault("train_overrides", {}).update(value)
            elif key == "views":
                if not isinstance(value, dict):
                    raise ConfigError(f"{origin}: 'views' must map method names to views")
                views = values.setdefault("views", {})
                for method, view in value.items():
                    if isinstance(view, ViewsConfig):
                        views[method] = view
                    elif isinstance(view, list):
                        views[method] = ViewsConfig(codes=[str(c) for c in view])
                    elif isinstance(view, dict):
                        views[method] = _build(ViewsConfig, view, f"views.{method}", origin)
                    else:
                        raise ConfigError(f"{origin}: views.{method} must be a list of codes or a mapping")
            else:
                values[key] = value
    overrides = values.pop("train_overrides", {})
    config = RunConfig(**values)
    config.train_overrides = overrides
    config.train = _build(TrainConfig, overrides, "train", source)
    return config.validate()


def config_to_dict(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    return config
