"""The leaderboard's table model: records -> long DataFrame -> aggregated cells (mean ± standard
error over seeds), the best / not-separable marks and the ranking. What the numbers and marks mean
is told in ``leaderboard``'s module docstring; ``leaderboard_text`` turns them into text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from astrobench.benchmark.model_card import model_card

SEPARATION = 2.0  # standard errors: a difference within this many is "not separable"


# -- uncertainty -----------------------------------------------------------------------------------
def as_number(value: Any) -> float:
    """A finite float, else NaN (missing, None, text, inf: never a made-up number)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def combine_uncertainty(values: Iterable[Any], boot_stds: Iterable[Any] = ()) -> dict[str, Any]:
    """Mean over seeds and its standard error (``leaderboard``'s docstring): {mean, std, boot_std, se, n}.

    ``values`` are the per-seed scores, ``boot_stds`` their bootstrap standard deviations over the
    test objects (NaN or absent where a result has none). ``std`` is the seed spread (ddof=1),
    ``boot_std`` the root mean square of the known bootstrap stds; NaN where unknown.
    """
    v = [x for x in map(as_number, values) if not math.isnan(x)]
    b = [x for x in map(as_number, boot_stds) if not math.isnan(x)]
    n = len(v)
    mean = sum(v) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else math.nan
    boot_var = sum(x * x for x in b) / len(b) if b else math.nan
    terms = [t for t in (std**2 / n if n > 1 else math.nan, boot_var) if not math.isnan(t)]
    se = math.sqrt(sum(terms)) if terms and n else math.nan
    return {"mean": mean, "std": std, "boot_std": math.sqrt(boot_var) if b else math.nan, "se": se, "n": n}


def not_separable(a: dict[str, Any], b: dict[str, Any], k: float = SEPARATION) -> bool:
    """True when |a − b| ≤ k·sqrt(SE_a² + SE_b²); False when neither has an uncertainty (unknown)."""
    known = [c["se"] for c in (a, b) if not math.isnan(as_number(c.get("se")))]
    if not known or math.isnan(a["mean"]) or math.isnan(b["mean"]):
        return False
    # bool(): numpy scalars in, a JSON-serialisable answer out; the factor forgives rounding at the edge
    return bool(abs(a["mean"] - b["mean"]) <= k * math.sqrt(sum(s * s for s in known)) * (1 + 1e-12))


# -- the long frame --------------------------------------------------------------------------------
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
    """One row per (result, score), after ``latest_per_identity``; ``boot_std`` is NaN and ``flags``
    empty for results written before those fields existed."""
    rows = []
    for r in latest_per_identity(records):
        boot = r.get("bootstrap_std") if isinstance(r.get("bootstrap_std"), dict) else {}
        flags = tuple(sorted({str(f) for f in (r.get("flags") or [])}))
        card = model_card(r)
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
                "boot_std": as_number(boot.get(metric)),
                "flags": flags,
                "higher_is_better": r["higher_is_better"].get(metric),
                "is_main": metric == r["main_score"],
                "model": card,
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


AGG_COLUMNS = ["row", "task", "protocol", "label_budget", "metric", "mean", "std", "boot_std", "se", "n", "flags",
               "higher_is_better"]


def aggregate(df: pd.DataFrame, all_metrics: bool) -> pd.DataFrame:
    """Mean, seed std, bootstrap std, standard error, seed count and flags per (row, column), with the
    column's direction."""
    if not all_metrics:
        df = df[df["is_main"]]
    df = df[~df["metric"].str.endswith("_std")]  # spreads over repeats are in the seeds' spread already
    df = df.assign(row=row_labels(df))
    out = []
    # sort=False: label budgets mix numbers and "all"; build_table orders the columns itself
    for (row, task, protocol, budget, metric), g in df.groupby(["row", "task", "protocol", "label_budget", "metric"],
                                                                 sort=False):
        hib = g["higher_is_better"].dropna()
        out.append({"row": row, "task": task, "protocol": protocol, "label_budget": budget, "metric": metric,
                    **combine_uncertainty(g["value"], g["boot_std"]),
                    "flags": sorted(set().union(*g["flags"])),
                    "higher_is_better": bool(hib.iloc[0]) if len(hib) else None})
    return pd.DataFrame(out, columns=AGG_COLUMNS)


def row_labels(df: pd.DataFrame) -> pd.Series:
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


def has_direction(hib: Any) -> bool:
    return hib is not None and not (isinstance(hib, float) and math.isnan(hib))


