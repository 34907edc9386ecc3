"""Checkpoints: weights as safetensors, training state (optimizer, scheduler, RNG, step) beside.

Each checkpoint is a folder written under a temporary name and renamed into place, so a folder
with its final name is complete by construction; a kill during a write leaves only a temporary
folder that the next run deletes. ``torch.load`` only ever runs with ``weights_only=True``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from astrobench.fsutil import atomic_directory

WEIGHTS = "model.safetensors"
STATE = "state.pt"
META = "meta.json"
_STEP_DIR = re.compile(r"^step-(\d{9})$")


def save_weights(module: torch.nn.Module, path: Path) -> None:
    # clone: safetensors refuses tensors that share memory (tied weights, views)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
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
    """Delete folders of checkpoint writes that were killed (their names start with a dot)."""
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            if p.name.startswith(".step-") and ".tmp-" in p.name:
                shutil.rmtree(p, ignore_errors=True)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE, map_location="cpu", weights_only=True)


def read_meta(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / META).read_text())
