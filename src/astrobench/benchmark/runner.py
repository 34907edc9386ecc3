"""The runner: pretrain -> embed -> evaluate -> store, every stage cached by a content hash.

A stage's key hashes everything that determines its output (method config, views, training
settings, data fingerprint, seed, stage code version), so a second task on an already pretrained
model reuses the checkpoint and the embeddings, and any change of config or data recomputes.
The pieces live beside it: ``build`` (datasets, methods, models, tasks from names), ``pretrained``
(the checkpoint artefact), ``embed``, ``provenance`` and ``console``.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from astrobench import distributed
from astrobench.augment.normalize import Normalizer
from astrobench.benchmark.build import (
    MethodSpec, build_dataset, build_model, build_task, fingerprint, resolve_device, resolve_method, views_for_data,
)
from astrobench.benchmark.config import ConfigError, RunConfig
from astrobench.benchmark.console import Reporter
from astrobench.benchmark.embed import cached_embeddings
from astrobench.benchmark.flags import result_flags
from astrobench.benchmark.identity import code_identity
from astrobench.benchmark.preflight import (
    check_label_budgets, check_output_folders, result_identity, stored_identity,
)
from astrobench.benchmark.model_card import card_of_model
from astrobench.benchmark.pretrained import pretrained_model
from astrobench.benchmark.provenance import provenance, resolved_run_config
from astrobench.benchmark.store import result_path, stable_hash, write_result
from astrobench.datasets.checks import enforce, run_checks
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.datasets.splits import ALL, resolve_fractions, split_indices, train_test_union
from astrobench.registry import DATASETS, load_plugin
from astrobench.tasks.base import EmbeddingInputs, FinetuneInputs, Task, score_bootstrap_std
from astrobench.tasks.probes import needs_model

# Bump a stage's version when its code changes what it produces: old cache entries stop matching.
PRETRAIN_VERSION = "5"  # 2: the supervised baseline trains on Task.training_rows; 3-4: CPU kernel changes; 5: one torch implementation of the augmentations on every device (numba kernels gone), noise and blur on every plane, parameters drawn on the batch's device
EMBED_VERSION = "1"


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
        self.tasks: dict[str, Task] = {name: build_task(name, cfg.task_options.get(name, {})) for name in cfg.tasks}
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
        distributed.init_from_environment()
        with distributed.leaving_group_after():
            return self._run()

    def _run(self) -> RunSummary:
        self.plan()
        cfg = self.config
        check_output_folders(self.results_dir, self.cache_dir)
        # rank 0 loads first: a dataset generated into the cache is written once, then read by all
        if distributed.rank() != 0:
            distributed.barrier()
        data, data_options = self._dataset(cfg.dataset, cfg.dataset_options)
        if cfg.eval_dataset:
            eval_data, eval_options = self._dataset(cfg.eval_dataset, cfg.eval_dataset_options)
        else:
            eval_data, eval_options = data, data_options
        # an explicit test file: the whole pretraining file trains (it is scored nowhere), and the
        # probe is fitted on every object of the train side and scored on every object of the test file
        fractions = resolve_fractions(cfg.splits if cfg.splits is not None else (ALL if cfg.test_dataset else None))
        self.splits = split_indices(data, fractions)
        self.eval_splits = self.splits if eval_data is data else split_indices(eval_data, fractions)
        if cfg.test_dataset:
            train_side, train_options = (self._dataset(cfg.train_dataset, cfg.train_dataset_options)
                                         if cfg.train_dataset else (eval_data, eval_options))
            test_data, test_options = self._dataset(cfg.test_dataset, cfg.test_dataset_options)
            eval_data, self.eval_splits = train_test_union(train_side, test_data)
            eval_options = {"train": train_options, "test": test_options}
        if distributed.rank() == 0:
            distributed.barrier()
        for task in self.tasks.values():
            task.check_data(eval_data)
        self.data, self.eval_data = data, eval_data
        self.data_hash, self.eval_hash = fingerprint(data), fingerprint(eval_data)
        self.data_options, self.eval_options = data_options, eval_options
        if not self.splits["train"].size:
            raise DataError(f"{data.origin}: the train split is empty (splits {fractions}); nothing to pretrain on")
        self.normalizer = Normalizer.fit(data.subset(self.splits["train"]))
        self.normalizer.check_bands(eval_data.bands, eval_data.origin)
        check_label_budgets(self.tasks, list(cfg.label_budgets), eval_data, self.eval_splits)
        # the code of the data sources: part of every cache key and result identity
        evaluated = [n for n in dict.fromkeys([cfg.eval_dataset or cfg.dataset, cfg.train_dataset, cfg.test_dataset]) if n]
        self.dataset_code = {"pretrain": code_identity(DATASETS.get(cfg.dataset)),
                             "eval": {name: code_identity(DATASETS.get(name)) for name in evaluated}}
        self._check_before_work()

        summary = RunSummary()
        jobs_by_variant = self._jobs(summary)
        for (spec, seed, supervised_task, budget), jobs in jobs_by_variant.items():
            self._run_variant(spec, seed, supervised_task, budget, jobs, summary)
        return summary

    def _check_before_work(self) -> None:
        """Before any training: the data checks (printed; ``strict`` fails on a warning) and every
        method's views against the data (``views_for_data``: RGB drops default flux-only views
        with a note, refuses chosen ones) and its settings against the training set's size
        (``Method.check_training_set``: MoCo's queue)."""
        log = (lambda text: print(f"astrobench: {text}", file=sys.stderr)) if distributed.rank() == 0 else None
        findings = run_checks(self.eval_data, self.eval_splits)
        if self.data is not self.eval_data:
            findings = run_checks(self.data) + findings
        enforce(findings, self.config.strict, log)
        specs = []
        for spec in self.specs:
            spec, note = views_for_data(spec, self.data.image_is_flux, explicit=spec.name in self.config.views)
            if note and log:
                log(f"note: {note}")
            if spec.cls.trainable:
                try:
                    note = spec.cls.check_training_set(spec.options, len(self.splits["train"]), spec.train.batch_size)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
                if note and log:
                    log(f"note: {note}")
            specs.append(spec)
        self.specs = specs

    def _dataset(self, name: str, options: dict[str, Any]) -> tuple[SurveyData, dict[str, Any]]:
        with self.reporter.progress_on_first_report(f"generating dataset {name!r}") as report:
            return build_dataset(name, options, self.config.profile, self.cache_dir, progress=report)

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
                            # a result made by other code (an edited loss, task or loader) is stale: re-run
                            current = stored_identity(path) == self._result_identity(spec, task)
                            if path.exists() and (current or cfg.overwrite != "only-missing"):
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

    def _result_identity(self, spec: MethodSpec, task: Task) -> str:
        return result_identity(spec.code(), task, self.dataset_code, self.eval_hash)

    @property
    def dataset_name(self) -> str:
        cfg = self.config
        if cfg.test_dataset:
            return f"{cfg.dataset}-to-{cfg.train_dataset or cfg.eval_dataset or cfg.dataset}+{cfg.test_dataset}"
        return cfg.dataset if not cfg.eval_dataset else f"{cfg.dataset}-to-{cfg.eval_dataset}"

    @property
    def dataset_label(self) -> str:
        """Name plus data fingerprint: two HDF5 files (or two simulator settings) never share results."""
        cfg = self.config
        label = f"{cfg.dataset}-{self.data_hash[:8]}"
        if cfg.test_dataset:
            return f"{label}-to-{cfg.test_dataset}-{self.eval_hash[:8]}"
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
            "code": spec.code(), "dataset_code": self.dataset_code,
        })
        run_dir = self.cache_dir / "pretrain" / f"{spec.name}-{pretrain_key}"
        model = build_model(spec, data, self.normalizer, seed, extra)
        stats = pretrained_model(model, spec, seed, data, train_index, targets, run_dir, pretrain_key, self.device,
                                 self.normalizer, self.reporter.progress)

        embed_key = stable_hash({"stage": "embed", "version": EMBED_VERSION, "model": pretrain_key, "data": self.eval_hash,
                                 "dataset_code": self.dataset_code})
        embeddings_file = f"embeddings/{embed_key}.npy"
        label = f"{spec.name} seed {seed}"
        with self.reporter.progress(f"embed {label}", len(self.eval_data)) as advance:
            embeddings = cached_embeddings(model, self.eval_data, self.device, self.cache_dir / embeddings_file, label,
                                           progress=lambda done, total: advance(done, {}))
        # artefact paths, relative to the cache folder: the report finds them through the record
        artifacts = {"pretrain_dir": str(run_dir.relative_to(self.cache_dir)), "embeddings_file": embeddings_file}
        card = card_of_model(model, spec.options.get("backbone"), embeddings.shape[1], stats)
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
            record = self._record(spec, seed, job, result, stats, pretrain_key, artifacts, time.perf_counter() - t0)
            record["model"] = card  # backbone, parameters, embedding size, images seen: the leaderboard's model card
            write_result(job.path, record, result.predictions)
            summary.written.append(job.path)
            self.reporter.result(record, job.path)

    def _record(self, spec: MethodSpec, seed: int, job: Job, result: Any, stats: dict[str, Any],
                pretrain_key: str, artifacts: dict[str, str], eval_time: float) -> dict[str, Any]:
        cfg = self.config
        task = job.task
        return {
            "kind": "astrobench-result",
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
            # the code that made it (versions + source hashes), and the hash a re-run compares
            "code": {"method": spec.code(), "task": code_identity(type(task)), "datasets": self.dataset_code},
            "result_identity": self._result_identity(spec, task),
            "protocol": job.protocol,
            "label_budget": job.label_budget,
            "seed": seed,
            "tag": cfg.tag,
            "scores": {k: float(v) for k, v in result.scores.items()},
            # "constant_predictions" / "loss_not_decreasing" (benchmark/flags.py); the leaderboard shows them
            "flags": result_flags(result.predictions, stats.get("loss_curve")),
            "bootstrap_std": score_bootstrap_std(task, result),  # std over resampled test objects
            "main_score": task.main_score,
            "higher_is_better": dict(task.higher_is_better),
            "details": result.details,
            "pretrain": stats,
            "artifacts": artifacts,  # relative to the cache folder
            "cache_dir": str(self.cache_dir),
            "eval_wall_time_s": eval_time,
            "resolved_config": resolved_run_config(cfg, spec),
            **provenance(self.device),
        }

