"""Checks a run makes before its expensive work: folders it will write, label budgets the data can
fill, and whether a stored result still matches the code and settings that would produce it now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from astrobench.benchmark.config import ConfigError
from astrobench.benchmark.identity import code_identity
from astrobench.benchmark.store import stable_hash
from astrobench.datasets.schema import SurveyData
from astrobench.fsutil import check_writable
from astrobench.tasks.base import Task


def check_output_folders(results_dir: Path, cache_dir: Path) -> None:
    """Both folders writable now: a read-only or full disk fails in seconds, not after the training."""
    check_writable(results_dir, "results folder", "--results-dir")
    check_writable(cache_dir, "cache folder", "--cache-dir")


def check_label_budgets(tasks: dict[str, Task], budgets: list[int | None], data: SurveyData,
                        splits: dict[str, np.ndarray]) -> None:
    """A budget above the labelled training objects would silently train on fewer: an error instead."""
    wanted = sorted({b for b in budgets if b is not None})
    if not wanted:
        return
    for name, task in tasks.items():
        if not task.supports_label_budget:
            continue
        available = labelled_training_objects(task, data, splits, wanted[-1])
        if wanted[-1] > available:
            raise ConfigError(
                f"label budget {wanted[-1]} is larger than the {available} labelled training objects task "
                f"{name!r} can draw from {data.origin}; use at most {available}, or 'all'"
            )


def labelled_training_objects(task: Task, data: SurveyData, splits: dict[str, np.ndarray], budget: int) -> int:
    """How many labelled training objects the task's draw of ``budget`` gets (a balanced draw is
    capped by its rarest class); tasks without a supervised target count rows with every label."""
    if type(task).training_rows is not Task.training_rows or type(task).supervised_targets is not Task.supervised_targets:
        return len(task.training_rows(data.labels, splits, 0, budget))
    train = np.asarray(splits["train"])
    present = np.ones(len(train), dtype=bool)
    for label in task.required_labels:
        values = np.asarray(data.labels[label])[train]
        if values.dtype.kind == "f":
            missing = np.isnan(values)
        elif values.dtype.kind in "iu":
            missing = values == -1
        else:
            missing = values == ""
        present &= ~missing.reshape(len(train), -1).all(axis=1)
    return int(present.sum())


def result_identity(method_code: dict[str, Any], task: Task, dataset_code: dict[str, Any], eval_hash: str) -> str:
    """What a stored result must match to be reused: the code of its method, augmentations, task
    and datasets, the task's version and parameters, and the evaluated data. (The method's
    configuration, the data's fingerprint, protocol, budget and seed are in its file name.)"""
    return stable_hash({
        "method_code": method_code, "task_code": code_identity(type(task)), "task_version": task.version,
        "task_params": task.params(), "dataset_code": dataset_code, "eval_data": eval_hash,
    })


def stored_identity(path: Path) -> str | None:
    """The ``result_identity`` a stored result was written with (None: unreadable or older than it)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record.get("result_identity") if isinstance(record, dict) else None
