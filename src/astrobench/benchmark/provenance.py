"""Where a result came from: code version, git SHA, library versions, device, world size, time."""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import astrobench
from astrobench import distributed
from astrobench.benchmark.config import RunConfig, config_to_dict

if TYPE_CHECKING:
    from astrobench.benchmark.build import MethodSpec

_GIT_SHA: list[str | None] = []


def provenance(device: torch.device) -> dict[str, Any]:
    """The provenance fields of every result record."""
    return {
        "astrobench_version": astrobench.__version__,
        "git_sha": git_sha(),
        "versions": versions(),
        "device": device_name(device),
        "world_size": distributed.world_size(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def git_sha() -> str | None:
    """HEAD of the checkout astrobench runs from (None outside a git checkout); asked once per process."""
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


def resolved_run_config(config: RunConfig, spec: "MethodSpec") -> dict[str, Any]:
    """The run configuration as this method ran it: ``train`` holds the method's resolved training
    settings (profile sizes < the method's defaults < explicit YAML/CLI keys), not the dataclass
    defaults; ``train_overrides`` (how they were reached) is left out."""
    resolved = config_to_dict(config)
    resolved.pop("train_overrides", None)
    resolved["train"] = asdict(spec.train)
    return resolved
