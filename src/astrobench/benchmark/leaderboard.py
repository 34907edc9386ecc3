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
Rank: coverage of tasks first (rows with a ranked column in every task, then rows with fewer tasks),
then the mean of a row's per-column ranks over the columns it has: one good cell never outranks a
row measured on every task, and a protocol a row was not run with (the references fine-tune only
the networks) does not push it down. The footer says so and names the rows that miss tasks. Each row also carries its model card (``model_card.py``: backbone,
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
from typing import Any

import pandas as pd

from astrobench.benchmark.leaderboard_ablation import BASELINE_TAGS, ablation_table, render_ablation, tag_label
from astrobench.benchmark.leaderboard_table import (
    AGG_COLUMNS, SEPARATION, Ranking, aggregate, budget_order, build_table, column_label, combine_uncertainty,
    filter_frame, latest_per_identity, not_separable, results_frame, row_labels, select,
)
from astrobench.benchmark.leaderboard_text import (
    FLAG_MARKS, METRIC_LABELS, NEAR_BEST_MARK, OTHER_FLAG_MARK, arrow, cell_css, cell_text, cells_csv, clean_cell,
    column_decimals, column_formats, decimals_for, flag_marks, legend_lines, metric_header, stacked_header,
)
from astrobench.benchmark.model_card import CARD_FIELDS, CARD_HEADERS, card_texts
from astrobench.benchmark.table_formats import Grid, emit

# The entry point of the leaderboard: ``render`` here; the table model (leaderboard_table), the
# numbers as text (leaderboard_text) and the ablation view (leaderboard_ablation) below it, whose
# public names callers import from here.
__all__ = [
    "FORMATS", "VIEWS", "render", "select",
    "AGG_COLUMNS", "SEPARATION", "Ranking", "aggregate", "budget_order", "build_table", "column_label",
    "combine_uncertainty", "filter_frame", "latest_per_identity", "not_separable", "results_frame",
    "FLAG_MARKS", "METRIC_LABELS", "NEAR_BEST_MARK", "OTHER_FLAG_MARK", "cell_text", "column_decimals",
    "decimals_for", "flag_marks", "legend_lines", "metric_header",
    "BASELINE_TAGS", "ablation_table", "tag_label",
]

FORMATS = ("rich", "md", "csv", "latex", "json", "html")
VIEWS = ("table", "curves", "ablation")


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
        return render_ablation(ablation_table(df, all_metrics), fmt)
    agg = aggregate(df, all_metrics)
    rows, columns, cells, ranking = build_table(agg, show_budget=True if view == "curves" else None)
    labels = row_labels(df)
    seeds = df.groupby(labels)["seed"].nunique()
    cards = _row_cards(df, labels)
    if fmt == "json":
        return json.dumps([
            {"rank": i + 1, "coverage": ranking.coverage[row], "method": row, "seeds": int(seeds[row]),
             "model": cards[row], "scores": {c: clean_cell(cells[(row, c)]) for c in columns if (row, c) in cells}}
            for i, row in enumerate(rows)
        ], indent=2)
    if fmt == "csv":
        return cells_csv([{"rank": i + 1, "method": row, "seeds": int(seeds[row])} for i, row in enumerate(rows)],
                         rows, columns, cells, ("mean", "std", "boot_std", "se", "n", "best", "near_best"))
    decimals, hib = column_formats(rows, columns, cells)
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
        classes.append([""] * 3 + [cell_css(cell) for cell in found] + [""] * card_width)
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
    grid = Grid(header=["rank", "method", "seeds", *[f"{c}{arrow(hib[c])}" for c in columns], *card_headers],
                rich_header=["#", "method", "seeds", *[stacked_header(c, hib[c]) for c in columns],
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
