"""Leaderboards from the results store only: records -> long DataFrame -> pivot -> rendered table.

Cells are mean ± std over seeds; the best mean per column is marked, respecting each metric's
direction (``higher_is_better`` stored with every result). Rows are method configurations
(method name, plus the config hash when one name has several configs, plus the tag).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

FORMATS = ("rich", "md", "csv", "latex", "json", "html")


def results_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (result file, score)."""
    rows = []
    for r in records:
        for metric, value in r["scores"].items():
            rows.append({
                "method": r["method"],
                "config_hash": r["config_hash"],
                "tag": r.get("tag") or "",
                "dataset": r["dataset"],
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
    hashes_per_method = df.groupby("method")["config_hash"].nunique()
    def label(r: pd.Series) -> str:
        text = r["method"]
        if hashes_per_method[r["method"]] > 1:
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


def build_table(agg: pd.DataFrame) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]]]:
    """Rows, columns and cells {mean, std, n, best}; rows ranked by mean rank over columns."""
    show_budget = agg["label_budget"].nunique() > 1
    agg = agg.assign(column=[column_label(t, p, b, m, show_budget) for t, p, b, m in
                             zip(agg["task"], agg["protocol"], agg["label_budget"], agg["metric"])])
    columns = list(dict.fromkeys(agg.sort_values(["task", "protocol", "label_budget", "metric"], key=_sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    ranks: dict[str, list[float]] = {}
    for column, group in agg.groupby("column"):
        hib = group["higher_is_better"].iloc[0]
        direction = 1 if hib is None or hib else -1
        best = (group["mean"] * direction).max()
        ranked = (group["mean"] * -direction).rank(method="min")
        for (_, r), rank in zip(group.iterrows(), ranked):
            cells[(r["row"], column)] = {
                "mean": r["mean"], "std": r["std"], "n": int(r["n"]),
                "best": math.isclose(r["mean"] * direction, best, rel_tol=1e-12, abs_tol=1e-15),
            }
            ranks.setdefault(r["row"], []).append(float(rank))
    rows = sorted(ranks, key=lambda row: (sum(ranks[row]) / len(ranks[row]), row))
    return rows, columns, cells


def _sort_key(series: pd.Series) -> pd.Series:
    return series.astype(str)


def _fmt(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    text = f"{cell['mean']:.4g}"
    if not math.isnan(cell["std"]):
        text += f" ± {cell['std']:.2g}"
    return text


def render(records: list[dict[str, Any]], fmt: str = "rich", all_metrics: bool = False, **filters: Any) -> Any:
    """Render the leaderboard of ``records``; returns a string (or a rich Table for ``rich``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {list(FORMATS)}")
    df = filter_frame(results_frame(records), **filters)
    if df.empty:
        raise LookupError("no results match" + (f" {', '.join(f'{k}={v}' for k, v in filters.items() if v is not None)}" if any(v is not None for v in filters.values()) else " (the results folder is empty)"))
    agg = aggregate(df, all_metrics)
    rows, columns, cells = build_table(agg)
    seeds = df.groupby(_row_labels(df))["seed"].nunique()
    if fmt == "json":
        return json.dumps([
            {"rank": i + 1, "method": row, "seeds": int(seeds[row]),
             "scores": {c: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in cells[(row, c)].items()}
                        for c in columns if (row, c) in cells}}
            for i, row in enumerate(rows)
        ], indent=2)
    header = ["rank", "method", "seeds", *columns]
    body = [[str(i + 1), row, str(int(seeds[row])), *[_fmt(cells.get((row, c))) for c in columns]] for i, row in enumerate(rows)]
    best = [[False, False, False, *[bool(cells.get((row, c), {}).get("best")) for c in columns]] for row in rows]
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
    if fmt == "md":
        mark = lambda text, b: f"**{text}**" if b else text  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(mark(t, b) for t, b in zip(r, bs)) + " |" for r, bs in zip(body, best)]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        esc = lambda t: t.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("±", r"$\pm$").replace("·", r"/").replace("#", r"\#")  # noqa: E731
        mark = lambda text, b: rf"\textbf{{{text}}}" if b else text  # noqa: E731
        lines = [r"\begin{tabular}{" + "rlr" + "c" * len(columns) + "}", r"\toprule",
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
        return f"<table class=\"leaderboard\"><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>\n"
    from rich.table import Table

    table = Table(title="astrobench leaderboard", caption="mean ± std over seeds; best per column in bold")
    for i, c in enumerate(header):
        table.add_column(c, justify="left" if i == 1 else "right")
    for r, bs in zip(body, best):
        table.add_row(*[f"[bold]{t}[/bold]" if b else t for t, b in zip(r, bs)])
    return table
