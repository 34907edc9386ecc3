"""The ``astrobench`` command line. Exit codes: 0 success, 1 failure, 2 usage error.

Heavy imports (torch, the runner) happen inside the commands that need them, so ``astrobench ls``
and ``--help`` stay fast and torch-free. This module holds the parser and ``main`` (the console
script ``astrobench.cli:main``); each command lives in a module of its own: ``run`` (run, ablate),
``results`` (leaderboard, compare, report), ``ls`` and ``data``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from astrobench.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from astrobench.cli.data import cmd_data
from astrobench.cli.ls import cmd_ls
from astrobench.cli.results import cmd_compare, cmd_leaderboard, cmd_report
from astrobench.cli.run import RANK_ERRORS_ENV, cmd_ablate, cmd_run

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_csv(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _budgets(text: str) -> list[int | None]:
    out: list[int | None] = []
    for item in _csv(text):
        if item == "all":
            out.append(None)
            continue
        try:
            out.append(int(item))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"label budgets are integers or 'all', got {item!r}") from exc
    return out


def _key_value(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, _, raw = text.partition("=")
    return key.strip(), yaml.safe_load(raw)  # YAML scalars: numbers, booleans, lists


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors: keep that, say it clearly
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"astrobench: error: {message}\n")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``ablate``."""
    parser.add_argument("--task", type=_csv, help="task name(s), comma-separated (default: redshift)")
    parser.add_argument("--dataset", help="dataset name (default: synthetic)")
    parser.add_argument("--dataset-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="dataset constructor option, repeatable (e.g. --dataset-option n=2000)")
    parser.add_argument("--eval-dataset", help="labelled dataset for the tasks when not the pretraining data")
    parser.add_argument("--eval-dataset-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--train-dataset", help="fit the probe on every object of this dataset (default: the "
                        "evaluation data); needs --test-dataset")
    parser.add_argument("--train-dataset-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--test-dataset", help="score on every object of this dataset; the pretraining file is then "
                        "used whole")
    parser.add_argument("--test-dataset-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--splits", help="train,val,test fractions of the hash split (default 0.7,0.1,0.2), or 'all'")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="data-check warnings (duplicate images, impossible labels, ...) fail the run")
    parser.add_argument("--method-option", type=_key_value, action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                        help="method constructor option, repeatable; without METHOD. it applies to every method")
    parser.add_argument("--task-option", type=_key_value, action="append", default=[], metavar="[TASK.]KEY=VALUE",
                        help="task constructor option, repeatable; without TASK. it applies to every task")
    parser.add_argument("--backbone", help="timm backbone for every method that takes one")
    parser.add_argument("--profile", choices=["smoke", "quick", "gpu", "paper"], help="sizes (default: quick)")
    parser.add_argument("--seeds", type=_int_csv, help="seeds, comma-separated (default: 0)")
    parser.add_argument("--protocol", type=_csv, help="protocols (default: each task's own)")
    parser.add_argument("--labels", type=_budgets, help="label budgets, e.g. 50,100,200,all (default: all)")
    parser.add_argument("--steps", type=int, help="pretraining steps (overrides the profile)")
    parser.add_argument("--batch-size", type=int, help="global pretraining batch size")
    parser.add_argument("--config", help="YAML file with run settings")
    parser.add_argument("--results-dir", help="results folder (default: ./results or $ASTROBENCH_RESULTS)")
    parser.add_argument("--cache-dir", help="cache of datasets, checkpoints, embeddings (default: ~/.cache/astrobench or $ASTROBENCH_CACHE)")
    parser.add_argument("--overwrite", choices=["only-missing", "always", "never"], help="existing results (default: only-missing)")
    parser.add_argument("--plugin", action="append", default=[], help="module or .py file that registers plugins, repeatable")
    parser.add_argument("--device", help="torch device (default: auto)")
    parser.add_argument("--devices", type=int, help="data-parallel processes on this machine (launches torchrun; "
                        "gloo on CPU, NCCL on GPUs); for several nodes use torchrun -m astrobench run ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_result_filters(parser: argparse.ArgumentParser) -> None:
    """Which stored results to read (``leaderboard`` and ``report``)."""
    parser.add_argument("--results-dir", help="results folder (default: ./results or $ASTROBENCH_RESULTS)")
    for name in ("task", "dataset", "profile", "protocol", "method", "tag"):
        parser.add_argument(f"--{name}", type=_csv, help=f"only these {name}s (comma-separated)")
    parser.add_argument("--labels", type=_csv, help="only these label budgets (numbers or 'all')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="astrobench", description="Benchmark self-supervised representations of survey images.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="pretrain methods and evaluate them on tasks", description=(
        "Pretrain each method on the dataset, embed, evaluate every task, store results. "
        "Precedence: command line > --config YAML > method/profile defaults."))
    run.add_argument("--method", type=_csv, help="method name(s), comma-separated (default: random,constant,colours)")
    _add_run_options(run)
    run.add_argument("--tag", help="label stored with the results (e.g. an ablation variant); "
                     "write --tag=-GN for a tag that starts with a dash")

    ablate = sub.add_parser("ablate", help="augmentation ablation of one method", description=(
        "Pretrain and evaluate one method once per augmentation variant (leave-one-out, add-one or single), "
        "store each as results tagged with the variant, print the ablation table and save a bar chart."))
    ablate.add_argument("--method", required=True, help="the method to ablate")
    ablate.add_argument("--augs", type=_csv, help="augmentation codes (default: RR,JC,GN,GR,PS)")
    ablate.add_argument("--mode", choices=["leave-one-out", "add-one", "single"], default="leave-one-out")
    ablate.add_argument("--format", choices=["rich", "md", "csv", "latex", "json", "html"], default="rich")
    ablate.add_argument("--chart", help="PNG of the ablation bars (default: <results-dir>/ablations/<method>.png)")
    _add_run_options(ablate)

    ls = sub.add_parser("ls", help="list registered names, or a dataset's labels",
                        description="List registered plugins (never imports torch unless --details), or with "
                                    "`ls labels` the labels a dataset holds and the tasks that use them.")
    ls.add_argument("kind", choices=["methods", "tasks", "datasets", "augmentations", "labels"])
    ls.add_argument("--plugin", action="append", default=[], help="module or .py file that registers plugins")
    ls.add_argument("--details", action="store_true",
                    help="a one-line description of each, and a task's labels, metrics and protocols (imports them)")
    ls.add_argument("--dataset", default="synthetic", help="ls labels: the dataset (default: synthetic)")
    ls.add_argument("--dataset-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                    help="ls labels: dataset constructor option, repeatable")
    ls.add_argument("--profile", default="smoke", help="ls labels: the profile whose dataset size to load (default: smoke)")
    ls.add_argument("--cache-dir", help="ls labels: cache folder (default: ~/.cache/astrobench or $ASTROBENCH_CACHE)")

    lb = sub.add_parser("leaderboard", help="show the leaderboard of stored results")
    _add_result_filters(lb)
    lb.add_argument("--all-metrics", action="store_true", help="every metric, not only each task's main score")
    lb.add_argument("--format", choices=["rich", "md", "csv", "latex", "json", "html"], default="rich")
    lb.add_argument("--out", help="write to this file instead of the terminal")
    lb.add_argument("--view", choices=["table", "curves", "ablation"], default="table",
                    help="table (default); curves: one column per label budget; ablation: the tags of one method "
                         "against its 'full' (or untagged) variant")

    cmp = sub.add_parser("compare", help="paired per-seed comparison of two leaderboard rows, with a t-test",
                         description="Per (task, protocol, label budget, metric): the per-seed differences B − A over "
                                     "the seeds both have, their mean and std, a paired t-test p-value and whether B "
                                     "is significantly better or worse. Names: METHOD, METHOD@CONFIG (a config hash "
                                     "prefix, where a method has several), METHOD[@CONFIG]:TAG for tagged runs.")
    cmp.add_argument("a", help="the reference row (A)")
    cmp.add_argument("b", help="the row compared with it (B)")
    cmp.add_argument("--results-dir", help="results folder (default: ./results or $ASTROBENCH_RESULTS)")
    for name in ("task", "protocol", "metric", "dataset", "profile"):
        cmp.add_argument(f"--{name}", type=_csv, help=f"only these {name}s (comma-separated)"
                         + (" (default: each task's main score)" if name == "metric" else ""))
    cmp.add_argument("--labels", type=_csv, help="only these label budgets (numbers or 'all')")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level of the t-test (default: 0.05)")
    cmp.add_argument("--format", choices=["rich", "md", "csv", "json"], default="rich")
    cmp.add_argument("--out", help="write to this file instead of the terminal")

    rep = sub.add_parser("report", help="write a self-contained HTML report (leaderboard and figures)",
                         description="Static HTML page (no server, no network) with the leaderboard and figures "
                                     "built from the results store and the cache: t-SNE of embeddings, similarity "
                                     "search, MAE reconstructions, photo-z, label efficiency, ablations, training.")
    rep.add_argument("--out", required=True, help="folder for index.html and its PNG figures")
    _add_result_filters(rep)
    rep.add_argument("--cache-dir", help="cache of datasets, checkpoints, embeddings (default: each result's own "
                                         "cache folder, else $ASTROBENCH_CACHE or ~/.cache/astrobench)")
    rep.add_argument("--plugin", action="append", default=[], help="module or .py file that registers plugins, repeatable")
    rep.add_argument("--quiet", action="store_true", help="no progress messages")

    data = sub.add_parser("data", help="dataset commands: generate, show, inspect")
    dsub = data.add_subparsers(dest="data_command", parser_class=_Parser)
    gen = dsub.add_parser("generate", help="write a simulated survey to a datasets folder")
    gen.add_argument("--dataset", default="synthetic", choices=["synthetic"])
    gen.add_argument("--preset", default="sdss")
    gen.add_argument("--n", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--workers", type=int, help="worker threads (default: all cores; never changes the data)")
    gen.add_argument("--device", default="cpu", help="render on 'cpu' (the reference) or a GPU, e.g. 'cuda' "
                     "(the same galaxies with the GPU's own noise draws: recorded in the manifest as another dataset)")
    gen.add_argument("--out", required=True)
    show = dsub.add_parser("show", help="PNG grid of cutouts and plots of the physical relations")
    show.add_argument("path")
    show.add_argument("--out", required=True, help="folder for the PNG files")
    insp = dsub.add_parser("inspect", help="what a data source holds, and the data checks' warnings")
    insp.add_argument("path")
    insp.add_argument("--dataset", help="the source to read PATH with (default: guessed from PATH)")
    insp.add_argument("--dataset-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                      help="the source's options, as for run (e.g. catalog=gz.csv, file_pattern=Imagenes/{OBJID}.jpeg)")
    insp.add_argument("--cache-dir", help="cache for decoded images (default: none, a temporary folder)")
    insp.add_argument("--strict", action="store_true", help="exit 1 when a data check warns")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.version:
        from astrobench import __version__

        print(__version__)
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _short_warnings()
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"astrobench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("astrobench: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the boundary: classify, never show a traceback to a user
        code = _classify(exc)
        if os.environ.get(RANK_ERRORS_ENV):  # a rank under --devices: the launcher prints one line
            Path(os.environ[RANK_ERRORS_ENV], f"rank-{os.environ.get('RANK', '0')}.txt").write_text(f"{code}\n{exc}")
        else:
            print(f"astrobench: error: {exc}", file=sys.stderr)
        if os.environ.get("ASTROBENCH_DEBUG"):
            raise
        return code


def _short_warnings() -> None:
    """astrobench's own warnings (a damaged file skipped, a checkpoint fallen back from) as one
    ``astrobench: warning:`` line; other libraries' warnings keep Python's format."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if "astrobench" in str(filename):
            print(f"astrobench: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _classify(exc: Exception) -> int:
    from astrobench.registry import RegistryError

    usage_types: tuple[type, ...] = (RegistryError,)
    try:
        from astrobench.benchmark.config import ConfigError

        usage_types += (ConfigError,)
    except ImportError:  # pragma: no cover - config has no heavy imports
        pass
    return EXIT_USAGE if isinstance(exc, usage_types) else EXIT_FAILURE


COMMANDS = {"run": cmd_run, "ablate": cmd_ablate, "ls": cmd_ls, "leaderboard": cmd_leaderboard, "data": cmd_data,
            "report": cmd_report, "compare": cmd_compare}
