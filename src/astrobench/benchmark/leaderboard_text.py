"""The leaderboard's numbers and marks as text, shared by every view and by ``compare``: the
precision of a column, a cell's ``≈! mean ± SE``, the headers (arrows, short metric names, the
terminal's stacked labels) and the legend lines under a table."""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable

import pandas as pd

from astrobench.benchmark.leaderboard_table import SEPARATION, as_number, has_direction
from astrobench.benchmark.table_formats import BOLD

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


def flag_marks(flags: Iterable[str]) -> str:
    return "".join(sorted({FLAG_MARKS.get(f, (OTHER_FLAG_MARK, f))[0] for f in flags}))


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
    ses = [s for s in (as_number(c.get("se")) for c in cells) if not math.isnan(s) and s > 0]
    if ses:
        return decimals_for(statistics.median(ses))
    values = [abs(m) for m in (as_number(c.get("mean")) for c in cells) if not math.isnan(m) and m != 0]
    return max(0, 3 - math.floor(math.log10(max(values)))) if values else 2


def _fixed(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _se_text(se: float, decimals: int, mean: float = 0.0) -> str:
    text = _fixed(se, decimals)
    # Float rounding of a constant (a 0.5 balanced accuracy's bootstrap, say) is zero, not a digit to show.
    if se <= 1e-9 * max(1.0, abs(mean)):
        return text
    if float(text) == 0:  # below the column's precision: one significant digit, never "0.000"
        text = _fixed(se, -math.floor(math.log10(se)))
    return text


def cell_text(cell: dict[str, Any] | None, decimals: int) -> str:
    """``≈! 0.0493 ± 0.0026``: marks first (so numbers stay aligned), then mean ± SE."""
    if cell is None:
        return "–"
    mean, se = as_number(cell["mean"]), as_number(cell.get("se"))
    text = "–" if math.isnan(mean) else _fixed(mean, decimals)
    if not math.isnan(se) and not math.isnan(mean):
        text += f" ± {_se_text(se, decimals, mean)}"
    prefix = (NEAR_BEST_MARK if cell.get("near_best") else "") + flag_marks(cell.get("flags") or [])
    return f"{prefix} {text}" if prefix else text


def metric_header(metric: str, hib: Any, short: bool = False) -> str:
    return (METRIC_LABELS.get(metric, metric) if short else metric) + arrow(hib)


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


# -- headers and cells in the tables ----------------------------------------------------------------
def arrow(hib: Any) -> str:
    return "" if not has_direction(hib) else " ↑" if hib else " ↓"


def stacked_header(column: str, hib: Any) -> str:
    """A column label on three short lines for the terminal: task / protocol (and budget) / metric."""
    parts = column.split(" · ")
    return "\n".join([parts[0], " ".join(parts[1:-1]), metric_header(parts[-1], hib, short=True)])


def cell_css(cell: dict[str, Any] | None) -> str:
    if not cell:
        return ""
    return "best" if cell.get("best") else "near-best" if cell.get("near_best") else ""


def clean_cell(cell: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in cell.items()}


def column_formats(rows: list[str], columns: list[str], cells: dict[tuple[str, str], dict[str, Any]]
                   ) -> tuple[dict[str, int], dict[str, Any]]:
    """Per column, its precision (``column_decimals``) and its direction (its first cell's)."""
    column_cells = {c: [cells[(r, c)] for r in rows if (r, c) in cells] for c in columns}
    decimals = {c: column_decimals(column_cells[c]) for c in columns}
    hib = {c: column_cells[c][0]["higher_is_better"] if column_cells[c] else None for c in columns}
    return decimals, hib


def cells_csv(entries: list[dict[str, Any]], rows: list[str], columns: list[str],
              cells: dict[tuple[str, str], dict[str, Any]], keys: Iterable[str]) -> str:
    """CSV of a table: per row its leading fields (``entries``), then per column each of ``keys``
    and the flags, as raw values (never marks)."""
    keys = list(keys)
    flat = []
    for entry, row in zip(entries, rows):
        for c in columns:
            cell = cells.get((row, c)) or {}
            for key in keys:
                entry[f"{c} {key}"] = cell.get(key)
            entry[f"{c} flags"] = ";".join(cell.get("flags") or [])
        flat.append(entry)
    return pd.DataFrame(flat, dtype=object).to_csv(index=False)  # object: counts stay integers beside gaps
