"""Checkpoints: weights as safetensors, training state (optimizer, scheduler, RNG, step) beside.

Each checkpoint is a folder written under a temporary name and renamed into place, so a folder
with its final name is complete by construction; a kill during a write leaves only a temporary
folder that the next run deletes (unless its writer, named in it, is still alive). A checkpoint
that cannot be read is an error naming the file and the remedy; resuming skips it with a warning
and takes the previous complete one. ``torch.load`` only ever runs with ``weights_only=True``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from astrobench.fsutil import atomic_directory, temp_owner_alive

WEIGHTS = "model.safetensors"
STATE = "state.pt"
META = "meta.json"
_STEP_DIR = re.compile(r"^step-(\d{9})$")


class CheckpointError(RuntimeError):
    """A cached checkpoint file cannot be read; the message names the file and what to do."""


def _damaged(path: Path, exc: BaseException) -> CheckpointError:
    reason = (str(exc).strip().splitlines() or [""])[0]
    if "weights_only" in str(exc):  # torch advises weights_only=False, which would run code from the file
        reason = "torch cannot read it as plain tensors: damaged, or not written by astrobench"
    return CheckpointError(f"{path}: damaged or unreadable checkpoint file ({type(exc).__name__}: {reason}); "
                           f"delete {path.parent} and run again (it is recomputed)")


def save_weights(module: torch.nn.Module, path: Path) -> None:
    # clone: safetensors refuses tensors that share memory (tied weights, views)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own errors ("header too large", ...) naming no file
        raise _damaged(Path(path), exc) from exc
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    training_state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"step-{step:09d}"
    with atomic_directory(final) as tmp:
        save_weights(model, tmp / WEIGHTS)
        torch.save({**training_state, "step": step, "rng": rng_state()}, tmp / STATE)
        (tmp / META).write_text(json.dumps({**meta, "step": step}, indent=2, sort_keys=True, default=str))
    for old in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / META).is_file()]
    return sorted(found, key=lambda p: p.name)


def clean_partial(run_dir: Path) -> None:
    """Delete temporary folders of checkpoint writes whose writer is dead (a killed run); a live
    process's folder (its host and pid are in the name) is left alone."""
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            if p.name.startswith((".step-", ".final.")) and ".tmp-" in p.name and not temp_owner_alive(p.name):
                shutil.rmtree(p, ignore_errors=True)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's message advises weights_only=False: never here
        raise _damaged(path, exc) from exc


def read_meta(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _damaged(path, exc) from exc
    if not isinstance(meta, dict):
        raise _damaged(path, ValueError(f"expected a JSON object, got {type(meta).__name__}"))
    return meta


def resume(run_dir: Path, model: torch.nn.Module) -> tuple[Path, dict[str, Any]] | None:
    """Load the newest readable complete checkpoint into ``model``; (its folder, its training state).

    A damaged checkpoint is skipped with a warning naming it, and the previous one is tried."""
    found = complete_checkpoints(run_dir)
    # weights read before a damaged training state must not leak into a run from step 0
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()} if found else None
    for checkpoint in reversed(found):
        try:
            load_weights(model, checkpoint / WEIGHTS)
            state = load_training_state(checkpoint)
            for key in ("optimizer", "scheduler", "rng", "step"):
                if key not in state:
                    raise _damaged(checkpoint / STATE, KeyError(f"no {key!r} entry"))
            return checkpoint, state
        except CheckpointError as exc:
            earlier = [c for c in found if c.name < checkpoint.name]
            fallback = f"resuming from {earlier[-1].name}" if earlier else "no earlier checkpoint: training from step 0"
            warnings.warn(f"{exc}; {fallback}", RuntimeWarning, stacklevel=2)
    if initial is not None:
        model.load_state_dict(initial)
    return None