@dataclass
class Ranking:
    """How the rows are ranked (``build_table``): coverage of tasks first, ``coverage[row]`` being
    how many of the ``n_ranked`` tasks with a ranked column (a metric with a better direction) a row
    has any ranked column of; then the mean of its per-column ranks over the columns it has. Tasks,
    not columns: a protocol a row was not run with (the references fine-tune only the
    networks, not the baselines) must not push it below the rows that have one, while a row measured on one task of
    four never outranks a row measured on all."""

    coverage: dict[str, int]
    n_ranked: int

    def legend(self) -> str:
        """The footer line saying how the rank is made, naming the rows that miss tasks."""
        if self.n_ranked == 0:
            return "rank: no column has a better direction, so rows are in name order"
        text = (f"rank: rows with all {self.n_ranked} ranked task(s) first, then by how many they have; "
                "within each, the mean of the per-column ranks over the columns a row has")
        partial = [f"{row} ({k} of {self.n_ranked})" for row, k in self.coverage.items() if k < self.n_ranked]
        if partial:
            text += "; missing tasks: " + ", ".join(partial)
        return text


def build_table(agg: pd.DataFrame, show_budget: bool | None = None
                ) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]], Ranking]:
    """Rows, columns, cells {mean, std, boot_std, se, n, flags, best, near_best} and the ranking.

    Coverage first: rows with a ranked column in every task come first, then rows with fewer tasks,
    so a row with one good column never outranks a row measured everywhere; within the same
    coverage, by mean rank over the columns a row has. ``near_best``: not the best, and not separable from it."""
    if show_budget is None:
        show_budget = agg["label_budget"].nunique() > 1
    agg = agg.assign(column=[column_label(t, p, b, m, show_budget) for t, p, b, m in
                             zip(agg["task"], agg["protocol"], agg["label_budget"], agg["metric"])])
    columns = list(dict.fromkeys(agg.sort_values(["task", "protocol", "label_budget", "metric"], key=sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    all_rows = list(dict.fromkeys(agg["row"]))
    ranked_groups: list[tuple[pd.DataFrame, int]] = []
    tasks_of: dict[str, set[str]] = {row: set() for row in all_rows}
    for column, group in agg.groupby("column"):
        hib = group["higher_is_better"].iloc[0]
        here = []
        for _, r in group.iterrows():
            cell = {k: r[k] for k in ("mean", "std", "boot_std", "se")}
            cell.update(n=int(r["n"]), flags=list(r["flags"]), best=False, near_best=False,
                        higher_is_better=bool(hib) if has_direction(hib) else None)
            cells[(r["row"], column)] = cell
            here.append(cell)
        if not has_direction(hib):
            continue  # a metric without a better direction (a signed bias) is shown, never ranked or marked
        direction = 1 if hib else -1
        mark_best(here, direction)
        measured = group[group["mean"].notna()]
        ranked_groups.append((measured, direction))
        for row, task in zip(measured["row"], measured["task"]):
            tasks_of[row].add(task)
    ranks: dict[str, list[float]] = {row: [] for row in all_rows}
    for group, direction in ranked_groups:  # 1 = best; ties share the lower rank
        for row, rank in zip(group["row"], (group["mean"] * -direction).rank(method="min")):
            ranks[row].append(float(rank))
    mean_rank = {row: sum(v) / len(v) if v else math.inf for row, v in ranks.items()}
    ordered = sorted(all_rows, key=lambda row: (-len(tasks_of[row]), mean_rank[row], row))
    n_tasks = len(set().union(*tasks_of.values())) if tasks_of else 0
    ranking = Ranking(coverage={row: len(tasks_of[row]) for row in ordered}, n_ranked=n_tasks)
    return ordered, columns, cells, ranking


def mark_best(cells: list[dict[str, Any]], direction: int) -> None:
    """Set ``best`` (the best mean, ties included) and ``near_best`` (not separable from a best)."""
    finite = [c["mean"] * direction for c in cells if not math.isnan(c["mean"])]
    if not finite:
        return
    top = max(finite)
    best = [c for c in cells if not math.isnan(c["mean"])
            and math.isclose(c["mean"] * direction, top, rel_tol=1e-12, abs_tol=1e-15)]
    for c in cells:
        c["best"] = any(c is b for b in best)
        c["near_best"] = not c["best"] and any(not_separable(c, b) for b in best)


def sort_key(series: pd.Series) -> pd.Series:
    if series.name == "label_budget":  # numeric order, "all" last
        return series.map(budget_order)
    return series.astype(str)


def budget_order(budget: Any) -> float:
    """Sort key of a label budget: its number, ``all`` (every label) after every number."""
    if budget is None or str(budget) == "all":
        return math.inf
    return float(budget)


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
