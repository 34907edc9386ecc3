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


def build_table(agg: pd.DataFrame, show_budget: bool | None = None
                ) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]]]:
    """Rows, columns and cells {mean, std, boot_std, se, n, flags, best, near_best}; rows ranked by
    mean rank over columns. ``near_best``: not the best, and not separable from it."""
    if show_budget is None:
        show_budget = agg["label_budget"].nunique() > 1
    agg = agg.assign(column=[column_label(t, p, b, m, show_budget) for t, p, b, m in
                             zip(agg["task"], agg["protocol"], agg["label_budget"], agg["metric"])])
    columns = list(dict.fromkeys(agg.sort_values(["task", "protocol", "label_budget", "metric"], key=_sort_key)["column"]))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    ranks: dict[str, list[float]] = {}
    for column, group in agg.groupby("column"):
        hib = group["higher_is_better"].iloc[0]
        here = []
        for _, r in group.iterrows():
            cell = {k: r[k] for k in ("mean", "std", "boot_std", "se")}
            cell.update(n=int(r["n"]), flags=list(r["flags"]), best=False, near_best=False,
                        higher_is_better=bool(hib) if _has_direction(hib) else None)
            cells[(r["row"], column)] = cell
            here.append(cell)
            ranks.setdefault(r["row"], [])
        if not _has_direction(hib):
            continue  # a metric without a better direction (a signed bias) is shown, never ranked or marked
        direction = 1 if hib else -1
        _mark_best(here, direction)
        ranked = (group["mean"] * -direction).rank(method="min")
        for row, rank in zip(group["row"], ranked):
            ranks[row].append(float(rank))
    mean_rank = {row: sum(v) / len(v) if v else math.inf for row, v in ranks.items()}
    rows = sorted(ranks, key=lambda row: (mean_rank[row], row))
    return rows, columns, cells


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
                cell = cells.get((row, c)) or {}
                for key in ("mean", "std", "boot_std", "se", "n", "best", "near_best"):
                    entry[f"{c} {key}"] = cell.get(key)
                entry[f"{c} flags"] = ";".join(cell.get("flags") or [])
            flat.append(entry)
        return pd.DataFrame(flat, dtype=object).to_csv(index=False)  # object: counts stay integers beside gaps
    column_cells = {c: [cells[(r, c)] for r in rows if (r, c) in cells] for c in columns}
    decimals = {c: column_decimals(column_cells[c]) for c in columns}
    hib = {c: column_cells[c][0]["higher_is_better"] if column_cells[c] else None for c in columns}
    body, bold, classes = [], [], []
    for i, row in enumerate(rows):
        found = [cells.get((row, c)) for c in columns]
        body.append([str(i + 1), row, str(int(seeds[row])), *[cell_text(cell, decimals[c]) for cell, c in zip(found, columns)]])
        bold.append([False] * 3 + [bool(cell and cell["best"]) for cell in found])
        classes.append([""] * 3 + [_css(cell) for cell in found])
    legend = legend_lines(cells.values())
    if view == "curves":
        title = "astrobench label efficiency"
        legend = ["main score per label budget (n = labelled training objects, all = every one)", *legend]
    else:
        title = "astrobench leaderboard"
    grid = Grid(header=["rank", "method", "seeds", *[f"{c}{_arrow(hib[c])}" for c in columns]],
                rich_header=["#", "method", "seeds", *[_stacked(c, hib[c]) for c in columns]],
                body=body, bold=bold, classes=classes, title=title, legend=legend, uniform_in_title=(2,),
                css_class="leaderboard" if view == "table" else f"leaderboard {view}")
    return _emit(fmt, grid)


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


# -- output formats --------------------------------------------------------------------------------
BOLD = "{bold}"  # in legend lines: "bold", or the plain-text mark where styles do not show
PLAIN_BOLD_MARK = "*"


@dataclass
class Grid:
    """A table of text cells for ``_emit``: ``header`` for Markdown/LaTeX/HTML, ``rich_header`` (may
    hold line breaks) for the terminal; the first ``n_fixed`` columns name the row and are repeated in
    every block of a terminal table too wide for the screen; ``groups`` are column indices kept in
    one block (default: each column alone)."""

    header: list[str]
    body: list[list[str]]
    bold: list[list[bool]]
    title: str
    legend: list[str]
    css_class: str = "leaderboard"
    rich_header: list[str] | None = None
    classes: list[list[str]] | None = None
    n_fixed: int = 3
    groups: list[list[int]] | None = None
    uniform_in_title: tuple[int, ...] = ()  # fixed columns the terminal leaves out when every row agrees
    left: tuple[int, ...] = (1,)  # left-justified columns (names); the others are numbers, right-justified

    def column_groups(self) -> list[list[int]]:
        return self.groups or [[i] for i in range(self.n_fixed, len(self.header))]


