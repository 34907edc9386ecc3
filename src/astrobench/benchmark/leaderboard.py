"""Leaderboards from the results store only: records -> long DataFrame -> pivot -> rendered table.

Rows are method configurations (method name, plus the config hash when one name and tag has
several configs, plus the tag). Every cell is the mean of the main score over seeds with its
uncertainty, the standard error of that mean::

    SE² = s² / n + mean_i(b_i²)

where ``s`` is the standard deviation (ddof=1) of the ``n`` per-seed scores and ``b_i`` the
bootstrap standard deviation of seed ``i``'s score over the test objects (``bootstrap_std`` in the
result). The test objects are the same in every seed (the split is by object id), so their
sampling noise is shared by the seeds and does not shrink with ``n``, while the seed-to-seed spread
does. A result without ``bootstrap_std`` (older results) contributes the seed term only; a cell with
one seed and no bootstrap has no uncertainty and shows none.

Marks, direction-aware (``higher_is_better`` is stored with every result; ↑/↓ in the headers):
- the best mean per column in bold (``*`` in plain-text output, where bold does not show);
- ``≈``: a cell whose difference to the best is within 2 combined standard errors,
  |Δ| ≤ 2·sqrt(SE² + SE_best²): not separable from the best. The methods share the test objects,
  so part of the test-sample noise cancels in a difference: the mark errs towards "not separable";
  ``astrobench compare`` runs the paired test over seeds (``benchmark/compare.py``);
- flags stored with a result (in any of the cell's seeds): ``!`` constant predictions, ``†`` the
  pretraining loss never fell, ``‡`` any other flag (named in the legend).
Rank: coverage first (rows with every column that has a better direction, then rows with fewer),
then the mean of a row's per-column ranks over the columns it has: one good cell never outranks a
row measured everywhere. The footer says so and names the rows that miss columns. Each row also carries its model card (``model_card.py``: backbone,
parameters, embedding size, images seen): a block of columns in the terminal, a legend line in the
page formats, a ``model`` field in JSON.
Each column shows its numbers to one precision, chosen from the column's median standard error
(one or two significant digits of it, the Particle Data Group's rounding rule). CSV and JSON carry
the raw numbers (mean, seed std, bootstrap std, SE, n) and the flags as fields, never as marks.

Views (``render(..., view=...)``):
- ``table``: the leaderboard above.
- ``curves``: label efficiency: rows methods, one column per task · protocol · main score · label
  budget, budgets in numeric order (``all`` last).
- ``ablation``: rows are the tags of one method (ablation variants such as ``full``, ``-GN``,
  ``only-RR``); per column the main score and its change Δ against the ``full`` variant (or the
  untagged one), with Δ's spread over seeds (paired by seed where both variants have that seed);
  a Δ is bold only when it exceeds 2 standard errors of the change (see ``ablation_table``).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from astrobench.benchmark.table_formats import BOLD, Grid, emit
from astrobench.benchmark.model_card import CARD_FIELDS, CARD_HEADERS, card_texts, model_card

FORMATS = ("rich", "md", "csv", "latex", "json", "html")
VIEWS = ("table", "curves", "ablation")

SEPARATION = 2.0  # standard errors: a difference within this many is "not separable"
NEAR_BEST_MARK = "≈"
FLAG_MARKS = {  # flag stored in a result -> (mark on the cell, legend text)
    "constant_predictions": ("!", "constant predictions"),
    "loss_not_decreasing": ("†", "pretraining loss never fell"),
}
OTHER_FLAG_MARK = "‡"
METRIC_LABELS = {  # short names for the terminal, where width is scarce
    "sigma_mad": "σ_MAD", "eta_percent": "η %", "mean_average_precision": "mAP", "roc_auc": "ROC-AUC",
    "abs_bias": "|bias|", "dwarf_search_fraction": "dwarf@25",
}


# -- uncertainty -----------------------------------------------------------------------------------
def _number(value: Any) -> float:
    """A finite float, else NaN (missing, None, text, inf: never a made-up number)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def combine_uncertainty(values: Iterable[Any], boot_stds: Iterable[Any] = ()) -> dict[str, Any]:
    """Mean over seeds and its standard error (module docstring): {mean, std, boot_std, se, n}.

    ``values`` are the per-seed scores, ``boot_stds`` their bootstrap standard deviations over the
    test objects (NaN or absent where a result has none). ``std`` is the seed spread (ddof=1),
    ``boot_std`` the root mean square of the known bootstrap stds; NaN where unknown.
    """
    v = [x for x in map(_number, values) if not math.isnan(x)]
    b = [x for x in map(_number, boot_stds) if not math.isnan(x)]
    n = len(v)
    mean = sum(v) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else math.nan
    boot_var = sum(x * x for x in b) / len(b) if b else math.nan
    terms = [t for t in (std**2 / n if n > 1 else math.nan, boot_var) if not math.isnan(t)]
    se = math.sqrt(sum(terms)) if terms and n else math.nan
    return {"mean": mean, "std": std, "boot_std": math.sqrt(boot_var) if b else math.nan, "se": se, "n": n}


