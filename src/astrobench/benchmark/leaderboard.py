"""Leaderboards from the results store only: records -> long DataFrame -> pivot -> rendered table.

Cells are mean ± std over seeds; the best mean per column is marked, respecting each metric's
direction (``higher_is_better`` stored with every result). Rows are method configurations
(method name, plus the config hash when one name and tag has several configs, plus the tag).

Views (``render(..., view=...)``):
- ``table``: the leaderboard above.
- ``curves``: label efficiency: rows methods, one column per task · protocol · main score · label
  budget, budgets in numeric order (``all`` last).
- ``ablation``: rows are the tags of one method (ablation variants such as ``full``, ``-GN``,
  ``only-RR``); per column the main score and its change Δ against the ``full`` variant (or the
  untagged one), with Δ's spread over seeds (paired by seed where both variants have that seed).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

FORMATS = ("rich", "md", "csv", "latex", "json", "html")
VIEWS = ("table", "curves", "ablation")


def latest_per_identity(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per result identity, the newest: the same evaluation stored in two folders
    (a committed reference and a local re-run) counts once, not as two seeds."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (r.get("dataset_id", r["dataset"]), r["profile"], r["task"], r["method"], r["config_hash"], r["protocol"],
               r["label_budget"], r["seed"], r.get("tag") or "",
               json.dumps(r.get("data_manifest_hash"), sort_keys=True), r.get("task_version"))
        if key not in latest or str(r.get("created_at", "")) > str(latest[key].get("created_at", "")):
            latest[key] = r
    return list(latest.values())


def results_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (result, score), after ``latest_per_identity``."""
    rows = []
    for r in latest_per_identity(records):
        for metric, value in r["scores"].items():
            rows.append({
                "method": r["method"],
                "config_hash": r["config_hash"],
                "tag": r.get("tag") or "",
                "dataset": r["dataset"],
                "dataset_id": r.get("dataset_id", r["dataset"]),
                "profile": r["profile"],
                "task": r["task"],
                "protocol": r["protocol"],
                "label_budget": "all" if r["label_budget"] is None else int(r["label_budget"]),
                "seed": r["seed"],
                "metric": metric,
                "value": value,
                "higher_is_better": r["higher_is_better"].get(metric),
                "is_main": metric == r["main_score"],
            })
    return pd.DataFrame(rows)


def filter_frame(df: pd.DataFrame, **filters: Any) -> pd.DataFrame:
    for column, wanted in filters.items():
        if wanted is None or df.empty:
            continue
        values = [wanted] if not isinstance(wanted, (list, tuple, set)) else list(wanted)
        values = [str(v) for v in values]
        df = df[df[column].astype(str).isin(values)]
    return df


def aggregate(df: pd.DataFrame, all_metrics: bool) -> pd.DataFrame:
    """Mean, std and seed count per (row, column), with the column's direction."""
    if not all_metrics:
        df = df[df["is_main"]]
    df = df[~df["metric"].str.endswith("_std")]  # spreads over repeats are shown as ± already
    df = df.assign(row=_row_labels(df))
    grouped = df.groupby(["row", "task", "protocol", "label_budget", "metric"], sort=True)
    agg = grouped["value"].agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else float("nan"), n="count")
    agg["higher_is_better"] = grouped["higher_is_better"].first()
    return agg.reset_index()


def _row_labels(df: pd.DataFrame) -> pd.Series:
    # the config hash is shown only where one method name and tag has several configurations
    hashes = df.groupby(["method", "tag"])["config_hash"].nunique() if not df.empty else None
    def label(r: pd.Series) -> str:
        text = r["method"]
        if hashes[(r["method"], r["tag"])] > 1:
            text += f" [{r['config_hash'][:6]}]"
        if r["tag"]:
            text += f" ({r['tag']})"
        return text
    return df.apply(label, axis=1) if not df.empty else pd.Series(dtype=str)


