"""One generic registry for every kind of plugin: methods, tasks, datasets, augmentations, probes.

Entries are either loaded objects or lazy ``"module:attr"`` strings, so listing names
(``astrobench ls``) never imports torch. Sources of entries, in order of discovery:

1. installed distributions through entry-point groups ``astrobench.<kind>``: astrobench's own
   built-ins (declared in its ``pyproject.toml``) and every plugin package alike,
2. ``--plugin module.name`` or ``--plugin path/to/file.py``,
3. the ``@register_method("name")``-style decorators that run when a module is imported.

A name registered twice from two different places is an error naming both. Registering the
same object again (a plugin imported in every DDP rank, a lazy entry resolving to the
decorated class) is a no-op, so loading is idempotent.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

KINDS = ("methods", "tasks", "datasets", "augmentations", "probes")


class RegistryError(LookupError):
    """A registry lookup or registration failed; the message says how to fix it."""


class UnknownNameError(RegistryError):
    """The requested name is not registered."""


class DuplicateNameError(RegistryError):
    """Two different objects claim the same name."""


@dataclass
class Entry:
    name: str
    target: str  # "module:attr" where the object lives
    source: str  # human-readable origin: "built-in", "entry point of dist X", "plugin file ..."
    obj: Any = None

    @property
    def loaded(self) -> bool:
        return self.obj is not None


def _target_of(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self.group = f"astrobench.{kind}"
        self._entries: dict[str, Entry] = {}
        self._entry_points_loaded = False

    # -- registration -------------------------------------------------------------------
    def add_lazy(self, name: str, target: str, source: str) -> None:
        """Declare ``name`` -> ``"module:attr"`` without importing it."""
        if ":" not in target:
            raise RegistryError(f"{self.kind} entry {name!r}: target {target!r} must be 'module:attr'")
        existing = self._entries.get(name)
        if existing is not None:
            if existing.target == target:
                return
            raise DuplicateNameError(
                f"{self.kind[:-1]} name {name!r} is registered twice: "
                f"{existing.target} ({existing.source}) and {target} ({source})"
            )
        self._entries[name] = Entry(name, target, source)

    def register(self, name: str, obj: Any, source: str | None = None) -> Any:
        target = _target_of(obj)
        source = source or f"module {obj.__module__}"
        existing = self._entries.get(name)
        if existing is not None:
            same = existing.obj is obj or (existing.obj is None and existing.target == target)
            # A module run as a script or re-imported from a file path gives a new object with the
            # same qualified name; treat it as the same registration.
            same = same or (existing.obj is not None and _target_of(existing.obj) == target)
            if not same:
                raise DuplicateNameError(
                    f"{self.kind[:-1]} name {name!r} is registered twice: "
                    f"{existing.target} ({existing.source}) and {target} ({source})"
                )
            existing.obj = obj
            return obj
        self._entries[name] = Entry(name, target, source, obj)
        return obj

    def decorator(self, name: str) -> Callable[[Any], Any]:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"register a {self.kind[:-1]} with a non-empty name, got {name!r}")

        def wrap(obj: Any) -> Any:
            self.register(name, obj)
            # the registered name travels with the class: results and errors use it
            if inspect.isclass(obj) and "registered_name" not in obj.__dict__:
                obj.registered_name = name
            return obj

        return wrap

    # -- discovery ----------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.name if dist is not None else "unknown distribution"
            self.add_lazy(ep.name, ep.value, f"entry point of {dist_name}")

    # -- lookup -------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._load_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def get(self, name: str) -> Any:
        self._load_entry_points()
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownNameError(self._unknown_message(name))
        if entry.obj is None:
            module_name, _, attr = entry.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise RegistryError(
                    f"{self.kind[:-1]} {name!r} ({entry.source}) could not be imported from "
                    f"{module_name!r}: {exc}"
                ) from exc
            obj: Any = module
            for part in attr.split("."):
                try:
                    obj = getattr(obj, part)
                except AttributeError as exc:
                    raise RegistryError(
                        f"{self.kind[:-1]} {name!r} ({entry.source}): {entry.target} does not exist"
                    ) from exc
            entry.obj = obj  # the decorator may already have set it during the import
        return entry.obj

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"unknown {self.kind[:-1]} {name!r}.{hint} "
            f"Known {self.kind}: {', '.join(known) if known else '(none)'}."
        )


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
METHODS = REGISTRIES["methods"]
TASKS = REGISTRIES["tasks"]
DATASETS = REGISTRIES["datasets"]
AUGMENTATIONS = REGISTRIES["augmentations"]
PROBES = REGISTRIES["probes"]

register_method = METHODS.decorator
register_task = TASKS.decorator
register_dataset = DATASETS.decorator
register_augmentation = AUGMENTATIONS.decorator
register_probe = PROBES.decorator

def _find_spec_safe(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_loaded_plugins: set[str] = set()


def load_plugin(spec: str) -> None:
    """Import a plugin given as a module name or a path to a ``.py`` file (idempotent)."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise RegistryError(f"plugin file {spec!r} does not exist")
        resolved = str(path.resolve())
        if resolved in _loaded_plugins:
            return
        # a name stable across processes (str hash() is salted per process): it is part of the
        # method's identity, so the same file must give the same cache keys in every run
        module_name = f"astrobench_plugin_{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"
        module_spec = importlib.util.spec_from_file_location(module_name, resolved)
        if module_spec is None or module_spec.loader is None:
            raise RegistryError(f"plugin file {spec!r} cannot be imported as Python")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception:
            del sys.modules[module_name]
            raise
        _loaded_plugins.add(resolved)
        return
    if spec in _loaded_plugins:
        return
    if not _find_spec_safe(spec):
        raise RegistryError(f"plugin {spec!r} is neither an importable module nor a .py file")
    importlib.import_module(spec)
    _loaded_plugins.add(spec)
