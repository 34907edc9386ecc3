"""The report's sections drawn from the stored results alone (scores, predictions, loss curves):
photometric redshift, label efficiency, augmentation ablations, training curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from astrobench.benchmark import figures
from astrobench.benchmark.leaderboard import ablation_table, budget_order, render, results_frame
from astrobench.benchmark.report_artifacts import Artifacts
from astrobench.benchmark.report_sections import Figure, Section
from astrobench.tasks.metrics import redshift_metrics

# prediction columns that make a photo-z panel (the redshift task writes them; any task may)
Z_SPEC, Z_PHOT = "z_spec", "z_phot"


def _photoz_candidates(art: Artifacts, section: Section) -> dict[str, list[dict[str, Any]]]:
    """Per leaderboard row, its photo-z results at the largest label budget it has, each with metrics."""
    by_row: dict[str, list[dict[str, Any]]] = {}
    for r in art.records:
        if not r.get("predictions_file"):
            continue
        row = art.row(r)
        try:
            pred = art.predictions(r)
        except Exception as exc:  # noqa: BLE001 - an unreadable predictions file costs only its panel
            section.failed(row, exc)
            continue
        if pred is None or not {Z_SPEC, Z_PHOT} <= set(pred.columns):
            continue
        outlier = float((r.get("task_params") or {}).get("outlier_threshold", 0.05) or 0.05)
        z_spec, z_phot = pred[Z_SPEC].to_numpy(float), pred[Z_PHOT].to_numpy(float)
        ok = np.isfinite(z_spec) & np.isfinite(z_phot)
        if not ok.any():
            continue
        metrics = redshift_metrics(z_phot[ok], z_spec[ok], outlier)
        by_row.setdefault(row, []).append({"record": r, "z_spec": z_spec[ok], "z_phot": z_phot[ok],
                                           "outlier": outlier, **metrics})
    return by_row


def photoz_section(art: Artifacts, section: Section) -> Section:
    section.intro = ("Photometric (z_phot) against spectroscopic (z_spec) redshift of the test objects: one panel per "
                     "method, its best result (lowest σ_MAD) with the most labels, best method first; the dashed "
                     "lines are |Δz| = 0.05 (1 + z).")
    panels = []
    for row, candidates in _photoz_candidates(art, section).items():
        most = max(budget_order(c["record"]["label_budget"]) for c in candidates)
        best = min((c for c in candidates if budget_order(c["record"]["label_budget"]) == most),
                   key=lambda c: (c["sigma_mad"], c["record"]["seed"]))
        r = best["record"]
        budget = "all" if r["label_budget"] is None else r["label_budget"]
        panels.append({**best, "title": f"{row} · {r['task']} · {r['protocol']} · n={budget} · seed {r['seed']}"})
    if not panels:
        section.notes.append("not made: no result has redshift predictions (z_spec, z_phot); run the redshift task")
        return section
    panels.sort(key=lambda p: (p["sigma_mad"], p["title"]))
    path, file = art.figure_path("photoz")
    figures.photoz_plot(panels, path)
    section.figures.append(Figure(file, f"{len(panels)} method(s), best first; σ_MAD and η from the stored predictions."))
    return section


def curves_section(art: Artifacts, section: Section) -> Section:
    section.intro = ("Main score against the number of labelled training objects (mean ± std over seeds), one "
                     "line per method: the field's 'fewer labels' claim is a curve, not a number.")
    df = results_frame(art.records)
    df = df.assign(row=[art.row(r) for r in art.records for _ in r["scores"]])  # results_frame's row order
    df = df[df["is_main"]]
    n_all: dict[tuple[str, str], list[float]] = {}
    for r in art.records:
        n_train = (r.get("details") or {}).get("n_train")
        if r["label_budget"] is None and isinstance(n_train, (int, float)):
            n_all.setdefault((r["task"], r["protocol"]), []).append(float(n_train))
    panels = []
    for (task, protocol, metric), group in df.groupby(["task", "protocol", "metric"], sort=True):
        budgets = sorted(group["label_budget"].unique(), key=budget_order)
        if len(budgets) < 2:
            continue
        numeric = [float(b) for b in budgets if b != "all"]
        all_x = max(n_all.get((task, protocol), [0.0]) + [0.0])
        if not all_x > max(numeric, default=0.0):
            all_x = 2.0 * max(numeric, default=1.0)
        x_of = {b: (all_x if b == "all" else float(b)) for b in budgets}
        lines = {}
        for row, sub in group.groupby("row", sort=True):
            stats = sub.groupby("label_budget")["value"].agg(["mean", "std"])
            present = [b for b in budgets if b in stats.index]
            lines[row] = ([x_of[b] for b in present], [stats.loc[b, "mean"] for b in present],
                          [stats.loc[b, "std"] for b in present])
        panels.append({"title": f"{task} · {protocol}", "ylabel": metric, "lines": lines,
                       "xticks": [x_of[b] for b in budgets],
                       "xticklabels": [f"all\n({all_x:.0f})" if b == "all" else str(b) for b in budgets]})
    if not panels:
        section.notes.append("not made: no task was run at two or more label budgets (astrobench run --labels 50,100,all)")
        return section
    path, file = art.figure_path("label-efficiency")
    figures.label_efficiency_plot(panels, path)
    section.figures.append(Figure(file, f"{len(panels)} task/protocol panel(s); 'all' is every labelled training object."))
    try:
        section.tables.append(("", render(art.records, "html", view="curves")))
    except LookupError:
        pass
    return section


def ablation_section(art: Artifacts, section: Section) -> Section:
    section.intro = ("Change of the main score of each ablation variant (the run's --tag) against the method's "
                     "'full' (or untagged) variant; error bars are the spread over seeds of the per-seed change.")
    df = results_frame(art.records)
    methods = sorted(m for m, tags in df.groupby("method")["tag"].agg(lambda t: set(t)).items() if len(tags) > 1)
    for method in methods:
        try:
            table = ablation_table(df[df["method"] == method])
        except LookupError as exc:
            section.failed(method, exc)
            continue
        path, file = art.figure_path(f"ablation-{method}")
        figures.ablation_bars(table, path)
        section.figures.append(Figure(file, f"{method}: {len(table['rows']) - 1} variant(s) against {table['baseline']}."))
        section.tables.append((method, render(art.records, "html", view="ablation", method=[method])))
    if not methods:
        section.notes.append("not made: no method has results under several tags (astrobench run --tag full / --tag -GN ...)")
    return section


def training_section(art: Artifacts, section: Section) -> Section:
    section.intro = ("Pretraining loss against optimisation step, one line per run (seed).")
    curves: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    seen: set[str] = set()
    for r in sorted(art.records, key=lambda r: (art.row(r), r["seed"])):
        curve = (r.get("pretrain") or {}).get("loss_curve")
        key = (r.get("artifacts") or {}).get("pretrain_dir") or r.get("pretrain_key") or r["_path"]
        if not curve or key in seen:
            continue
        seen.add(key)
        arr = np.asarray(curve, dtype=np.float64).reshape(-1, 2)
        label = f"seed {r['seed']}"
        runs = curves.setdefault(art.row(r), [])
        if any(existing == label for existing, _, _ in runs):  # a supervised model per task and label budget
            label += f" · {r['task']} n={'all' if r['label_budget'] is None else r['label_budget']}"
        runs.append((label, arr[:, 0], arr[:, 1]))
    if not curves:
        section.notes.append("not made: no result has a pretraining loss curve (only untrained baselines)")
        return section
    path, file = art.figure_path("training-curves")
    figures.training_curves(curves, path)
    section.figures.append(Figure(file, f"{len(curves)} method(s); log scale where every loss is positive."))
    return section
