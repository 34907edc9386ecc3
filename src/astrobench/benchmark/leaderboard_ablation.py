"""The leaderboard's ``ablation`` view: the tags of one method against its ``full`` (or untagged)
variant, with the change Δ per column and its standard error (``ablation_table``), rendered in
every output format."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import pandas as pd

from astrobench.benchmark.leaderboard_table import SEPARATION, column_label, combine_uncertainty, mark_best, sort_key
from astrobench.benchmark.leaderboard_text import (
    arrow, cell_css, cell_text, cells_csv, clean_cell, column_formats, legend_lines, stacked_header,
)
from astrobench.benchmark.table_formats import BOLD, Grid, emit

BASELINE_TAGS = ("full", "")  # the variant every other tag is compared with, in order of preference


def tag_label(tag: str) -> str:
    return tag if tag else "(untagged)"


def _per_seed(group: pd.DataFrame) -> dict[str, dict[Any, tuple[float, float, set[str]]]]:
    """tag -> seed -> (score, bootstrap std, flags); several configs of one tag are averaged."""
    out: dict[str, dict[Any, tuple[float, float, set[str]]]] = {}
    for (tag, seed), g in group.groupby(["tag", "seed"], sort=True):
        u = combine_uncertainty(g["value"], g["boot_std"])
        out.setdefault(tag, {})[seed] = (u["mean"], u["boot_std"], set().union(*g["flags"]))
    return out


def _mean_square(values: Iterable[float]) -> float:
    known = [v * v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else math.nan


def _root_sum(terms: Iterable[float]) -> float:
    known = [t for t in terms if not math.isnan(t)]
    return math.sqrt(sum(known)) if known else math.nan


def ablation_table(df: pd.DataFrame, all_metrics: bool = False) -> dict[str, Any]:
    """The tags of one method against its baseline variant (``full``, else untagged).

    ``df`` is a (filtered) ``results_frame``. Returns {method, baseline, rows, columns, seeds, cells}
    where ``cells[(row, column)]`` has mean, std, boot_std, se, n (over seeds, as in the
    leaderboard), flags, delta (mean change against the baseline; paired by seed when the two
    variants share seeds), delta_std (spread of the per-seed change, or the combined std when
    unpaired), delta_se, significant, paired, higher_is_better, direction, best and near_best.

    ``delta_se``, the standard error of the change: paired over k shared seeds,
    ``var(per-seed change) / k + b_variant² + b_baseline²`` (mean bootstrap variances over those
    seeds; the variants share the test objects, so this bootstrap term is an upper bound); unpaired,
    ``SE_variant² + SE_baseline²``. ``significant``: |Δ| > 2 · delta_se; a change whose noise is
    unknown (one seed, no bootstrap) is never significant. ``rows`` start with the baseline, then
    the variants from the best change to the worst (direction-aware).
    """
    if not all_metrics:
        df = df[df["is_main"]]
    df = df[~df["metric"].str.endswith("_std")]
    methods = sorted(df["method"].unique())
    if len(methods) > 1:
        tagged = [m for m in methods if df.loc[df["method"] == m, "tag"].nunique() > 1]
        if len(tagged) != 1:
            raise LookupError("the ablation view compares the tags of one method; choose it with --method "
                              f"(methods with several tags: {tagged or 'none'}; all methods: {methods})")
        df = df[df["method"] == tagged[0]]
    method = str(df["method"].iloc[0])
    tags = set(df["tag"])
    baseline = next((t for t in BASELINE_TAGS if t in tags), None)
    if baseline is None:
        raise LookupError(f"method {method!r} has no 'full' or untagged variant to compare its tags {sorted(tags)} with "
                          "(run it once with --tag full)")
    show_budget = df["label_budget"].nunique() > 1
    df = df.assign(column=[column_label(t, p, b, m, show_budget) for t, p, b, m in
                           zip(df["task"], df["protocol"], df["label_budget"], df["metric"])])
    columns = list(dict.fromkeys(df.sort_values(["task", "protocol", "label_budget", "metric"], key=sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for column, group in df.groupby("column"):
        known = group["higher_is_better"].dropna()
        hib = bool(known.iloc[0]) if len(known) else None
        direction = 1 if hib is None or hib else -1
        per_seed = _per_seed(group)
        base = per_seed.get(baseline)
        base_u = combine_uncertainty([v for v, _, _ in base.values()], [b for _, b, _ in base.values()]) if base else None
        here = []
        for tag, seeds in per_seed.items():
            u = combine_uncertainty([v for v, _, _ in seeds.values()], [b for _, b, _ in seeds.values()])
            delta, delta_std, delta_se, paired = math.nan, math.nan, math.nan, False
            if base is not None and tag != baseline:
                common = sorted(set(seeds) & set(base))
                if common:
                    diff = [seeds[s][0] - base[s][0] for s in common]
                    d = combine_uncertainty(diff)
                    delta, delta_std, paired = d["mean"], d["std"], True
                    delta_se = _root_sum([d["std"] ** 2 / len(diff) if len(diff) > 1 else math.nan,
                                          _mean_square(seeds[s][1] for s in common),
                                          _mean_square(base[s][1] for s in common)])
                else:
                    delta = u["mean"] - base_u["mean"]
                    delta_std = math.sqrt(u["std"] ** 2 + base_u["std"] ** 2)
                    delta_se = _root_sum([u["se"] ** 2, base_u["se"] ** 2])
            cell = {
                **u, "flags": sorted(set().union(*(f for _, _, f in seeds.values()))),
                "delta": 0.0 if tag == baseline else delta, "delta_std": delta_std, "delta_se": delta_se,
                "significant": not math.isnan(delta_se) and abs(delta) > SEPARATION * delta_se,
                "paired": paired, "higher_is_better": hib, "direction": direction, "best": False, "near_best": False,
            }
            cells[(tag_label(tag), column)] = cell
            here.append(cell)
        if hib is not None:
            mark_best(here, direction)
    labels = sorted({tag_label(t) for t in tags})
    # a column only the baseline has compares nothing: leave it out (unless nothing else is left)
    compared = [c for c in columns if any(col == c and r != tag_label(baseline) for r, col in cells)]
    columns = compared or columns

    def gain(row: str) -> float:
        changes = [c["delta"] * c["direction"] for (r, _), c in cells.items() if r == row and not math.isnan(c["delta"])]
        return sum(changes) / len(changes) if changes else -math.inf

    others = sorted((r for r in labels if r != tag_label(baseline)), key=lambda r: (-gain(r), r))
    rows = [tag_label(baseline), *others]
    seeds = {tag_label(t): int(n) for t, n in df.groupby("tag")["seed"].nunique().items()}
    return {"method": method, "baseline": tag_label(baseline), "rows": rows, "columns": columns, "seeds": seeds,
            "cells": cells}


def _signed(value: float, digits: str = ".3g") -> str:
    return "–" if math.isnan(value) else f"{value:+{digits}}".replace("-", "−")


def _delta_text(cell: dict[str, Any]) -> str:
    text = _signed(cell["delta"])
    if not math.isnan(cell["delta_std"]):
        text += f" ± {cell['delta_std']:.2g}"
    return text


def render_ablation(table: dict[str, Any], fmt: str) -> Any:
    method, baseline, rows, columns, cells = (table[k] for k in ("method", "baseline", "rows", "columns", "cells"))
    if fmt == "json":
        return json.dumps({
            "method": method, "baseline": baseline,
            "rows": [{"tag": row, "seeds": table["seeds"][row], "baseline": row == baseline,
                      "scores": {c: clean_cell(cells[(row, c)]) for c in columns if (row, c) in cells}} for row in rows],
        }, indent=2)
    if fmt == "csv":
        return cells_csv([{"method": method, "tag": row, "seeds": table["seeds"][row], "baseline": row == baseline}
                          for row in rows], rows, columns, cells,
                         ("mean", "std", "boot_std", "se", "delta", "delta_std", "delta_se", "significant", "best",
                          "near_best"))
    decimals, hib = column_formats(rows, columns, cells)
    header, rich_header = ["#", f"tag ({method})", "seeds"], ["#", f"tag ({method})", "seeds"]
    for c in columns:
        header += [f"{c}{arrow(hib[c])}", f"Δ vs {baseline}"]
        rich_header += [stacked_header(c, hib[c]), f"Δ vs\n{baseline}"]
    body, bold, classes = [], [], []
    for i, row in enumerate(rows):
        texts, marks, css = [str(i + 1), row, str(table["seeds"][row])], [False] * 3, [""] * 3
        for c in columns:
            cell = cells.get((row, c))
            texts.append(cell_text(cell, decimals[c]))
            marks.append(bool(cell and cell["best"]))
            css.append(cell_css(cell))
            texts.append("–" if cell is None else "(baseline)" if row == baseline else _delta_text(cell))
            significant = bool(cell and row != baseline and cell["significant"])
            marks.append(significant)
            css.append("significant" if significant else "")
        body.append(texts)
        bold.append(marks)
        classes.append(css)
    legend = legend_lines(cells.values(), "score: mean ± standard error over seeds")
    legend.append(f"Δ: mean ± std of the per-seed change against {baseline} (paired by seed; difference of means "
                  f"± combined std where the variants share no seed); {BOLD} Δ: beyond {SEPARATION:g} standard "
                  "errors of the change (seed spread of the change / n + both variants' bootstrap variances)")
    grid = Grid(header=header, rich_header=rich_header, body=body, bold=bold, classes=classes,
                title=f"astrobench ablation: {method}", legend=legend, css_class="leaderboard ablation",
                groups=[[3 + 2 * j, 4 + 2 * j] for j in range(len(columns))], uniform_in_title=(2,))
    return emit(fmt, grid)