def _emit(fmt: str, grid: Grid) -> Any:
    """A grid of text cells (bold where ``grid.bold``) as Markdown, LaTeX, HTML or a rich renderable,
    with its legend under the table."""
    header, body, best = grid.header, grid.body, grid.bold
    legend = [line.replace(BOLD, "bold") for line in grid.legend]
    if fmt == "md":
        mark = lambda text, b: f"**{text}**" if b else text  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(mark(t, b) for t, b in zip(r, bs)) + " |" for r, bs in zip(body, best)]
        return "\n".join(lines) + "\n\n" + "\n\n".join(legend) + "\n"
    if fmt == "latex":
        mark = lambda text, b: rf"\textbf{{{text}}}" if b else text  # noqa: E731
        lines = [r"\begin{tabular}{" + "rlr" + "c" * (len(header) - 3) + "}", r"\toprule",
                 " & ".join(_latex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(mark(_latex(t), b) for t, b in zip(r, bs)) + r" \\" for r, bs in zip(body, best)]
        lines += [r"\bottomrule", r"\end{tabular}", r"\par{\footnotesize " + r"\par ".join(_latex(t) for t in legend) + "}"]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        import html as h

        classes = grid.classes or [[""] * len(r) for r in body]
        def td(text: str, b: bool, css: str) -> str:
            css = css or ("best" if b else "")
            attr = f' class="{css}"' if css else ""
            return f"<td{attr}><b>{h.escape(text)}</b></td>" if b else f"<td{attr}>{h.escape(text)}</td>"
        head = "".join(f"<th>{h.escape(c)}</th>" for c in header)
        trs = "".join("<tr>" + "".join(td(t, b, css) for t, b, css in zip(r, bs, cs)) + "</tr>"
                      for r, bs, cs in zip(body, best, classes))
        caption = "<br>".join(h.escape(t) for t in legend)
        return (f"<table class=\"{grid.css_class}\"><caption style=\"caption-side: bottom; text-align: left\">"
                f"{caption}</caption><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>\n")
    return _Blocks(grid)


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$", "{": r"\{",
          "}": r"\}", "±": r"$\pm$", "·": "/", "Δ": r"$\Delta$", "−": "-", "≈": r"$\approx$", "†": r"$\dagger$",
          "‡": r"$\ddagger$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "²": r"$^2$", "–": "--", "σ": r"$\sigma$",
          "η": r"$\eta$", "|": r"$|$", "√": r"$\surd$"}


def _latex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


class _Blocks:
    """A rich renderable: the table cut into blocks of columns that fit the console's width (the
    row-naming columns repeated in each), the title above and the legend below. Where the output
    shows no styles (a file, a pipe) bold cells get a ``*`` mark instead."""

    def __init__(self, grid: Grid):
        self.grid = grid

    def _omitted(self) -> dict[int, str]:
        """Fixed columns with one value in every row: said once in the title instead ("3 seeds")."""
        g = self.grid
        return {i: g.body[0][i] for i in g.uniform_in_title if g.body and len({r[i] for r in g.body}) == 1}

    def _table(self, columns: list[int], plain: bool):
        from rich import box
        from rich.table import Table
        from rich.text import Text

        g = self.grid
        headers = g.rich_header or g.header
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for i in columns:
            table.add_column(headers[i], justify="left" if i in g.left else "right", no_wrap=i < g.n_fixed)
        for texts, bold in zip(g.body, g.bold):
            cells = []
            for i in columns:
                text = texts[i]
                if bold[i] and plain:
                    text = PLAIN_BOLD_MARK + ("" if text[:1] in "≈!†‡" else " ") + text
                cells.append(Text(text, style="bold" if bold[i] else ""))
            table.add_row(*cells)
        return table

    def _blocks(self, console: Any, options: Any, plain: bool) -> list[list[int]]:
        from rich.measure import Measurement

        fixed = [i for i in range(self.grid.n_fixed) if i not in self._omitted()]
        unbounded = options.update(max_width=10**6)  # Measurement.get clamps to the width it is given
        blocks: list[list[int]] = []
        current: list[int] = []
        for group in self.grid.column_groups():
            trial = current + group
            if current and Measurement.get(console, unbounded, self._table(fixed + trial, plain)).maximum > options.max_width:
                blocks.append(current)
                current = list(group)
            else:
                current = trial
        blocks.append(current)
        return [fixed + block for block in blocks]

    def __rich_console__(self, console: Any, options: Any):
        from rich.text import Text

        plain = console.color_system is None  # styles do not reach this output
        headers = self.grid.rich_header or self.grid.header
        said = [f"{value} {headers[i]}" for i, value in self._omitted().items()]
        yield Text(self.grid.title + "".join(f" · {s}" for s in said), style="bold")
        for block in self._blocks(console, options, plain):
            yield self._table(block, plain)
            yield Text("")
        for line in self.grid.legend:
            yield Text(line.replace(BOLD, PLAIN_BOLD_MARK if plain else "bold"), style="dim")

    def __rich_measure__(self, console: Any, options: Any):
        from rich.measure import Measurement

        whole = self._table(list(range(len(self.grid.header))), False)
        return Measurement.get(console, options, whole).clamp(max_width=options.max_width)


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
    return _emit(fmt, grid)
