"""What `astrobench ls --details` and `ls labels` say about a plugin: its docstring's first line,
and for a task the labels it needs, its metrics (with their better direction) and protocols.
Importing the plugins is needed for this (so torch), which plain `astrobench ls` avoids."""

from __future__ import annotations

import inspect
from typing import Any

from astrobench.registry import TASKS


SHOWN_METRICS = 6


def summary_line(obj: Any) -> str:
    """The first line of the class's own docstring (not an inherited one), else of its module's."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else inspect.getdoc(obj)
    doc = inspect.cleandoc(own) if own else inspect.getdoc(inspect.getmodule(obj)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no description)"


def describe(kind: str, obj: Any) -> list[str]:
    """Lines under a plugin's name in `ls --details`."""
    lines = [summary_line(obj)]
    if kind == "tasks":
        task = _default_instance(obj)
        any_label = task is None and _takes_label_option(obj)
        if any_label:  # a generic task: describe it as it runs, on a label the user names
            task = _instance_or_none(obj, label=LABEL_PLACEHOLDER)
        source = task if task is not None else obj
        named = [f"{m} {'↑' if hib else '↓'}" for m, hib in source.higher_is_better.items()]
        metrics = ", ".join(named[:SHOWN_METRICS]) + (f", +{len(named) - SHOWN_METRICS} more" if len(named) > SHOWN_METRICS else "")
        protocols = task.protocols if task is not None else getattr(obj, "default_protocols", ())
        labels = ("any column you name: --task-option label=NAME" if any_label
                  else ", ".join(source.required_labels) or "(none)")
        lines += [f"labels: {labels}",
                  f"main score: {obj.main_score}; metrics: {metrics}",
                  f"protocols: {', '.join(protocols)} (default: {', '.join(obj.default_protocols)})"]
    return lines


def tasks_by_label() -> dict[str, list[str]]:
    """label -> the registered tasks (with default options) that need it."""
    users: dict[str, list[str]] = {}
    for name in TASKS.names():
        task = _default_instance(TASKS.get(name))
        for label in getattr(task if task is not None else TASKS.get(name), "required_labels", ()):
            users.setdefault(label, []).append(name)
    return users


LABEL_PLACEHOLDER = "NAME"


def _default_instance(cls: Any) -> Any:
    # a task's labels and protocols may depend on its options: describe its defaults; a task that
    # needs options is described from its class
    return _instance_or_none(cls)


def _instance_or_none(cls: Any, **options: Any) -> Any:
    try:
        return cls(**options)
    except Exception:  # noqa: BLE001 - any refusal (a required option, a check) means "needs options"
        return None


def _takes_label_option(cls: Any) -> bool:
    try:
        return "label" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
