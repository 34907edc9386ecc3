"""``astrobench compare A B``: is B better than A, seed by seed?

A and B name rows of the leaderboard in one results folder: ``METHOD``; ``METHOD@CONFIG`` (a prefix
of the config hash) where one method was run with several configurations; ``METHOD:TAG`` (or
``METHOD@CONFIG:TAG``) for tagged runs such as ablation variants. Without ``:TAG`` the untagged
results are meant, as in the leaderboard's row names.

For every (dataset, profile, task, protocol, label budget, metric) that both have (each task's main
score unless metrics are given), the seeds present in both are paired: Δ_s = B_s − A_s. Reported:
the per-seed Δ, their mean and standard deviation (ddof=1), the two-sided paired t-test p-value
(``scipy.stats.ttest_rel``, from two common seeds), significance (p < alpha) and the direction
(better or worse by the metric's ``higher_is_better``; higher or lower where it has none). Where
every per-seed Δ is the same the t statistic is infinite: p = 0 (1 when that Δ is 0).

The t-test sees what changes between seeds (pretraining, the labelled draw), not the sampling of the
test objects, which A and B share. Where the results carry ``bootstrap_std``, ``test_noise`` =
sqrt(b_A² + b_B²) (mean bootstrap variances over the common seeds) bounds the test-sample noise of
Δ from above, and a mean Δ within 2 of it is reported as ``within_test_noise``.

Reading results never runs code: this module reads the JSON files only.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from astrobench.benchmark.leaderboard import (
    SEPARATION, budget_order, combine_uncertainty, decimals_for, filter_frame,
    flag_marks, legend_lines, metric_header, results_frame,
)
from astrobench.benchmark.store import load_results
from astrobench.benchmark.table_formats import Grid, emit

FORMATS = ("rich", "md", "csv", "json")
DEFAULT_ALPHA = 0.05


class SelectionError(LookupError):
    """A or B names nothing (or several things) in the results: a usage error."""


class NothingToCompare(LookupError):
    """A and B exist but share no evaluation or no seed."""


@dataclass(frozen=True)
class Selector:
    text: str
    method: str
    config: str | None
    tag: str  # "" = untagged

    @classmethod
    def parse(cls, text: str) -> "Selector":
        name, _, tag = text.partition(":")
        method, at, config = name.partition("@")
        if not method or (at and not config):
            raise SelectionError(f"{text!r} is not a result name: expected METHOD, METHOD@CONFIG or METHOD[@CONFIG]:TAG")
        return cls(text, method, config or None, tag)


def selector_text(method: str, config_hash: str, tag: str, with_config: bool = True) -> str:
    return method + (f"@{config_hash}" if with_config else "") + (f":{tag}" if tag else "")


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _match(df: pd.DataFrame, sel: Selector, where: str) -> pd.DataFrame:
    """The rows of ``df`` that ``sel`` names; a name that matches nothing is a ``SelectionError``."""
    methods = sorted(df["method"].unique())
    if sel.method not in methods:
        names = methods + sorted({selector_text(m, h, t) for m, h, t in zip(df["method"], df["config_hash"], df["tag"])})
        raise SelectionError(f"no results of {sel.method!r} in {where}{_suggest(sel.method, names)} "
                             f"(methods there: {', '.join(methods)})")
    rows = df[df["method"] == sel.method]
    if sel.config is not None:
        configs = sorted(rows["config_hash"].unique())
        rows = rows[rows["config_hash"].str.startswith(sel.config)]
        if rows.empty:
            raise SelectionError(f"{sel.method} has no configuration {sel.config!r} in {where}"
                                 f"{_suggest(sel.config, configs)} (its configurations: {', '.join(configs)})")
    tags = sorted(rows["tag"].unique())
    rows = rows[rows["tag"] == sel.tag]
    if rows.empty:
        what = f"tag {sel.tag!r}" if sel.tag else "untagged results"
        names = [selector_text(sel.method, "", t, with_config=False) for t in tags]
        raise SelectionError(f"{sel.text}: {sel.method} has no {what} in {where}"
                             f"{_suggest(sel.text, names)} (write one of: {', '.join(names)})")
    return rows


def _per_seed(rows: pd.DataFrame) -> dict[Any, tuple[float, float, set[str]]]:
    """seed -> (score, bootstrap std, flags); repeated identities (another task version) averaged."""
    out = {}
    for seed, g in rows.groupby("seed", sort=True):
        u = combine_uncertainty(g["value"], g["boot_std"])
        out[seed] = (u["mean"], u["boot_std"], set().union(*g["flags"]))
    return out


def paired_test(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the paired t-test of b − a (NaN below two pairs)."""
    deltas = [y - x for x, y in zip(a, b)]
    if len(deltas) < 2:
        return math.nan
    if max(deltas) == min(deltas):  # no spread: t is infinite (or 0/0 when every Δ is 0)
        return 0.0 if deltas[0] != 0 else 1.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(b, a).pvalue)


