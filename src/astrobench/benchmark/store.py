"""Results store: one JSON per (method config, dataset, task, protocol, label budget, seed).

Predictions are written first (Parquet, beside the JSON), then the JSON: the JSON's presence is
what marks a result as complete. Every write goes to a temporary file in the same folder and is
renamed into place, so a killed run leaves no partial result and two runs writing into the same
folder never corrupt each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

from astrobench.fsutil import atomic_write_bytes

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


def _slug(text: str) -> str:
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
    name = f"{_slug(method)}__{config_hash}__{_slug(protocol)}__labels-{budget}__seed-{seed}"
    if tag:
        name += f"__{_slug(tag)}"
    return Path(results_dir) / _slug(dataset) / _slug(profile) / _slug(task) / (name + RESULT_SUFFIX)


def write_result(path: Path, record: dict[str, Any], predictions: Any | None) -> Path:
    """Write predictions (if any) then the record, each atomically."""
    if predictions is not None:
        import io

        buffer = io.BytesIO()
        predictions.to_parquet(buffer, index=False)
        payload = buffer.getvalue()
        pred_path = path.with_name(path.name[: -len(RESULT_SUFFIX)] + PREDICTIONS_SUFFIX)
        atomic_write_bytes(pred_path, payload)
        record = {
            **record,
            "predictions_file": pred_path.name,
            "predictions_sha256": hashlib.sha256(payload).hexdigest(),
        }
    atomic_write_json(path, record)
    return path


def iter_result_files(results_dir: Path) -> Iterator[Path]:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return
    for path in sorted(results_dir.rglob(f"*{RESULT_SUFFIX}")):
        if path.name.startswith("."):  # temporary files of writes in progress
            continue
        yield path


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every complete result under ``results_dir``; a file that is not a result is an error naming it."""
    records = []
    for path in iter_result_files(results_dir):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a valid result file ({exc})") from exc
        if not isinstance(record, dict) or record.get("kind") != "astrobench-result":
            continue  # other JSON living in the folder (reference-leaderboard notes, ...)
        record["_path"] = str(path)
        records.append(record)
    return records