def column_label(task: str, protocol: str, budget: Any, metric: str, show_budget: bool) -> str:
    parts = [task, protocol]
    if show_budget:
        parts.append(f"n={budget}")
    return " · ".join(parts) + f" · {metric}"


def build_table(agg: pd.DataFrame, show_budget: bool | None = None
                ) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]]]:
    """Rows, columns and cells {mean, std, n, best}; rows ranked by mean rank over columns."""
    if show_budget is None:
        show_budget = agg["label_budget"].nunique() > 1
    agg = agg.assign(column=[column_label(t, p, b, m, show_budget) for t, p, b, m in
                             zip(agg["task"], agg["protocol"], agg["label_budget"], agg["metric"])])
    columns = list(dict.fromkeys(agg.sort_values(["task", "protocol", "label_budget", "metric"], key=_sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    ranks: dict[str, list[float]] = {}
    for column, group in agg.groupby("column"):
        hib = group["higher_is_better"].iloc[0]
        if hib is None or (isinstance(hib, float) and math.isnan(hib)):
            # a metric without a better direction (a signed bias) is shown, never ranked or marked
            for _, r in group.iterrows():
                cells[(r["row"], column)] = {"mean": r["mean"], "std": r["std"], "n": int(r["n"]), "best": False}
                ranks.setdefault(r["row"], [])
            continue
        direction = 1 if hib else -1
        best = (group["mean"] * direction).max()
        ranked = (group["mean"] * -direction).rank(method="min")
        for (_, r), rank in zip(group.iterrows(), ranked):
            cells[(r["row"], column)] = {
                "mean": r["mean"], "std": r["std"], "n": int(r["n"]),
                "best": math.isclose(r["mean"] * direction, best, rel_tol=1e-12, abs_tol=1e-15),
            }
            ranks.setdefault(r["row"], []).append(float(rank))
    mean_rank = {row: sum(v) / len(v) if v else math.inf for row, v in ranks.items()}
    rows = sorted(ranks, key=lambda row: (mean_rank[row], row))
    return rows, columns, cells


def _sort_key(series: pd.Series) -> pd.Series:
    if series.name == "label_budget":  # numeric order, "all" last
        return series.map(budget_order)
    return series.astype(str)


def budget_order(budget: Any) -> float:
    """Sort key of a label budget: its number, ``all`` (every label) after every number."""
    if budget is None or str(budget) == "all":
        return math.inf
    return float(budget)


def _fmt(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    text = f"{cell['mean']:.4g}"
    if not math.isnan(cell["std"]):
        text += f" ± {cell['std']:.2g}"
    return text


def select(records: list[dict[str, Any]], **filters: Any) -> pd.DataFrame:
    """The long frame of ``records`` after ``filters``; an empty selection is a ``LookupError``."""
    df = filter_frame(results_frame(records), **filters)
    if df.empty:
        given = {k: v for k, v in filters.items() if v is not None}
        raise LookupError("no results match" + (f" {', '.join(f'{k}={v}' for k, v in given.items())}" if given
                                                 else " (the results folder is empty)"))
    if df["dataset_id"].nunique() > 1:
        # scores on different data are never averaged: each dataset gets its own columns
        df = df.assign(task=df["dataset_id"] + " / " + df["task"])
    return df


def render(records: list[dict[str, Any]], fmt: str = "rich", all_metrics: bool = False, *, view: str = "table",
           **filters: Any) -> Any:
    """Render the leaderboard of ``records``; returns a string (or a rich Table for ``rich``).

    ``view``: ``table`` (the leaderboard), ``curves`` (label efficiency: one column per label budget)
    or ``ablation`` (the tags of one method against its ``full`` variant); see the module docstring.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {list(FORMATS)}")
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is not one of {list(VIEWS)}")
    df = select(records, **filters)
    if view == "ablation":
        return _render_ablation(ablation_table(df, all_metrics), fmt)
    agg = aggregate(df, all_metrics)
    rows, columns, cells = build_table(agg, show_budget=True if view == "curves" else None)
    seeds = df.groupby(_row_labels(df))["seed"].nunique()
    if fmt == "json":
        return json.dumps([
            {"rank": i + 1, "method": row, "seeds": int(seeds[row]),
             "scores": {c: _clean(cells[(row, c)]) for c in columns if (row, c) in cells}}
            for i, row in enumerate(rows)
        ], indent=2)
    if fmt == "csv":
        flat = []
        for i, row in enumerate(rows):
            entry = {"rank": i + 1, "method": row, "seeds": int(seeds[row])}
            for c in columns:
                cell = cells.get((row, c))
                entry[f"{c} mean"] = cell["mean"] if cell else None
                entry[f"{c} std"] = cell["std"] if cell else None
            flat.append(entry)
        return pd.DataFrame(flat).to_csv(index=False)
    header = ["rank", "method", "seeds", *columns]
    body = [[str(i + 1), row, str(int(seeds[row])), *[_fmt(cells.get((row, c))) for c in columns]] for i, row in enumerate(rows)]
    best = [[False, False, False, *[bool(cells.get((row, c), {}).get("best")) for c in columns]] for row in rows]
    if view == "curves":
        title, caption = "astrobench label efficiency", "main score per label budget (n = labelled training objects); mean ± std over seeds; best per column in bold"
    else:
        title, caption = "astrobench leaderboard", "mean ± std over seeds; best per column in bold"
    return _emit(fmt, header, body, best, title, caption, css_class="leaderboard" if view == "table" else f"leaderboard {view}")


def _clean(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in cell.items()}


def _emit(fmt: str, header: list[str], body: list[list[str]], best: list[list[bool]], title: str, caption: str,
          css_class: str = "leaderboard") -> Any:
    """A grid of text cells (bold where ``best``) as Markdown, LaTeX, HTML or a rich Table."""
    if fmt == "md":
        mark = lambda text, b: f"**{text}**" if b else text  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(mark(t, b) for t, b in zip(r, bs)) + " |" for r, bs in zip(body, best)]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        esc = lambda t: t.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("±", r"$\pm$").replace("·", r"/").replace("#", r"\#").replace("Δ", r"$\Delta$").replace("−", "-")  # noqa: E731
        mark = lambda text, b: rf"\textbf{{{text}}}" if b else text  # noqa: E731
        lines = [r"\begin{tabular}{" + "rlr" + "c" * (len(header) - 3) + "}", r"\toprule",
                 " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(mark(esc(t), b) for t, b in zip(r, bs)) + r" \\" for r, bs in zip(body, best)]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        import html as h

        head = "".join(f"<th>{h.escape(c)}</th>" for c in header)
        trs = "".join(
            "<tr>" + "".join(f"<td class=\"best\"><b>{h.escape(t)}</b></td>" if b else f"<td>{h.escape(t)}</td>" for t, b in zip(r, bs)) + "</tr>"
            for r, bs in zip(body, best)
        )
        return f"<table class=\"{css_class}\"><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>\n"
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for i, c in enumerate(header):
        table.add_column(c, justify="left" if i == 1 else "right")
    for r, bs in zip(body, best):
        table.add_row(*[f"[bold]{t}[/bold]" if b else t for t, b in zip(r, bs)])
    return table


# -- ablation view ---------------------------------------------------------------------------------
BASELINE_TAGS = ("full", "")  # the variant every other tag is compared with, in order of preference


def tag_label(tag: str) -> str:
    return tag if tag else "(untagged)"


def ablation_table(df: pd.DataFrame, all_metrics: bool = False) -> dict[str, Any]:
    """The tags of one method against its baseline variant (``full``, else untagged).

    ``df`` is a (filtered) ``results_frame``. Returns {method, baseline, rows, columns, seeds, cells}
    where ``cells[(row, column)]`` has mean, std, n (over seeds), delta (mean change against the
    baseline; paired by seed when the two variants share seeds), delta_std (spread of the per-seed
    change, or the combined std when unpaired), paired, higher_is_better and best. ``rows`` start
    with the baseline, then the variants from the best change to the worst (direction-aware).
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
    columns = list(dict.fromkeys(df.sort_values(["task", "protocol", "label_budget", "metric"], key=_sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for column, group in df.groupby("column"):
        hib = group["higher_is_better"].iloc[0]
        direction = 1 if hib is None or hib else -1
        per_seed = group.groupby(["tag", "seed"])["value"].mean()  # several configs of one tag: averaged
        base = per_seed.loc[baseline] if baseline in per_seed.index.get_level_values(0) else None
        for tag, values in per_seed.groupby(level=0):
            values = values.droplevel(0)
            mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan
            delta, delta_std, paired = math.nan, math.nan, False
            if base is not None:
                common = values.index.intersection(base.index)
                if len(common):
                    diff = values.loc[common] - base.loc[common]
                    delta, paired = float(diff.mean()), True
                    delta_std = float(diff.std(ddof=1)) if len(diff) > 1 else math.nan
                else:
                    base_std = float(base.std(ddof=1)) if len(base) > 1 else math.nan
                    delta = mean - float(base.mean())
                    delta_std = math.sqrt(std**2 + base_std**2)
            cells[(tag_label(tag), column)] = {
                "mean": mean, "std": std, "n": int(len(values)), "delta": 0.0 if tag == baseline else delta,
                "delta_std": math.nan if tag == baseline else delta_std, "paired": paired,
                "higher_is_better": None if hib is None else bool(hib), "direction": direction,
            }
        best = max(c["mean"] * direction for (r, col), c in cells.items() if col == column)
        for (r, col), c in cells.items():
            if col == column:
                c["best"] = math.isclose(c["mean"] * direction, best, rel_tol=1e-12, abs_tol=1e-15)
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


def _render_ablation(table: dict[str, Any], fmt: str) -> Any:
    method, baseline, rows, columns, cells = (table[k] for k in ("method", "baseline", "rows", "columns", "cells"))
    if fmt == "json":
        return json.dumps({
            "method": method, "baseline": baseline,
            "rows": [{"tag": row, "seeds": table["seeds"][row], "baseline": row == baseline,
                      "scores": {c: _clean(cells[(row, c)]) for c in columns if (row, c) in cells}} for row in rows],
        }, indent=2)
    if fmt == "csv":
        flat = []
        for row in rows:
            entry: dict[str, Any] = {"method": method, "tag": row, "seeds": table["seeds"][row], "baseline": row == baseline}
            for c in columns:
                cell = cells.get((row, c), {})
                for key in ("mean", "std", "delta", "delta_std"):
                    entry[f"{c} {key}"] = cell.get(key)
            flat.append(entry)
        return pd.DataFrame(flat).to_csv(index=False)
    header = ["#", f"tag ({method})", "seeds"]
    for c in columns:
        header += [c, f"Δ vs {baseline}"]
    body, best = [], []
    for i, row in enumerate(rows):
        texts, marks = [str(i + 1), row, str(table["seeds"][row])], [False, False, False]
        for c in columns:
            cell = cells.get((row, c))
            texts.append(_fmt(cell))
            marks.append(bool(cell and cell["best"]))
            if cell is None:
                texts.append("–")
            elif row == baseline:
                texts.append("(baseline)")
            else:
                text = _signed(cell["delta"])
                if not math.isnan(cell["delta_std"]):
                    text += f" ± {cell['delta_std']:.2g}"
                texts.append(text)
            marks.append(False)
        body.append(texts)
        best.append(marks)
    title = f"astrobench ablation: {method}"
    caption = (f"main score (mean ± std over seeds) and its change Δ against the {baseline} variant "
               "(mean ± std of the per-seed change); best per column in bold")
    return _emit(fmt, header, body, best, title, caption, css_class="leaderboard ablation")