def _mean_square(values: list[float]) -> float:
    known = [v * v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else math.nan


def compare(results_dir: Path, a: str, b: str, *, metric: list[str] | None = None, alpha: float = DEFAULT_ALPHA,
            **filters: Any) -> dict[str, Any]:
    """Paired per-seed comparison of B against A (module docstring); ``filters`` as the leaderboard's
    (task, protocol, label_budget, dataset, profile). Returns {a, b, alpha, results_dir, comparisons}."""
    if not 0 < alpha < 1:
        raise SelectionError(f"alpha must be between 0 and 1, got {alpha}")
    where = str(results_dir)
    everything = results_frame(load_results(Path(results_dir)))
    if everything.empty:
        raise SelectionError(f"no results in {where}")
    for column, wanted in filters.items():  # a filter naming nothing in the folder is a typo, not "no overlap"
        present = sorted(set(everything[column].astype(str)))
        for value in [] if wanted is None else [wanted] if isinstance(wanted, str) else wanted:
            if str(value) not in present:
                raise SelectionError(f"no {column} {value!r} in {where}{_suggest(str(value), present)} "
                                     f"(there: {', '.join(present)})")
    sel_a, sel_b = Selector.parse(a), Selector.parse(b)
    rows_a, rows_b = _match(everything, sel_a, where), _match(everything, sel_b, where)
    df = filter_frame(pd.concat([rows_a.assign(side="A"), rows_b.assign(side="B")]), **filters)
    if metric:
        known = sorted(set(everything["metric"]))
        for m in metric:
            if m not in known:
                raise SelectionError(f"no metric {m!r} in {where}{_suggest(m, known)}")
        df = df[df["metric"].isin(metric)]
    else:
        df = df[df["is_main"]]
    keys = ["dataset_id", "profile", "task", "protocol", "label_budget", "metric"]
    comparisons, unpaired = [], []
    for key, group in df.groupby(keys, sort=False):
        sides = {side: g for side, g in group.groupby("side")}
        if set(sides) != {"A", "B"}:
            continue
        for side, sel in (("A", sel_a), ("B", sel_b)):
            configs = sorted({selector_text(sel.method, h, sel.tag) for h in sides[side]["config_hash"]})
            if len(configs) > 1:
                raise SelectionError(f"{sel.text} names {len(configs)} configurations on {' · '.join(map(str, key[2:]))}: "
                                     f"choose one of {', '.join(configs)}")
        if (sel_a.method, sel_a.tag, set(sides["A"]["config_hash"])) == (sel_b.method, sel_b.tag,
                                                                           set(sides["B"]["config_hash"])):
            raise SelectionError(f"{a} and {b} name the same results")
        seeds_a, seeds_b = _per_seed(sides["A"]), _per_seed(sides["B"])
        common = sorted(set(seeds_a) & set(seeds_b))
        context = dict(zip(keys, key))
        if not common:
            unpaired.append(f"{context['task']} · {context['protocol']}: seeds {sorted(seeds_a)} (A) and "
                            f"{sorted(seeds_b)} (B)")
            continue
        comparisons.append(_compare_group(context, group["higher_is_better"].dropna(), seeds_a, seeds_b, common, alpha))
    if not comparisons:
        if unpaired:
            raise NothingToCompare(f"{a} and {b} have no seed in common: " + "; ".join(unpaired))
        raise NothingToCompare(f"{a} and {b} share no evaluation (task, protocol, label budget, metric) in {where}"
                               + (f" with {', '.join(f'{k}={v}' for k, v in filters.items() if v)}"
                                  if any(filters.values()) else ""))
    comparisons.sort(key=lambda c: (c["dataset_id"], c["profile"], c["task"], c["protocol"],
                                    budget_order(c["label_budget"]), c["metric"]))
    return {"a": a, "b": b, "alpha": alpha, "results_dir": where, "comparisons": comparisons}


def _compare_group(context: dict[str, Any], hib: pd.Series, seeds_a: dict, seeds_b: dict, common: list,
                   alpha: float) -> dict[str, Any]:
    a = [seeds_a[s][0] for s in common]
    b = [seeds_b[s][0] for s in common]
    deltas = [y - x for x, y in zip(a, b)]
    d = combine_uncertainty(deltas)
    p = paired_test(a, b)
    higher = bool(hib.iloc[0]) if len(hib) else None
    if d["mean"] == 0:
        direction = "same"
    elif higher is None:
        direction = "higher" if d["mean"] > 0 else "lower"
    else:
        direction = "better" if (d["mean"] > 0) == higher else "worse"
    noise_var = [_mean_square([seeds_a[s][1] for s in common]), _mean_square([seeds_b[s][1] for s in common])]
    known = [v for v in noise_var if not math.isnan(v)]
    test_noise = math.sqrt(sum(known)) if known else math.nan
    return {
        **context, "higher_is_better": higher, "seeds": list(common),
        "a": {"per_seed": dict(zip(common, a)), "mean": sum(a) / len(a),
              "flags": sorted(set().union(*(seeds_a[s][2] for s in common)))},
        "b": {"per_seed": dict(zip(common, b)), "mean": sum(b) / len(b),
              "flags": sorted(set().union(*(seeds_b[s][2] for s in common)))},
        "deltas": dict(zip(common, deltas)), "mean_delta": d["mean"], "std_delta": d["std"], "p_value": p,
        "significant": not math.isnan(p) and p < alpha, "direction": direction,
        "test_noise": test_noise,
        "within_test_noise": not math.isnan(test_noise) and abs(d["mean"]) <= SEPARATION * test_noise,
        "seeds_only_a": sorted(set(seeds_a) - set(common)), "seeds_only_b": sorted(set(seeds_b) - set(common)),
    }


# -- output ----------------------------------------------------------------------------------------
def verdict(c: dict[str, Any]) -> str:
    if len(c["seeds"]) < 2:
        return "one seed: no test"
    if not c["significant"]:
        return "n.s."
    return c["direction"] + (" (test noise)" if c["within_test_noise"] else "")


def _decimals(c: dict[str, Any]) -> int:
    se = c["std_delta"] / math.sqrt(len(c["seeds"])) if len(c["seeds"]) > 1 else math.nan
    if not math.isnan(se) and se > 0:
        return decimals_for(se)
    scale = max(abs(c["a"]["mean"]), abs(c["b"]["mean"]), abs(c["mean_delta"]))
    return max(0, 3 - math.floor(math.log10(scale))) if scale > 0 else 2


def _signed(value: float, decimals: int) -> str:
    return f"{value:+.{decimals}f}".replace("-", "−")


def _p_text(p: float) -> str:
    return "–" if math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def render_comparison(result: dict[str, Any], fmt: str = "rich") -> Any:
    """The comparison as a rich renderable, Markdown, CSV or JSON (raw numbers, per-seed values)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {list(FORMATS)}")
    comparisons = result["comparisons"]
    if fmt == "json":
        import json

        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {str(k): clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value.item() if hasattr(value, "item") else value

        return json.dumps(clean(result), indent=2)
    if fmt == "csv":
        flat = []
        for c in comparisons:
            flat.append({
                **{k: c[k] for k in ("dataset_id", "profile", "task", "protocol", "label_budget", "metric")},
                "higher_is_better": c["higher_is_better"], "seeds": ";".join(map(str, c["seeds"])),
                "mean_a": c["a"]["mean"], "mean_b": c["b"]["mean"], "mean_delta": c["mean_delta"],
                "std_delta": c["std_delta"], "p_value": c["p_value"], "significant": c["significant"],
                "direction": c["direction"], "test_noise": c["test_noise"], "within_test_noise": c["within_test_noise"],
                "deltas": ";".join(f"{s}:{d!r}" for s, d in c["deltas"].items()),
                "flags_a": ";".join(c["a"]["flags"]), "flags_b": ";".join(c["b"]["flags"]),
            })
        return pd.DataFrame(flat, dtype=object).to_csv(index=False)
    several = {k: len({c[k] for c in comparisons}) > 1 for k in ("dataset_id", "profile")}
    show_budget = any(str(c["label_budget"]) != "all" for c in comparisons)
    header = ["evaluation", "metric", "seeds", "mean Δ ± std", "p", "B is", "A", "B", "Δ = B − A per seed"]
    body, bold = [], []
    for c in comparisons:
        d = _decimals(c)
        where = [c["dataset_id"]] if several["dataset_id"] else []
        where += [c["profile"]] if several["profile"] else []
        where += [c["task"], c["protocol"]] + ([f"n={c['label_budget']}"] if show_budget else [])
        mean = _signed(c["mean_delta"], d) + ("" if math.isnan(c["std_delta"]) else f" ± {c['std_delta']:.{d}f}")
        side = lambda s: (flag_marks(c[s]["flags"]) + " " if c[s]["flags"] else "") + f"{c[s]['mean']:.{d}f}"  # noqa: E731
        body.append([" · ".join(where), metric_header(c["metric"], c["higher_is_better"], short=fmt == "rich"),
                     str(len(c["seeds"])), mean, _p_text(c["p_value"]), verdict(c), side("a"), side("b"),
                     " ".join(_signed(v, d) for v in c["deltas"].values())])
        bold.append([False] * 5 + [c["significant"]] + [False] * 3)
    legend = [f"A = {result['a']}, B = {result['b']} ({result['results_dir']}); A and B: means over the seeds "
              "present in both; mean Δ ± the std of the per-seed Δ (listed in seed order)",
              f"p: two-sided paired t-test over seeds; B is better or worse than A (by the metric's direction: ↑ "
              f"higher is better, ↓ lower) where p < {result['alpha']:g}, else n.s. (not significant)"]
    if any(c["within_test_noise"] for c in comparisons if c["significant"]):
        legend.append(f"(test noise): |mean Δ| within {SEPARATION:g}·sqrt(b_A² + b_B²), the bootstrap noise of the "
                      "shared test objects, which the t-test over seeds does not see")
    flags = sorted({f for c in comparisons for s in ("a", "b") for f in c[s]["flags"]})
    if flags:
        legend += legend_lines([{"flags": flags}])[2:]  # the leaderboard's flag line
    for c in comparisons:
        alone = [f"seeds {c[f'seeds_only_{s}']} of {s.upper()} only" for s in ("a", "b") if c[f"seeds_only_{s}"]]
        if alone:
            legend.append(f"not paired, left out: {c['task']} · {c['protocol']}: {', '.join(alone)}")
    grid = Grid(header=header, body=body, bold=bold, title=f"astrobench compare: {result['b']} (B) against "
                f"{result['a']} (A)", legend=legend, css_class="comparison", n_fixed=3,
                left=(0, 1, 5, 8), groups=[[3, 4, 5], [6, 7], [8]], uniform_in_title=(2,))
    return emit(fmt, grid)
