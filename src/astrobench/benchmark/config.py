"""Typed run configuration. Precedence: CLI > YAML file > method/profile defaults > dataclass defaults.

A YAML file holds the same keys as ``RunConfig`` (``train`` nested as ``TrainConfig``); an unknown
key anywhere is an error naming the key and the file. Every value is checked here, before any data
is read or any model built: types (a number is a number), ranges (steps >= 1, a batch of at least
2 that the processes divide), seeds and label budgets. The resolved config is saved with every
result; ``resolved_train`` is the one place the training settings are merged.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from astrobench.profiles import PROFILE_TRAIN, PROFILES

OVERWRITE_MODES = ("only-missing", "always", "never")
# `astrobench run` without --method: the baselines that train nothing (the untrained encoder, the
# chance line, the classical photometric baseline)
DEFAULT_METHODS = ("random", "constant", "colours")


class ConfigError(ValueError):
    """A malformed config; the message names the key and the file."""


def default_cache_dir() -> Path:
    """``$ASTROBENCH_CACHE``, else ``$XDG_CACHE_HOME/astrobench``, else ``~/.cache/astrobench``."""
    if os.environ.get("ASTROBENCH_CACHE"):
        return Path(os.environ["ASTROBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "astrobench"


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


# The type every TrainConfig value must have (a YAML "ten" or a CLI string fails here, naming the key).
_TRAIN_TYPES: dict[str, tuple[type, ...]] = {
    "steps": (int,), "batch_size": (int,), "warmup_steps": (int,), "checkpoint_every": (int,),
    "keep_checkpoints": (int,), "log_every": (int,), "lr": (int, float), "weight_decay": (int, float),
    "momentum": (int, float), "grad_clip": (int, float, type(None)), "optimizer": (str,), "precision": (str,),
    "compile": (bool,), "deterministic": (bool,), "data_on_device": (str, bool), "channels_last": (str, bool),
}
_TRAIN_CHOICES = {"optimizer": ("adamw", "sgd"), "precision": ("auto", "fp32", "bf16"),
                  "data_on_device": ("auto", True, False), "channels_last": ("auto", True, False)}
# (smallest allowed value, why): checked after the types
_TRAIN_MINIMUM = {"steps": (1, "an untrained model is not a result"),
                  "batch_size": (2, "contrastive and batch-norm methods need two images a step"),
                  "warmup_steps": (0, ""), "checkpoint_every": (0, "0 = only at the end"),
                  "keep_checkpoints": (1, "the newest complete checkpoint is what a resume needs"),
                  "log_every": (1, ""), "weight_decay": (0, ""), "momentum": (0, "")}


def check_train_values(values: dict[str, Any], source: str) -> None:
    """Type and range of every given training setting; the error names the key, the value and ``source``."""
    for key, value in values.items():
        types = _TRAIN_TYPES.get(key)
        if types is None:
            continue  # unknown keys are named by _build
        if isinstance(value, bool) and bool not in types:
            raise ConfigError(f"{source}: train.{key} must be a number, got {value!r}")
        if not isinstance(value, types):
            kinds = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"{source}: train.{key} must be {kinds}, got {value!r} ({type(value).__name__})")
        if key in _TRAIN_CHOICES and value not in _TRAIN_CHOICES[key]:
            raise ConfigError(f"{source}: train.{key} {value!r} is not one of {list(_TRAIN_CHOICES[key])}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: train.{key} must be finite, got {value!r}")
        if key in _TRAIN_MINIMUM and value < _TRAIN_MINIMUM[key][0]:
            least, why = _TRAIN_MINIMUM[key]
            raise ConfigError(f"{source}: train.{key} must be >= {least}, got {value!r}" + (f" ({why})" if why else ""))
        if key in ("lr", "grad_clip") and value is not None and value <= 0:
            raise ConfigError(f"{source}: train.{key} must be > 0, got {value!r}")


def check_batch_divides(train: TrainConfig, world_size: int, source: str) -> None:
    """The global batch is cut into equal shares, one per process."""
    if train.batch_size % world_size:
        raise ConfigError(f"{source}: train.batch_size {train.batch_size} is not divisible by the {world_size} "
                          f"processes; choose a multiple of {world_size}")


def _world_size() -> int:
    # torchrun describes the process group in the environment; the runner joins it after planning
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


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
    # explicit evaluation: the probe is fitted on every object of train_dataset (default: the
    # evaluation data, i.e. eval_dataset or dataset) and scored on every object of test_dataset
    train_dataset: str | None = None
    train_dataset_options: dict[str, Any] = field(default_factory=dict)
    test_dataset: str | None = None
    test_dataset_options: dict[str, Any] = field(default_factory=dict)
    # train/val/test fractions of the hash split ("all": the whole file is the train split, e.g.
    # pretraining on an unlabelled file); None = 0.7/0.1/0.2, or "all" when test_dataset is given
    splits: str | dict[str, float] | None = None
    strict: bool = False  # data-check warnings (duplicates, impossible labels, ...) fail the run
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
    cache_dir: str = field(default_factory=lambda: str(default_cache_dir()))
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
        for key in ("methods", "tasks", "plugins") + (("protocols",) if self.protocols is not None else ()):
            names = getattr(self, key)
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ConfigError(f"{key} must be a list of names, got {names!r}")
        if not isinstance(self.seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                       for s in self.seeds):
            raise ConfigError(f"seeds must be a list of non-negative integers, got {self.seeds!r}")
        if not isinstance(self.label_budgets, list) or not self.label_budgets:
            raise ConfigError(f"label_budgets must be a list of integers or 'all', got {self.label_budgets!r}")
        for budget in self.label_budgets:
            if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
                raise ConfigError(f"label budget {budget!r} must be an integer or 'all'")
            if budget is not None and budget <= 0:
                raise ConfigError(f"label budget {budget} must be a positive number of labels")
        if self.train_dataset and not self.test_dataset:
            raise ConfigError("train_dataset (--train-dataset) needs test_dataset (--test-dataset): the objects to score")
        if self.train_dataset and self.eval_dataset:
            raise ConfigError("give either eval_dataset or train_dataset/test_dataset, not both")
        if not isinstance(self.strict, bool):
            raise ConfigError(f"strict must be true or false, got {self.strict!r}")
        if self.splits is not None:
            from astrobench.datasets.splits import resolve_fractions

            try:
                resolve_fractions(self.splits)
            except ValueError as exc:
                raise ConfigError(f"splits: {exc}") from exc
        for key in ("dataset_options", "eval_dataset_options", "train_dataset_options", "test_dataset_options",
                    "method_options", "task_options"):
            if not isinstance(getattr(self, key), dict):
                raise ConfigError(f"{key} must be a mapping, got {getattr(self, key)!r}")
        for key in ("dataset", "results_dir", "cache_dir", "device"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key} must be a non-empty string, got {getattr(self, key)!r}")
        return self

    def resolved_train(self, method_training: dict[str, dict[str, Any]], method: str = "method",
                       world_size: int | None = None) -> TrainConfig:
        """dataclass defaults < profile sizes < the method's defaults < explicit YAML/CLI keys, checked
        (types, ranges, the batch divisible by ``world_size``, default: torchrun's ``WORLD_SIZE``)."""
        merged: dict[str, Any] = {}
        merged.update(PROFILE_TRAIN[self.profile])
        method_defaults = method_training.get(self.profile, {})
        check_train_values(method_defaults, f"method {method!r} training defaults ({self.profile})")
        merged.update(method_defaults)
        merged.update(self.train_overrides)
        train = _build(TrainConfig, merged, "train", "<resolved>")
        check_batch_divides(train, _world_size() if world_size is None else world_size, f"method {method!r}")
        return train


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


_MERGED_PER_NAME = ("method_options", "task_options")


def build_config(yaml_values: dict[str, Any], cli_values: dict[str, Any], source: str = "<cli>") -> RunConfig:
    """Merge YAML and CLI values (CLI wins) into a validated ``RunConfig``: the one place the layers
    meet. Mappings merge key by key (``train``, ``*_options``), plugin lists add up; every other
    key is replaced whole. The training settings are completed per method by ``resolved_train``."""
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
                check_train_values(value, origin)
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
            elif key == "label_budgets":
                items = value if isinstance(value, list) else [value]
                values[key] = [None if item == "all" else item for item in items]  # YAML may say 'all'
            elif key in _MERGED_PER_NAME and isinstance(value, dict) and isinstance(values.get(key), dict):
                # options per method/task: a command-line key overrides that key, the rest of the YAML stays
                merged = {name: dict(options) for name, options in values[key].items()}
                for name, options in value.items():
                    merged[name] = {**merged.get(name, {}), **options} if isinstance(options, dict) else options
                values[key] = merged
            elif key.endswith("_options") and isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}  # dataset options: key by key, CLI over YAML
            elif key == "plugins" and isinstance(value, list) and isinstance(values.get(key), list):
                values[key] = list(dict.fromkeys([*values[key], *value]))  # both layers' plugins, once each
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