def not_separable(a: dict[str, Any], b: dict[str, Any], k: float = SEPARATION) -> bool:
    """True when |a − b| ≤ k·sqrt(SE_a² + SE_b²); False when neither has an uncertainty (unknown)."""
    known = [c["se"] for c in (a, b) if not math.isnan(_number(c.get("se")))]
    if not known or math.isnan(a["mean"]) or math.isnan(b["mean"]):
        return False
    # bool(): numpy scalars in, a JSON-serialisable answer out; the factor forgives rounding at the edge
    return bool(abs(a["mean"] - b["mean"]) <= k * math.sqrt(sum(s * s for s in known)) * (1 + 1e-12))


def flag_marks(flags: Iterable[str]) -> str:
    return "".join(sorted({FLAG_MARKS.get(f, (OTHER_FLAG_MARK, f))[0] for f in flags}))


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
                "boot_std": _number(boot.get(metric)),
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
    df = df.assign(row=_row_labels(df))
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


def _has_direction(hib: Any) -> bool:
    return hib is not None and not (isinstance(hib, float) and math.isnan(hib))


@dataclass
class Ranking:
    """How the rows are ranked (``build_table``): coverage first, ``coverage[row]`` being how many
    of the ``n_ranked`` ranked columns (those whose metric has a better direction) a row has; then
    the mean of its per-column ranks over the columns it has."""

    coverage: dict[str, int]
    n_ranked: int

    def legend(self) -> str:
        """The footer line saying how the rank is made, naming the rows that miss columns."""
        if self.n_ranked == 0:
            return "rank: no column has a better direction, so rows are in name order"
        text = (f"rank: rows with all {self.n_ranked} ranked column(s) first, then by how many they have; "
                "within each, the mean of the per-column ranks")
        partial = [f"{row} ({k} of {self.n_ranked})" for row, k in self.coverage.items() if k < self.n_ranked]
        if partial:
            text += "; missing columns: " + ", ".join(partial)
        return text


