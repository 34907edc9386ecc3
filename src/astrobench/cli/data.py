"""``astrobench data``: generate a simulated survey, show a dataset, inspect a data source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from astrobench.cli.common import EXIT_FAILURE, EXIT_OK, UsageError


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command is None:
        raise UsageError("data needs a subcommand: generate, show or inspect")
    if args.data_command == "generate":
        from rich.progress import Progress

        from astrobench.datasets.synthetic import generate_to_disk

        if args.n <= 0:
            raise UsageError(f"--n must be positive, got {args.n}")
        with Progress() as progress:
            bar = progress.add_task(f"simulating {args.n} galaxies ({args.preset})", total=args.n)
            path = generate_to_disk(args.preset, args.n, args.seed, args.out, workers=args.workers,
                                    progress=lambda done, total: progress.update(bar, completed=done), device=args.device)
        size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        print(f"wrote {path} ({size / 2**30:.2f} GiB, {size / args.n / 1024:.1f} KiB a galaxy)")
        return EXIT_OK
    if args.data_command == "show":
        from astrobench.datasets.show import show_dataset

        for path in show_dataset(args.path, args.out):
            print(f"wrote {path}")
        return EXIT_OK
    from astrobench.datasets.inspect import format_inspection, inspect_source, source_for_path
    from astrobench.registry import RegistryError

    try:
        source = source_for_path(args.path, dict(args.dataset_option), args.dataset)
    except (RegistryError, TypeError) as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:
        if "has no option" in str(exc):
            raise UsageError(str(exc)) from exc
        raise
    info = inspect_source(source, Path(args.cache_dir) if args.cache_dir else None)
    print(format_inspection(info))
    warned = [f for f in info["checks"] if f["level"] == "warning"]
    if args.strict and warned:
        print(f"astrobench: error: {len(warned)} data check(s) warned under --strict", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
