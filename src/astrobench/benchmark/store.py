"""Results store: one JSON per (method config, dataset, task, protocol, label budget, seed).

Predictions are written first (Parquet, beside the JSON), then the JSON: the JSON's presence is
what marks a result as complete. Every write goes to a temporary file in the same folder and is
renamed into place, so a killed run leaves no partial result and two runs writing into the same
folder never corrupt each other; a write that fails (a full disk) removes what it staged.

Reading never runs code: a result is JSON, checked field by field. A damaged file is skipped with
a warning naming it (``Results.damaged`` lists them: the CLI exits 1), the others still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

from astrobench.fsutil import atomic_write_bytes, stage_bytes

RESULT_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".predictions.parquet"


def stable_hash(value: Any, length: int = 16) -> str:
    """sha256 of a canonical JSON rendering (sorted keys): equal configs give equal hashes."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result JSON")


def slug(text: str) -> str:
    """``text`` as a safe file or folder name (runs of other characters become one dash)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def result_path(
    results_dir: Path,
    *,
    dataset: str,
    profile: str,
    task: str,
    method: str,
    config_hash: str,
    protocol: str,
    label_budget: int | None,
    seed: int,
    tag: str | None = None,
) -> Path:
    budget = "all" if label_budget is None else str(label_budget)
    name = f"{slug(method)}__{config_hash}__{slug(protocol)}__labels-{budget}__seed-{seed}"
    if tag:
        name += f"__{slug(tag)}"
    return Path(results_dir) / slug(dataset) / slug(profile) / slug(task) / (name + RESULT_SUFFIX)


def write_result(path: Path, record: dict[str, Any], predictions: Any | None) -> Path:
    """Write predictions (if any) and the record: both are staged under temporary names first (a
    failure there, e.g. a full disk, removes both and leaves the folder as it was), then renamed,
    predictions before the JSON that marks the result complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        if predictions is not None:
            import io

            buffer = io.BytesIO()
            predictions.to_parquet(buffer, index=False)
            payload = buffer.getvalue()
            pred_path = path.with_name(path.name[: -len(RESULT_SUFFIX)] + PREDICTIONS_SUFFIX)
            staged.append((stage_bytes(pred_path, payload), pred_path))
            record = {
                **record,
                "predictions_file": pred_path.name,
                "predictions_sha256": hashlib.sha256(payload).hexdigest(),
            }
        text = json.dumps(record, indent=2, sort_keys=True, default=_json_default) + "\n"
        staged.append((stage_bytes(path, text.encode()), path))
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    return path


def iter_result_files(results_dir: Path) -> Iterator[Path]:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return
    for path in sorted(results_dir.rglob(f"*{RESULT_SUFFIX}")):
        if path.name.startswith("."):  # temporary files of writes in progress
            continue
        yield path


class DamagedResultWarning(UserWarning):
    """A result file that cannot be read; it is skipped."""


class Results(list):
    """The complete results of a folder; ``damaged`` holds (path, why) of each file skipped."""

    def __init__(self, records: list[dict[str, Any]], damaged: list[tuple[Path, str]]):
        super().__init__(records)
        self.damaged = damaged


# field -> the types a readable result holds there (what the leaderboard, compare and report read)
_RESULT_FIELDS: dict[str, tuple[type, ...]] = {
    "method": (str,), "config_hash": (str,), "dataset": (str,), "profile": (str,), "task": (str,),
    "protocol": (str,), "seed": (int,), "label_budget": (int, type(None)), "scores": (dict,),
    "main_score": (str,), "higher_is_better": (dict,),
}


def result_problem(record: Any) -> str | None:
    """Why a parsed ``astrobench-result`` cannot be used (a missing or mistyped field), or None."""
    for key, types in _RESULT_FIELDS.items():
        if key not in record:
            return f"field {key!r} is missing"
        value = record[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"field {key!r} holds {value!r}, not {' or '.join(t.__name__ for t in types)}"
    for metric, value in record["scores"].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and math.isinf(value)):
            return f"scores.{metric} holds {value!r}, not a number"
    return None


def load_results(results_dir: Path) -> Results:
    """Every complete result under ``results_dir``. A file that cannot be read as a result is skipped
    with a warning naming it and the reason (``.damaged``); other JSON in the folder is not a result."""
    records, damaged = [], []
    for path in iter_result_files(results_dir):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            damaged.append((path, f"not valid JSON ({exc})"))
            continue
        if not isinstance(record, dict) or record.get("kind") != "astrobench-result":
            continue  # other JSON living in the folder (reference-leaderboard notes, ...)
        problem = result_problem(record)
        if problem is not None:
            damaged.append((path, problem))
            continue
        record["_path"] = str(path)
        records.append(record)
    for path, why in damaged:
        warnings.warn(f"{path}: damaged result file, skipped: {why}; delete it (or re-run its evaluation "
                      "with --overwrite always)", DamagedResultWarning, stacklevel=2)
    return Results(records, damaged)
