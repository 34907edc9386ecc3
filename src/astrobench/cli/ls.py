"""``astrobench ls``: registered names, or the labels a dataset holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from astrobench.cli.common import EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    from astrobench.registry import REGISTRIES, load_plugin

    for plugin in args.plugin:
        load_plugin(plugin)
    if args.kind == "labels":
        return _ls_labels(args)
    registry = REGISTRIES[args.kind]
    entries = registry.entries()
    if not entries:
        print(f"no {args.kind} registered")
        return EXIT_OK
    width = max(len(e.name) for e in entries)
    for e in entries:
        print(f"{e.name:<{width}}  {e.target}  ({e.source})")
        if args.details:
            from astrobench.plugin_info import describe

            for line in describe(args.kind, registry.get(e.name)):
                print(f"{'':<{width}}  {line}")
    return EXIT_OK


def _ls_labels(args: argparse.Namespace) -> int:
    """The labels of a dataset (its ``--profile`` size, cached like a run's) and the tasks that need them."""
    from astrobench.benchmark.build import build_dataset
    from astrobench.benchmark.config import RunConfig
    from astrobench.datasets.inspect import inspect_source
    from astrobench.plugin_info import tasks_by_label

    cache_dir = Path(args.cache_dir or RunConfig().cache_dir)
    data, _ = build_dataset(args.dataset, dict(args.dataset_option), args.profile, cache_dir)
    info = inspect_source(data)
    users = tasks_by_label()
    print(f"{args.dataset}: {info['count']} objects at profile {args.profile}; labels (missing = NaN / -1):")
    width = max((len(n) for n in info["labels"]), default=0)
    for name, summary in info["labels"].items():
        values = f", {summary['min']:.4g} to {summary['max']:.4g}" if "min" in summary else ""
        used = f"; used by {', '.join(users[name])}" if users.get(name) else ""
        print(f"  {name:<{width}}  {summary['dtype']}, {summary['coverage']:.0%} present{values}{used}")
    return EXIT_OK
