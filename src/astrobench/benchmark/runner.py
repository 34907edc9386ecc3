"""The runner: pretrain -> embed -> evaluate -> store, every stage cached by a content hash.

A stage's key hashes everything that determines its output (method config, views, training
settings, data fingerprint, seed, stage code version), so a second task on an already pretrained
model reuses the checkpoint and the embeddings, and any change of config or data recomputes.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import platform
import random
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import astrobench
from astrobench.augment.pipeline import ViewPipeline
from astrobench.benchmark import checkpoints, distributed
from astrobench.benchmark.flags import result_flags
from astrobench.benchmark.batches import make_batch
from astrobench.benchmark.config import ConfigError, RunConfig, TrainConfig, config_to_dict
from astrobench.benchmark.pretrain import PretrainStats, pretrain
from astrobench.benchmark.store import result_path, stable_hash, write_result
from astrobench.datasets.base import DataSource
from astrobench.fsutil import atomic_directory, atomic_write_bytes
from astrobench.datasets.normalize import Normalizer
from astrobench.datasets.schema import SurveyData
from astrobench.datasets.splits import split_indices
from astrobench.methods.base import Method
from astrobench.registry import DATASETS, METHODS, TASKS, load_plugin
from astrobench.tasks.base import EmbeddingInputs, FinetuneInputs, Task, bootstrap_std
from astrobench.tasks.probes import needs_model

# Bump a stage's version when its code changes what it produces: old cache entries stop matching.
PRETRAIN_VERSION = "5"  # 2: the supervised baseline trains on Task.training_rows; 3-4: CPU kernel changes; 5: one torch implementation of the augmentations on every device (numba kernels gone), noise and blur on every plane, parameters drawn on the batch's device
EMBED_VERSION = "1"
_CTOR_RESERVED = {"self", "in_chans", "image_size", "views"}


# -- construction from config ---------------------------------------------------------------
def check_options(cls: type, options: dict[str, Any], what: str, reserved: set[str] = frozenset({"self"})) -> None:
    """Every option must be a named constructor parameter of ``cls`` (no blind **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    allowed = [n for n in params if n not in reserved and params[n].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    for key in options:
        if key not in allowed:
            raise ConfigError(f"{what} has no option {key!r}; its options are {allowed}")


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


def load_dataset(name: str, options: dict[str, Any], profile: str, cache_dir: Path,
                 reporter: "Reporter | None" = None) -> tuple[SurveyData, dict[str, Any]]:
    source_cls = DATASETS.get(name)
    resolved = {**getattr(source_cls, "profiles", {}).get(profile, {}), **options}
    check_options(source_cls, resolved, f"dataset {name!r}")
    source: DataSource = source_cls(**resolved)
    if reporter is not None and "progress" in inspect.signature(source.load).parameters:
        # sources that generate on first use report progress; the bar opens at the first report
        with contextlib.ExitStack() as stack:
            bar: list[Callable[..., None]] = []

            def report(done: int, total: int) -> None:
                if not bar:
                    bar.append(stack.enter_context(reporter.progress(f"generating dataset {name!r}", total)))
                bar[0](done, {})

            data = source.load(cache_dir, progress=report)
    else:
        data = source.load(cache_dir)
    data.validate()
    return data, resolved


def fingerprint(data: SurveyData) -> str:
    return data.manifest.get("content_hash") or data.content_hash()


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
        for cosmetic in ("log_every", "checkpoint_every", "keep_checkpoints", "compile", "data_on_device", "channels_last"):
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
        return stable_hash(self.identity(), 12)


def resolve_method(name: str, config: RunConfig) -> MethodSpec:
    cls = METHODS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"method {name!r} resolves to {cls!r}, which is not an astrobench Method subclass")
    options = {**cls.profiles.get(config.profile, {}), **config.method_options.get(name, {})}
    reserved = _CTOR_RESERVED | ({"num_classes"} if cls.uses_labels else set())
    check_options(cls, options, f"method {name!r}", reserved)
    views = config.views.get(name)
    codes = list(views.codes) if views is not None else list(cls.default_views)
    params = dict(views.params) if views is not None else {}
    return MethodSpec(name, cls, options, codes, params, config.resolved_train(cls.training))


# -- stages ------------------------------------------------------------------------------------
def build_model(spec: MethodSpec, data: SurveyData, normalizer: Normalizer, seed: int, extra: dict[str, Any]) -> Method:
    out_size = int(spec.views_params.get("JC", {}).get("out_size") or data.image_size)
    views = ViewPipeline(spec.views_codes, spec.views_params, normalizer, out_size)
    seed_everything(seed)
    return spec.cls(in_chans=data.n_bands, image_size=out_size, views=views, **spec.options, **extra)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def embed_all(model: Method, data: SurveyData, device: torch.device, batch_size: int = 256,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Embeddings of every object, in row order, computed on this rank's share and gathered."""
    model.eval()
    model.to(device)
    n = len(data)
    rank, world = distributed.rank(), distributed.world_size()
    rows = np.arange(rank, n, world)  # strided shards: gathering restores order by construction
    chunks = []
    for start in range(0, len(rows), batch_size):
        batch = make_batch(data, rows[start : start + batch_size], device)
        chunks.append(model.embed(model.views.eval_view(batch)).float().cpu())
        if progress is not None:
            progress(min(start + batch_size, len(rows)) * world, n)
    local = torch.cat(chunks) if chunks else torch.zeros(0)
    if world > 1:
        local = gather_strided_rows(local, n, device)
    return local.numpy().astype(np.float32)


def gather_strided_rows(local: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """Rank r holds rows r, r+W, r+2W, ...; return all n rows in order on every rank."""
    world = distributed.world_size()
    per_rank = -(-n // world)
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype)
    padded[: local.shape[0]] = local
    padded = padded.to(device)
    chunks = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(chunks, padded)
    stacked = torch.stack(chunks, dim=1).cpu()  # (per_rank, world, D): row i is [i // W, i % W]
    return stacked.reshape(per_rank * world, *local.shape[1:])[:n]


def init_distributed() -> None:
    """Join the process group that torchrun describes in the environment (no-op without one)."""
    import os

    if distributed.is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl")
    else:
        torch.distributed.init_process_group("gloo")


@dataclass
class Job:
    task_name: str
    task: Task
    protocol: str
    label_budget: int | None
    path: Path


@dataclass
class RunSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


class Runner:
    """Runs the method x task x protocol x label budget x seed matrix of one ``RunConfig``."""

    def __init__(self, config: RunConfig, reporter: "Reporter | None" = None):
        self.config = config.validate()
        self.reporter = reporter or Reporter(enabled=False)
        self.results_dir = Path(config.results_dir)
        self.cache_dir = Path(config.cache_dir)

    # planning happens before any work so that errors surface at once
    def plan(self) -> None:
        cfg = self.config
        for plugin in cfg.plugins:
            load_plugin(plugin)
        self.device = resolve_device(cfg.device)
        self.specs = [resolve_method(m, cfg) for m in cfg.methods]
        self.tasks: dict[str, Task] = {}
        for name in cfg.tasks:
            cls = TASKS.get(name)
            options = cfg.task_options.get(name, {})
            check_options(cls, options, f"task {name!r}")
            self.tasks[name] = cls(**options)
        unknown_options = set(cfg.method_options) - set(cfg.methods)
        unknown_options |= {f"task {t}" for t in set(cfg.task_options) - set(cfg.tasks)}
        if unknown_options:
            raise ConfigError(f"options given for {sorted(unknown_options)}, which this run does not include")
        if cfg.protocols:
            for protocol in cfg.protocols:
                if not any(protocol in task.protocols for task in self.tasks.values()):
                    raise ConfigError(
                        f"protocol {protocol!r} belongs to none of the tasks "
                        f"({', '.join(f'{n}: {list(t.protocols)}' for n, t in self.tasks.items())})"
                    )
            for name, task in self.tasks.items():
                if not self.protocols(task):
                    raise ConfigError(f"task {name!r} has none of the protocols {cfg.protocols}; it has {list(task.protocols)}")
        DATASETS.get(cfg.dataset)
        if cfg.eval_dataset:
            DATASETS.get(cfg.eval_dataset)

    def protocols(self, task: Task) -> list[str]:
        """The configured protocols this task has (its defaults when none are configured)."""
        if not self.config.protocols:
            return list(task.default_protocols)
        return [p for p in self.config.protocols if p in task.protocols]

    def label_budgets(self, task: Task) -> list[int | None]:
        # a task without label budgets (similarity search) runs once, on every labelled object
        return list(self.config.label_budgets) if task.supports_label_budget else [None]

    def run(self) -> RunSummary:
        init_distributed()
        try:
            return self._run()
        finally:
            if distributed.is_distributed():
                torch.distributed.destroy_process_group()

    def _run(self) -> RunSummary:
        self.plan()
        cfg = self.config
        # rank 0 loads first: a dataset generated into the cache is written once, then read by all
        if distributed.rank() != 0:
            distributed.barrier()
        data, data_options = load_dataset(cfg.dataset, cfg.dataset_options, cfg.profile, self.cache_dir, self.reporter)
        if cfg.eval_dataset:
            eval_data, eval_options = load_dataset(cfg.eval_dataset, cfg.eval_dataset_options, cfg.profile,
                                                   self.cache_dir, self.reporter)
        else:
            eval_data, eval_options = data, data_options
        if distributed.rank() == 0:
            distributed.barrier()
        for task in self.tasks.values():
            task.check_data(eval_data)
        self.data, self.eval_data = data, eval_data
        self.data_hash, self.eval_hash = fingerprint(data), fingerprint(eval_data)
        self.data_options, self.eval_options = data_options, eval_options
        self.splits = split_indices(data)
        self.eval_splits = self.splits if eval_data is data else split_indices(eval_data)
        self.normalizer = Normalizer.fit(data.subset(self.splits["train"]))
        self.normalizer.check_bands(eval_data.bands, eval_data.origin)

        summary = RunSummary()
        jobs_by_variant = self._jobs(summary)
        for (spec, seed, supervised_task, budget), jobs in jobs_by_variant.items():
            self._run_variant(spec, seed, supervised_task, budget, jobs, summary)
        return summary

    def _jobs(self, summary: RunSummary) -> dict[tuple, list[Job]]:
        cfg = self.config
        variants: dict[tuple, list[Job]] = {}
        existing: list[Path] = []
        for spec in self.specs:
            for seed in cfg.seeds:
                for task_name, task in self.tasks.items():
                    for protocol in self.protocols(task):
                        for budget in self.label_budgets(task):
                            path = result_path(
                                self.results_dir, dataset=self.dataset_label, profile=cfg.profile, task=task_name,
                                method=spec.name, config_hash=spec.config_hash, protocol=protocol,
                                label_budget=budget, seed=seed, tag=cfg.tag,
                            )
                            if path.exists():
                                if cfg.overwrite == "only-missing":
                                    summary.skipped.append(path)
                                    continue
                                if cfg.overwrite == "never":
                                    existing.append(path)
                                    continue
                            # a supervised model is trained per task and label budget
                            key = (spec.name, seed, task_name if spec.cls.uses_labels else None,
                                   budget if spec.cls.uses_labels else None)
                            variants.setdefault(key, []).append(Job(task_name, task, protocol, budget, path))
        if existing:
            raise FileExistsError(
                f"--overwrite never: {len(existing)} result(s) already exist, e.g. {existing[0]}; nothing was run"
            )
        by_name = {s.name: s for s in self.specs}
        return {(by_name[k[0]], k[1], k[2], k[3]): v for k, v in variants.items()}

    @property
    def dataset_name(self) -> str:
        cfg = self.config
        return cfg.dataset if not cfg.eval_dataset else f"{cfg.dataset}-to-{cfg.eval_dataset}"

    @property
    def dataset_label(self) -> str:
        """Name plus data fingerprint: two HDF5 files (or two simulator settings) never share results."""
        cfg = self.config
        label = f"{cfg.dataset}-{self.data_hash[:8]}"
        return label if not cfg.eval_dataset else f"{label}-to-{cfg.eval_dataset}-{self.eval_hash[:8]}"

    # -- one pretrained model, all its evaluations ------------------------------------------
    def _run_variant(self, spec: MethodSpec, seed: int, supervised_task: str | None, budget: int | None,
                     jobs: list[Job], summary: RunSummary) -> None:
        cfg = self.config
        extra: dict[str, Any] = {}
        targets, train_index, label_identity = None, self.splits["train"], None
        data = self.data
        if spec.cls.uses_labels:
            task = self.tasks[supervised_task]
            data = self.eval_data  # labels live on the evaluation data
            targets, n_classes = task.supervised_targets(data.labels)
            # the same labelled objects as the probe it is compared with (same seed and budget)
            train_index = task.training_rows(data.labels, self.eval_splits, seed, budget)
            extra = {"num_classes": int(n_classes)}
            label_identity = {"task": supervised_task, "task_version": task.version, "task_params": task.params(), "label_budget": budget}
        pretrain_key = stable_hash({
            "stage": "pretrain", "version": PRETRAIN_VERSION, "spec": spec.identity(), "seed": seed,
            "data": fingerprint(data), "normalizer": self.normalizer.to_dict(), "labels": label_identity,
        })
        run_dir = self.cache_dir / "pretrain" / f"{spec.name}-{pretrain_key}"
        model = build_model(spec, data, self.normalizer, seed, extra)
        stats = self._pretrained(model, spec, seed, data, train_index, targets, run_dir, pretrain_key)

        embed_key = stable_hash({"stage": "embed", "version": EMBED_VERSION, "model": pretrain_key, "data": self.eval_hash})
        embeddings = self._embeddings(model, embed_key, f"{spec.name} seed {seed}")
        self._current_keys = {"pretrain_dir": str(run_dir.relative_to(self.cache_dir)),
                              "embeddings_file": f"embeddings/{embed_key}.npy"}
        if distributed.rank() != 0:
            return  # evaluation is cheap next to pretraining: rank 0 does it alone
        inputs = EmbeddingInputs(embeddings, self.eval_data.object_id, self.eval_data.labels, self.eval_splits, self.device)
        for job in jobs:
            t0 = time.perf_counter()
            with self.reporter.status(f"{spec.name} seed {seed}: {job.task_name} / {job.protocol}"):
                if needs_model(job.protocol):
                    fin = FinetuneInputs(copy.deepcopy(model), self.eval_data, self.eval_splits, self.device, cfg.profile)
                    result = job.task.finetune(fin, seed=seed, label_budget=job.label_budget)
                else:
                    result = job.task.evaluate(inputs, protocol=job.protocol, seed=seed, label_budget=job.label_budget)
            record = self._record(spec, seed, job, result, stats, pretrain_key, time.perf_counter() - t0)
            write_result(job.path, record, result.predictions)
            summary.written.append(job.path)
            self.reporter.result(record)

    def _pretrained(self, model: Method, spec: MethodSpec, seed: int, data: SurveyData, train_index: np.ndarray,
                    targets: np.ndarray | None, run_dir: Path, key: str) -> dict[str, Any]:
        final = run_dir / "final"
        if (final / checkpoints.META).is_file():
            checkpoints.load_weights(model, final / checkpoints.WEIGHTS)
            model.to(self.device)
            return {**checkpoints.read_meta(final)["stats"], "cached": True}
        meta = {
            "key": key, "method": spec.identity(), "seed": seed, "normalizer": self.normalizer.to_dict(),
            "in_chans": model.in_chans, "image_size": model.image_size, "out_size": model.views.out_size,
            "extra_args": {"num_classes": model.num_classes} if spec.cls.uses_labels else {},
        }
        if spec.cls.trainable:
            label = f"pretrain {spec.name} seed {seed}"
            with self.reporter.progress(label, spec.train.steps) as advance:
                stats: PretrainStats = pretrain(
                    model, data, train_index, spec.train, seed, run_dir, self.device, meta, targets,
                    progress=lambda done, total, logs: advance(done, logs),
                )
            stats_dict = {k: v for k, v in asdict(stats).items() if k != "losses"}
            stats_dict["loss_curve"] = stats.losses
        else:
            t0 = time.perf_counter()
            sample = draw_budget(train_index, 2048, seed)
            model.to(self.device)
            images = model.views.eval_view(make_batch(data, sample, self.device))
            model.initialize(images)
            stats_dict = {"steps": 0, "wall_time_s": time.perf_counter() - t0}
        if distributed.rank() == 0:
            write_final(model, final, {**meta, "stats": stats_dict})
        distributed.barrier()
        return {**stats_dict, "cached": False}

    def _embeddings(self, model: Method, key: str, label: str) -> np.ndarray:
        path = self.cache_dir / "embeddings" / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        with self.reporter.progress(f"embed {label}", len(self.eval_data)) as advance:
            emb = embed_all(model, self.eval_data, self.device, progress=lambda done, total: advance(done, {}))
        if not np.isfinite(emb).all():
            raise FloatingPointError(f"{label}: non-finite embeddings; nothing was written")
        if distributed.rank() == 0:
            import io

            buffer = io.BytesIO()
            np.save(buffer, emb)
            atomic_write_bytes(path, buffer.getvalue())
        return emb

    def _record(self, spec: MethodSpec, seed: int, job: Job, result: Any, stats: dict[str, Any],
                pretrain_key: str, eval_time: float) -> dict[str, Any]:
        cfg = self.config
        task = job.task
        return {
            "kind": "astrobench-result",
            "astrobench_version": astrobench.__version__,
            "git_sha": git_sha(),
            "method": spec.name,
            "method_config": spec.identity(),
            "config_hash": spec.config_hash,
            "pretrain_key": pretrain_key,
            "dataset": self.dataset_name,
            "dataset_id": self.dataset_label,
            "dataset_options": {"pretrain": self.data_options, "eval": self.eval_options},
            "data_manifest_hash": {"pretrain": self.data_hash, "eval": self.eval_hash},
            "profile": cfg.profile,
            "task": job.task_name,
            "task_version": task.version,
            "task_params": task.params(),
            "protocol": job.protocol,
            "label_budget": job.label_budget,
            "seed": seed,
            "tag": cfg.tag,
            "scores": {k: float(v) for k, v in result.scores.items()},
            # "constant_predictions" / "loss_not_decreasing" (benchmark/flags.py); the leaderboard shows them
            "flags": result_flags(result.predictions, stats.get("loss_curve")),
            "bootstrap_std": bootstrap_std(task, result.predictions),  # std over resampled test objects
            "main_score": task.main_score,
            "higher_is_better": dict(task.higher_is_better),
            "details": result.details,
            "pretrain": stats,
            "artifacts": dict(self._current_keys),  # relative to the cache folder
            "cache_dir": str(self.cache_dir),
            "eval_wall_time_s": eval_time,
            "resolved_config": resolved_run_config(cfg, spec),
            "versions": versions(),
            "device": device_name(self.device),
            "world_size": distributed.world_size(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def resolved_run_config(config: RunConfig, spec: MethodSpec) -> dict[str, Any]:
    """The run configuration as this method ran it: ``train`` holds the method's resolved training
    settings (profile sizes < the method's defaults < explicit YAML/CLI keys), not the dataclass
    defaults; ``train_overrides`` (how they were reached) is left out."""
    resolved = config_to_dict(config)
    resolved.pop("train_overrides", None)
    resolved["train"] = asdict(spec.train)
    return resolved


def load_pretrained(pretrain_dir: Path) -> Method:
    """Rebuild a pretrained method from its cache folder (``<cache>/pretrain/<name>-<key>``)."""
    from astrobench.registry import METHODS

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


def write_final(model: Method, final: Path, meta: dict[str, Any]) -> None:
    import json

    with atomic_directory(final) as tmp:
        checkpoints.save_weights(model, tmp / checkpoints.WEIGHTS)
        (tmp / checkpoints.META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def draw_budget(index: np.ndarray, budget: int | None, seed: int) -> np.ndarray:
    """``budget`` rows of ``index`` drawn with ``seed`` (all of them when budget is None or larger)."""
    if budget is None or budget >= len(index):
        return np.asarray(index)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(index, size=budget, replace=False))


_GIT_SHA: list[str | None] = []


def git_sha() -> str | None:
    if not _GIT_SHA:
        try:
            out = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(astrobench.__file__).parent,
                capture_output=True, text=True, timeout=5,
            )
            _GIT_SHA.append(out.stdout.strip() if out.returncode == 0 else None)
        except (OSError, subprocess.SubprocessError):
            _GIT_SHA.append(None)
    return _GIT_SHA[0]


def versions() -> dict[str, str]:
    import sklearn
    import timm

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class Reporter:
    """Progress bars and result lines on the console (rank 0 only); silent when disabled."""

    def __init__(self, enabled: bool = True, console: Any = None):
        self.enabled = enabled and distributed.rank() == 0
        self.console = console

    def status(self, text: str):
        import contextlib

        if not self.enabled:
            return contextlib.nullcontext()
        return self._console().status(text)

    def progress(self, label: str, total: int):
        import contextlib

        @contextlib.contextmanager
        def bar():
            if not self.enabled:
                yield lambda done, logs: None
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            with Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[logs]}"),
                console=self._console(), transient=False,
            ) as progress:
                task_id = progress.add_task(label, total=total, logs="")

                def advance(done: int, logs: dict[str, float]) -> None:
                    text = "  ".join(f"{k}={v:.3g}" for k, v in logs.items())
                    progress.update(task_id, completed=done, logs=text)

                yield advance

        return bar()

    def result(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        main = record["main_score"]
        score = record["scores"].get(main)
        budget = "all" if record["label_budget"] is None else record["label_budget"]
        self._console().print(
            f"[green]✓[/] {record['method']} seed {record['seed']} · {record['task']} / {record['protocol']} "
            f"(labels {budget}): {main} = {score:.4g}"
        )

    def _console(self):
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True)
        return self.console
