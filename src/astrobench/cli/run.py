"""``astrobench run`` and ``astrobench ablate``: the run configuration from the command line, and
the data-parallel launch under torchrun (``--devices``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from astrobench.cli.common import EXIT_FAILURE, EXIT_OK, UsageError, print_table


def _run_config(args: argparse.Namespace):
    from astrobench.benchmark.config import DEFAULT_METHODS, build_config, load_yaml

    yaml_values = load_yaml(args.config) if args.config else {}
    cli: dict[str, Any] = {}
    simple = {"method": "methods", "task": "tasks", "dataset": "dataset", "eval_dataset": "eval_dataset",
              "train_dataset": "train_dataset", "test_dataset": "test_dataset", "splits": "splits", "strict": "strict",
              "profile": "profile", "seeds": "seeds", "protocol": "protocols", "labels": "label_budgets",
              "results_dir": "results_dir", "cache_dir": "cache_dir", "overwrite": "overwrite",
              "device": "device", "tag": "tag"}
    for arg, key in simple.items():
        value = getattr(args, arg)
        if value is not None:
            cli[key] = value
    # the YAML and command-line layers are merged in one place: config.build_config
    if args.plugin:
        cli["plugins"] = list(args.plugin)
    methods = cli.get("methods") or yaml_values.get("methods") or list(DEFAULT_METHODS)
    tasks = cli.get("tasks") or yaml_values.get("tasks") or ["redshift"]
    if args.dataset_option:
        cli["dataset_options"] = dict(args.dataset_option)
    for side in ("eval", "train", "test"):
        if getattr(args, f"{side}_dataset_option"):
            key = f"{side}_dataset_options"
            cli[key] = dict(getattr(args, f"{side}_dataset_option"))
    method_options = _scoped_options(args.method_option, methods, yaml_values.get("method_options", {}), "method")
    if args.backbone:
        from astrobench.registry import METHODS, load_plugin
        import inspect

        for plugin in [*yaml_values.get("plugins", []), *args.plugin]:
            load_plugin(plugin)
        takers = [m for m in methods if "backbone" in inspect.signature(METHODS.get(m).__init__).parameters]
        if not takers:
            raise UsageError(f"--backbone: none of the methods {methods} takes a backbone")
        for m in takers:
            method_options.setdefault(m, {})["backbone"] = args.backbone
    if method_options:
        cli["method_options"] = method_options
    task_options = _scoped_options(args.task_option, tasks, yaml_values.get("task_options", {}), "task")
    if task_options:
        cli["task_options"] = task_options
    train = {}
    if args.steps is not None:
        train["steps"] = args.steps
    if args.batch_size is not None:
        train["batch_size"] = args.batch_size
    if train:
        cli["train"] = train
    return build_config(yaml_values, cli, source=args.config or "<defaults>")


def _scoped_options(pairs: list[tuple[str, Any]], names: list[str], base: dict[str, Any], what: str) -> dict[str, dict[str, Any]]:
    out = {k: dict(v) for k, v in base.items()}
    for key, value in pairs:
        scope, dot, option = key.rpartition(".")
        targets = [scope] if dot else names
        if dot and scope not in names:
            raise UsageError(f"--{what}-option {key}: {what} {scope!r} is not in this run ({', '.join(names)})")
        for name in targets:
            out.setdefault(name, {})[option] = value
    return out


def cmd_run(args: argparse.Namespace) -> int:
    config = _run_config(args)
    if args.devices is not None and args.devices > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_data_parallel(args.devices, args.argv)
    from astrobench.benchmark.console import Reporter
    from astrobench.benchmark.runner import Runner

    summary = Runner(config, Reporter(enabled=not args.quiet)).run()
    from rich.console import Console

    console = Console(stderr=True)
    console.print(f"{len(summary.written)} result(s) written, {len(summary.skipped)} already present, "
                  f"under {Path(config.results_dir).resolve()}", soft_wrap=True, markup=False)
    if summary.written or summary.skipped:
        from astrobench.benchmark.leaderboard import render
        from astrobench.benchmark.store import load_results

        records = load_results(Path(config.results_dir))
        Console().print(render(records, "rich", task=config.tasks, dataset=None, profile=config.profile))
    return EXIT_OK


def cmd_ablate(args: argparse.Namespace) -> int:
    if "," in args.method:
        raise UsageError(f"ablate studies one method at a time, got {args.method!r}")
    args.method, args.tag = [args.method], None
    config = _run_config(args)
    if args.devices is not None and args.devices > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_data_parallel(args.devices, args.argv)
    from astrobench.benchmark import figures
    from astrobench.benchmark.ablation import DEFAULT_AUGS, run_ablation
    from astrobench.benchmark.leaderboard import ablation_table, render, results_frame
    from astrobench.benchmark.console import Reporter
    from astrobench.registry import AUGMENTATIONS

    augs = args.augs or list(DEFAULT_AUGS)
    for code in augs:
        AUGMENTATIONS.get(code)  # an unknown code is a usage error that suggests close ones
    records = run_ablation(config, config.methods[0], augs, args.mode, Reporter(enabled=not args.quiet))
    if os.environ.get("RANK", "0") != "0":
        return EXIT_OK
    print_table(render(records, args.format, view="ablation"), args.format, None)
    chart = Path(args.chart) if args.chart else (
        Path(config.results_dir) / "ablations" / f"{config.methods[0]}-{'-'.join(config.tasks)}-{args.mode}.png")
    figures.ablation_bars(ablation_table(results_frame(records)), chart)
    print(f"wrote {chart}", file=sys.stderr)
    return EXIT_OK


RANK_ERRORS_ENV = "ASTROBENCH_RANK_ERRORS"  # folder where each failed rank leaves its error


def _launch_data_parallel(n: int, argv: list[str]) -> int:
    """Re-run this command under torchrun with ``n`` local processes (torch's elastic launcher, in
    this process). A failed run is one line: the rank that failed first and its error, not
    torchrun's ``ChildFailedError`` traceback."""
    import logging
    import tempfile

    rest, skip = [], False
    for i, item in enumerate(argv):
        if skip:
            skip = False
            continue
        if item == "--devices":
            skip = True
            continue
        if item.startswith("--devices="):
            continue
        rest.append(item)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report is ours
    with tempfile.TemporaryDirectory(prefix="astrobench-ranks-") as errors:
        os.environ[RANK_ERRORS_ENV] = errors
        try:
            run(parse_args(["--standalone", f"--nproc-per-node={n}", "-m", "astrobench", *rest]))
            return EXIT_OK
        except ChildFailedError as exc:
            code, line = _first_rank_failure(Path(errors), exc, n)
            print(f"astrobench: error: {line}", file=sys.stderr)
            return code
        finally:
            os.environ.pop(RANK_ERRORS_ENV, None)


def _first_rank_failure(errors: Path, exc: Exception, n: int) -> tuple[int, str]:
    """(exit code, message) of the rank that failed first: later ranks often fail only because it did."""
    reports = sorted(errors.glob("rank-*.txt"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if reports:
        code, _, message = reports[0].read_text().partition("\n")
        rank = reports[0].stem.partition("-")[2]
        return int(code), f"rank {rank} of {n} failed: {message}"
    failures = getattr(exc, "failures", {}) or {}
    rank, failure = min(failures.items()) if failures else ("?", None)
    why = f"exit code {failure.exitcode}" + (f" ({failure.signal_name()})" if failure and failure.exitcode < 0 else "") \
        if failure is not None else "an unknown error"
    return EXIT_FAILURE, f"rank {rank} of {n} failed: {why} (no message: killed or crashed; rerun with ASTROBENCH_DEBUG=1)"
