"""The ``astrobench`` command line. Exit codes: 0 success, 1 failure, 2 usage error.

Heavy imports (torch, the runner) happen inside the commands that need them, so ``astrobench ls``
and ``--help`` stay fast and torch-free.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence


EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


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


def _cmd_ls(args: argparse.Namespace) -> int:
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


def _cmd_run(args: argparse.Namespace) -> int:
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


def _cmd_leaderboard(args: argparse.Namespace) -> int:
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
    _print(out, args.format, args.out)
    if records.damaged:
        print(f"astrobench: error: {len(records.damaged)} damaged result file(s) left out (named above)",
              file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
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
    _print(render_comparison(result, args.format), args.format, args.out)
    return EXIT_OK


def _print(rendered: Any, fmt: str, out: str | None) -> None:
    """A rendered table to the terminal or a file (rich tables through a rich console)."""
    if fmt == "rich":
        from rich.console import Console

        if out:
            with open(out, "w") as handle:
                Console(file=handle, width=200).print(rendered)
        else:
            Console().print(rendered)
    elif out:
        Path(out).write_text(rendered)
    else:
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")


def _cmd_data(args: argparse.Namespace) -> int:
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


def _cmd_report(args: argparse.Namespace) -> int:
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


def _cmd_ablate(args: argparse.Namespace) -> int:
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
    _print(render(records, args.format, view="ablation"), args.format, None)
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


COMMANDS = {"run": _cmd_run, "ablate": _cmd_ablate, "ls": _cmd_ls, "leaderboard": _cmd_leaderboard, "data": _cmd_data,
            "report": _cmd_report, "compare": _cmd_compare}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
