"""``astrobench leaderboard``, ``compare`` and ``report``: the commands that read the results store."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from astrobench.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, print_table


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from astrobench.benchmark.leaderboard import render
    from astrobench.benchmark.store import load_results

    results_dir = Path(args.results_dir or os.environ.get("ASTROBENCH_RESULTS", "results"))
    if not results_dir.is_dir():
        raise UsageError(f"results folder {str(results_dir)!r} does not exist (run `astrobench run` first)")
    records = load_results(results_dir)  # damaged files: a warning each, named, then skipped
    try:
        out = render(records, args.format, all_metrics=args.all_metrics, task=args.task, dataset=args.dataset,
                     profile=args.profile, protocol=args.protocol, method=args.method, label_budget=args.labels,
                     tag=args.tag, view=args.view)
    except LookupError as exc:
        raise UsageError(str(exc)) from exc
    print_table(out, args.format, args.out)
    if records.damaged:
        print(f"astrobench: error: {len(records.damaged)} damaged result file(s) left out (named above)",
              file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from astrobench.benchmark.compare import SelectionError, compare, render_comparison

    results_dir = Path(args.results_dir or os.environ.get("ASTROBENCH_RESULTS", "results"))
    if not results_dir.is_dir():
        raise UsageError(f"results folder {str(results_dir)!r} does not exist (run `astrobench run` first)")
    try:
        result = compare(results_dir, args.a, args.b, metric=args.metric, alpha=args.alpha, task=args.task,
                         protocol=args.protocol, label_budget=args.labels, dataset=args.dataset, profile=args.profile)
    except SelectionError as exc:
        raise UsageError(str(exc)) from exc
    # NothingToCompare (no shared evaluation or seed) falls through to main: exit 1
    print_table(render_comparison(result, args.format), args.format, args.out)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from astrobench.benchmark.report import build_report
    from astrobench.registry import load_plugin

    results_dir = Path(args.results_dir or os.environ.get("ASTROBENCH_RESULTS", "results"))
    if not results_dir.is_dir():
        raise UsageError(f"results folder {str(results_dir)!r} does not exist (run `astrobench run` first)")
    for plugin in args.plugin:
        load_plugin(plugin)
    log = None if args.quiet else (lambda text: print(text, file=sys.stderr))
    try:
        index = build_report(results_dir, Path(args.out), Path(args.cache_dir) if args.cache_dir else None,
                             log=log, task=args.task, dataset=args.dataset, profile=args.profile,
                             protocol=args.protocol, method=args.method, label_budget=args.labels, tag=args.tag)
    except LookupError as exc:
        raise UsageError(str(exc)) from exc
    print(f"wrote {index}")
    return EXIT_OK
