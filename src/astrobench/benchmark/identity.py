"""What code produced an artefact: every cache key and every result identity includes it.

A registered class (method, task, dataset source, augmentation; built-in or plugin) is identified
by ``{"target": "module:Class", "version": ..., "source_sha256": ...}``:

- ``version``: the class attribute (a string; the base classes default to ``"1"``). Bump it when a
  change *outside* the class's own module changes what it computes (a helper module it imports).
- ``source_sha256``: the sha256 of the source files of the modules that define the class and its
  base classes from the same package or from astrobench (so a plugin's module and
  ``astrobench/methods/base.py`` for a method; torch's ``nn.Module`` is left out). Any edit of
  those files, even a comment, changes every key that includes it: a stale checkpoint, embedding
  or result is never reused after the code that made it changed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
from typing import Any

DEFAULT_VERSION = "1"


def code_identity(cls: type) -> dict[str, Any]:
    """``target``, ``version`` and ``source_sha256`` of a registered class."""
    if not inspect.isclass(cls):
        cls = type(cls)
    return {
        "target": f"{cls.__module__}:{cls.__qualname__}",
        "version": str(getattr(cls, "version", DEFAULT_VERSION)),
        "source_sha256": source_hash(cls),
    }


def source_hash(cls: type) -> str:
    """sha256 over the source files of ``cls``'s module and of its bases' modules (same package or astrobench)."""
    top = cls.__module__.partition(".")[0]
    modules: list[str] = []
    for base in cls.__mro__:
        name = base.__module__
        if name.partition(".")[0] in (top, "astrobench") and name not in modules:
            modules.append(name)
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode() + b"\0" + _module_source(name, cls).encode() + b"\0")
    return digest.hexdigest()[:16]


def _module_source(name: str, cls: type) -> str:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path and os.path.isfile(path) and path.endswith(".py"):
        stat = os.stat(path)
        return _file_hash(path, stat.st_mtime_ns, stat.st_size)
    try:  # a class from a notebook or an exec'd string: its own source is all there is
        return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()
    except (OSError, TypeError) as exc:
        raise RuntimeError(
            f"cannot read the source of {cls.__module__}:{cls.__qualname__} ({exc}); define it in a .py file "
            "(a plugin module or --plugin file.py) so that cached results know which code made them"
        ) from exc


@functools.lru_cache(maxsize=256)
def _file_hash(path: str, mtime_ns: int, size: int) -> str:
    # keyed by (mtime, size) too: a file edited while this process runs is hashed again
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def method_code(method_cls: type, augmentation_codes: list[str]) -> dict[str, Any]:
    """The code identity of a method and of the augmentations its views use."""
    from astrobench.registry import AUGMENTATIONS

    return {
        "method": code_identity(method_cls),
        "augmentations": {code: code_identity(AUGMENTATIONS.get(code)) for code in augmentation_codes},
    }
