"""Augmentation ablations: which augmentations make the representations useful.

Each variant is an ordinary run of the same method with another list of views, stored as a
leaderboard row tagged with the variant's name, so ablations are cached, resumable and shown by
the same leaderboard as everything else.

Modes (for augmentations A1..An, in the given order):
- ``leave-one-out``: ``full`` and ``-Ai`` (all but one);
- ``add-one``: ``none``, then ``+A1``, ``+A1+A2``, ... (cumulative, as in the seed study's figure);
- ``single``: ``none`` and ``only-Ai``; plus ``full``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pandas as pd

from astrobench.benchmark.config import RunConfig, ViewsConfig
from astrobench.benchmark.store import load_results

MODES = ("leave-one-out", "add-one", "single")
DEFAULT_AUGS = ("RR", "JC", "GN", "GR", "PS")


def ablation_variants(augs: list[str] | tuple[str, ...], mode: str) -> dict[str, list[str]]:
    """Variant tag -> augmentation codes."""
    augs = list(augs)
    if len(set(augs)) != len(augs):
        raise ValueError(f"augmentations listed twice in {augs}")
    if mode not in MODES:
        raise ValueError(f"ablation mode {mode!r} is not one of {list(MODES)}")
    variants: dict[str, list[str]] = {"full": augs}
    if mode == "leave-one-out":
        variants.update({f"-{a}": [b for b in augs if b != a] for a in augs})
    elif mode == "add-one":
        variants = {"none": []}
        variants.update({"+" + "+".join(augs[: i + 1]): augs[: i + 1] for i in range(len(augs))})
    else:
        variants["none"] = []
        variants.update({f"only-{a}": [a] for a in augs})
    return variants


def variant_configs(base: RunConfig, method: str, augs: list[str], mode: str) -> dict[str, RunConfig]:
    """One ``RunConfig`` per variant: same everything, other views, tagged ``ablation:<variant>``."""
    if base.methods != [method]:
        raise ValueError(f"an ablation runs one method, got {base.methods}")
    params = base.views[method].params if method in base.views else {}
    out = {}
    for tag, codes in ablation_variants(augs, mode).items():
        views = dict(base.views)
        views[method] = ViewsConfig(codes=list(codes), params={c: p for c, p in params.items() if c in codes})
        out[tag] = dataclasses.replace(base, views=views, tag=f"ablation:{tag}")
    return out


def ablation_table(records: list[dict[str, Any]], method: str, task: str, protocol: str | None = None) -> pd.DataFrame:
    """Main score per variant (mean, std over seeds) and its change against ``full``.

    ``delta`` is signed so that positive means better than ``full`` whatever the metric's direction.
    """
    rows = [r for r in records if r["method"] == method and r["task"] == task
            and (r.get("tag") or "").startswith("ablation:") and (protocol is None or r["protocol"] == protocol)]
    if not rows:
        raise LookupError(f"no ablation results for method {method!r} on task {task!r}")
    protocols = sorted({r["protocol"] for r in rows})
    if len(protocols) > 1:
        raise LookupError(f"ablation results of several protocols {protocols}: choose one with --protocol")
    main = rows[0]["main_score"]
    higher = rows[0]["higher_is_better"].get(main, True)
    frame = pd.DataFrame([{"variant": r["tag"].split(":", 1)[1], "seed": r["seed"], "score": r["scores"][main]} for r in rows])
    table = frame.groupby("variant")["score"].agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else math.nan, seeds="count")
    if "full" in table.index:
        sign = 1.0 if higher else -1.0
        table["delta"] = sign * (table["mean"] - table.loc["full", "mean"])
        # spread of the difference over seeds, assuming independent seeds
        table["delta_std"] = (table["std"] ** 2 + table.loc["full", "std"] ** 2) ** 0.5
    table.attrs.update(metric=main, higher_is_better=higher, protocol=protocols[0])
    return table.reset_index()


def plot_ablation(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Bar chart of the main score per variant with error bars (the seed study's ablation figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(table), 3.6), dpi=120)
    colours = ["#4c72b0" if v == "full" else "#dd8452" for v in table["variant"]]
    ax.bar(table["variant"], table["mean"], yerr=table["std"].fillna(0.0), color=colours, capsize=4)
    ax.set_ylabel(f"{table.attrs.get('metric', 'score')} ({'higher' if table.attrs.get('higher_is_better', True) else 'lower'} is better)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    low, high = (table["mean"] - table["std"].fillna(0)).min(), (table["mean"] + table["std"].fillna(0)).max()
    pad = 0.15 * (high - low if high > low else abs(high) or 1.0)
    ax.set_ylim(low - pad, high + pad)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_ablation(base: RunConfig, method: str, augs: list[str], mode: str, reporter: Any = None) -> pd.DataFrame:
    from astrobench.benchmark.runner import Runner

    paths: set[str] = set()
    for config in variant_configs(base, method, augs, mode).values():
        summary = Runner(config, reporter).run()
        paths.update(str(p) for p in summary.written + summary.skipped)
    # exactly this ablation's results: older ablations under the same tags may hold other settings
    records = [r for r in load_results(Path(base.results_dir)) if r["_path"] in paths]
    tables = [ablation_table(records, method, task) for task in base.tasks]
    return pd.concat([t.assign(task=task, metric=t.attrs["metric"]) for t, task in zip(tables, base.tasks)])