def build_table(agg: pd.DataFrame, show_budget: bool | None = None
                ) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]], Ranking]:
    """Rows, columns, cells {mean, std, boot_std, se, n, flags, best, near_best} and the ranking.

    Coverage first: rows with every ranked column come first, then rows with fewer, so a row with
    one good column never outranks a row measured everywhere; within the same coverage, by mean
    rank over the columns a row has. ``near_best``: not the best, and not separable from it."""
    if show_budget is None:
        show_budget = agg["label_budget"].nunique() > 1
    agg = agg.assign(column=[column_label(t, p, b, m, show_budget) for t, p, b, m in
                             zip(agg["task"], agg["protocol"], agg["label_budget"], agg["metric"])])
    columns = list(dict.fromkeys(agg.sort_values(["task", "protocol", "label_budget", "metric"], key=_sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    all_rows = list(dict.fromkeys(agg["row"]))
    ranked_groups: list[tuple[pd.DataFrame, int]] = []
    for column, group in agg.groupby("column"):
        hib = group["higher_is_better"].iloc[0]
        here = []
        for _, r in group.iterrows():
            cell = {k: r[k] for k in ("mean", "std", "boot_std", "se")}
            cell.update(n=int(r["n"]), flags=list(r["flags"]), best=False, near_best=False,
                        higher_is_better=bool(hib) if _has_direction(hib) else None)
            cells[(r["row"], column)] = cell
            here.append(cell)
        if not _has_direction(hib):
            continue  # a metric without a better direction (a signed bias) is shown, never ranked or marked
        direction = 1 if hib else -1
        _mark_best(here, direction)
        ranked_groups.append((group[group["mean"].notna()], direction))
    ranks: dict[str, list[float]] = {row: [] for row in all_rows}
    for group, direction in ranked_groups:  # 1 = best; ties share the lower rank
        for row, rank in zip(group["row"], (group["mean"] * -direction).rank(method="min")):
            ranks[row].append(float(rank))
    mean_rank = {row: sum(v) / len(v) if v else math.inf for row, v in ranks.items()}
    ordered = sorted(all_rows, key=lambda row: (-len(ranks[row]), mean_rank[row], row))
    ranking = Ranking(coverage={row: len(ranks[row]) for row in ordered}, n_ranked=len(ranked_groups))
    return ordered, columns, cells, ranking


def _mark_best(cells: list[dict[str, Any]], direction: int) -> None:
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


def _sort_key(series: pd.Series) -> pd.Series:
    if series.name == "label_budget":  # numeric order, "all" last
        return series.map(budget_order)
    return series.astype(str)


def budget_order(budget: Any) -> float:
    """Sort key of a label budget: its number, ``all`` (every label) after every number."""
    if budget is None or str(budget) == "all":
        return math.inf
    return float(budget)


# -- numbers as text -------------------------------------------------------------------------------
def decimals_for(se: float) -> int:
    """Decimals that show ``se`` with the Particle Data Group's rule: two significant digits when
    its three leading digits are 100-354, one when 355-949; 950-999 round up to two digits of the
    next power of ten (0.0096 -> 0.010)."""
    exponent = math.floor(math.log10(se))
    leading = se / 10.0**exponent * 100
    # 950-999 need no case of their own: at these decimals they round to 0.010-style
    return max(0, 1 - exponent) if leading < 354.5 else max(0, -exponent)


def column_decimals(cells: Iterable[dict[str, Any]]) -> int:
    """One precision per column: from the median standard error of its cells, else four
    significant digits of its largest value."""
    cells = list(cells)
    ses = [s for s in (_number(c.get("se")) for c in cells) if not math.isnan(s) and s > 0]
    if ses:
        return decimals_for(statistics.median(ses))
    values = [abs(m) for m in (_number(c.get("mean")) for c in cells) if not math.isnan(m) and m != 0]
    return max(0, 3 - math.floor(math.log10(max(values)))) if values else 2


def _fixed(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _se_text(se: float, decimals: int) -> str:
    text = _fixed(se, decimals)
    if se > 0 and float(text) == 0:  # below the column's precision: one significant digit, never "0.000"
        text = _fixed(se, -math.floor(math.log10(se)))
    return text


def cell_text(cell: dict[str, Any] | None, decimals: int) -> str:
    """``≈! 0.0493 ± 0.0026``: marks first (so numbers stay aligned), then mean ± SE."""
    if cell is None:
        return "–"
    mean, se = _number(cell["mean"]), _number(cell.get("se"))
    text = "–" if math.isnan(mean) else _fixed(mean, decimals)
    if not math.isnan(se) and not math.isnan(mean):
        text += f" ± {_se_text(se, decimals)}"
    prefix = (NEAR_BEST_MARK if cell.get("near_best") else "") + flag_marks(cell.get("flags") or [])
    return f"{prefix} {text}" if prefix else text


def metric_header(metric: str, hib: Any, short: bool = False) -> str:
    return (METRIC_LABELS.get(metric, metric) if short else metric) + _arrow(hib)


def legend_lines(cells: Iterable[dict[str, Any]], what: str = "mean ± standard error over seeds") -> list[str]:
    """The lines under a table saying what its numbers and marks mean (flags only when present)."""
    cells = list(cells)
    lines = [f"{what}, SE² = var(seeds) / n + mean bootstrap variance over the test objects (the seed "
             "term alone where results have no bootstrap)",
             f"↑ higher is better, ↓ lower is better; {BOLD}: best in column; {NEAR_BEST_MARK}: within "
             f"{SEPARATION:g} SE of the best (not separable)"]
    flags = sorted({f for c in cells for f in (c.get("flags") or [])})
    if flags:
        mark, text = zip(*(FLAG_MARKS.get(f, (OTHER_FLAG_MARK, f.replace("_", " "))) for f in flags))
        lines.append("; ".join(f"{m} {t}" for m, t in zip(mark, text)) + " (in at least one seed)")
    return lines


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
    """Render the leaderboard of ``records``; returns a string (or a rich renderable for ``rich``).

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
    rows, columns, cells, ranking = build_table(agg, show_budget=True if view == "curves" else None)
    labels = _row_labels(df)
    seeds = df.groupby(labels)["seed"].nunique()
    cards = _row_cards(df, labels)
    if fmt == "json":
        return json.dumps([
            {"rank": i + 1, "coverage": ranking.coverage[row], "method": row, "seeds": int(seeds[row]),
             "model": cards[row], "scores": {c: _clean(cells[(row, c)]) for c in columns if (row, c) in cells}}
            for i, row in enumerate(rows)
        ], indent=2)
    if fmt == "csv":
        flat = []
        for i, row in enumerate(rows):
            entry = {"rank": i + 1, "method": row, "seeds": int(seeds[row])}
            for c in columns:
                cell = cells.get((row, c)) or {}
                for key in ("mean", "std", "boot_std", "se", "n", "best", "near_best"):
                    entry[f"{c} {key}"] = cell.get(key)
                entry[f"{c} flags"] = ";".join(cell.get("flags") or [])
            flat.append(entry)
        return pd.DataFrame(flat, dtype=object).to_csv(index=False)  # object: counts stay integers beside gaps
    column_cells = {c: [cells[(r, c)] for r in rows if (r, c) in cells] for c in columns}
    decimals = {c: column_decimals(column_cells[c]) for c in columns}
    hib = {c: column_cells[c][0]["higher_is_better"] if column_cells[c] else None for c in columns}
    # the model card: a block of its own in the terminal; one legend line in the page formats,
    # whose tables keep one column per score
    terminal = fmt == "rich"
    card_width = len(CARD_FIELDS) if terminal else 0
    body, bold, classes = [], [], []
    for i, row in enumerate(rows):
        found = [cells.get((row, c)) for c in columns]
        card = card_texts(cards[row]) if terminal else []
        body.append([str(i + 1), row, str(int(seeds[row])),
                     *[cell_text(cell, decimals[c]) for cell, c in zip(found, columns)], *card])
        bold.append([False] * 3 + [bool(cell and cell["best"]) for cell in found] + [False] * card_width)
        classes.append([""] * 3 + [_css(cell) for cell in found] + [""] * card_width)
    card_legend = ("model: backbone, params (parameters of the encoder), dim (embedding size), images seen "
                   "(pretraining steps x global batch); – where the result does not say")
    if not terminal:
        card_legend += ". " + "; ".join(f"{row}: " + ", ".join(f"{CARD_HEADERS[k]} {t}" for k, t in
                                                            zip(CARD_FIELDS, card_texts(cards[row]))) for row in rows)
    legend = [*legend_lines(cells.values()), ranking.legend(), card_legend]
    if view == "curves":
        title = "astrobench label efficiency"
        legend = ["main score per label budget (n = labelled training objects, all = every one)", *legend]
    else:
        title = "astrobench leaderboard"
    card_headers = [CARD_HEADERS[k] for k in CARD_FIELDS] if terminal else []
    first_card = 3 + len(columns)
    grid = Grid(header=["rank", "method", "seeds", *[f"{c}{_arrow(hib[c])}" for c in columns], *card_headers],
                rich_header=["#", "method", "seeds", *[_stacked(c, hib[c]) for c in columns],
                             *[h.replace(" ", "\n") for h in card_headers]],
                body=body, bold=bold, classes=classes, title=title, legend=legend, uniform_in_title=(2,),
                left=(1, first_card), css_class="leaderboard" if view == "table" else f"leaderboard {view}")
    return emit(fmt, grid)


def _row_cards(df: pd.DataFrame, labels: pd.Series) -> dict[str, dict[str, Any]]:
    """The model card of each row (its results share one method configuration: the first one's)."""
    cards: dict[str, dict[str, Any]] = {}
    for label, card in zip(labels, df["model"]):
        cards.setdefault(label, card)
    return cards


def _arrow(hib: Any) -> str:
    return "" if not _has_direction(hib) else " ↑" if hib else " ↓"


def _stacked(column: str, hib: Any) -> str:
    """A column label on three short lines for the terminal: task / protocol (and budget) / metric."""
    parts = column.split(" · ")
    return "\n".join([parts[0], " ".join(parts[1:-1]), metric_header(parts[-1], hib, short=True)])


def _css(cell: dict[str, Any] | None) -> str:
    if not cell:
        return ""
    return "best" if cell.get("best") else "near-best" if cell.get("near_best") else ""


def _clean(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in cell.items()}


# -- ablation view ---------------------------------------------------------------------------------
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
    columns = list(dict.fromkeys(df.sort_values(["task", "protocol", "label_budget", "metric"], key=_sort_key)["column"]))
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
            _mark_best(here, direction)
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
                for key in ("mean", "std", "boot_std", "se", "delta", "delta_std", "delta_se", "significant", "best",
                            "near_best"):
                    entry[f"{c} {key}"] = cell.get(key)
                entry[f"{c} flags"] = ";".join(cell.get("flags") or [])
            flat.append(entry)
        return pd.DataFrame(flat, dtype=object).to_csv(index=False)  # object: counts stay integers beside gaps
    column_cells = {c: [cells[(r, c)] for r in rows if (r, c) in cells] for c in columns}
    decimals = {c: column_decimals(column_cells[c]) for c in columns}
    hib = {c: column_cells[c][0]["higher_is_better"] if column_cells[c] else None for c in columns}
    header, rich_header = ["#", f"tag ({method})", "seeds"], ["#", f"tag ({method})", "seeds"]
    for c in columns:
        header += [f"{c}{_arrow(hib[c])}", f"Δ vs {baseline}"]
        rich_header += [_stacked(c, hib[c]), f"Δ vs\n{baseline}"]
    body, bold, classes = [], [], []
    for i, row in enumerate(rows):
        texts, marks, css = [str(i + 1), row, str(table["seeds"][row])], [False] * 3, [""] * 3
        for c in columns:
            cell = cells.get((row, c))
            texts.append(cell_text(cell, decimals[c]))
            marks.append(bool(cell and cell["best"]))
            css.append(_css(cell))
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
