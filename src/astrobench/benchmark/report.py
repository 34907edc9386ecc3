"""``astrobench report``: a self-contained static HTML page (no server, no network) of a results store.

``build_report(results_dir, out_dir, cache_dir, **filters)`` writes ``out_dir/index.html`` with the
run's provenance, the leaderboard (plus the label-efficiency and ablation views where the results
have several label budgets or tags), and PNG figures beside it:

- t-SNE maps of each method's embeddings coloured by redshift, morphology and dwarf label (or the
  evaluation data's own labels);
- similarity-search grids: queries and their cosine top-k neighbours, framed green when they share
  the query's label;
- masked-autoencoder reconstructions (methods whose model has ``reconstruct``);
- photometric against spectroscopic redshift (predictions with ``z_spec`` and ``z_phot``);
- label-efficiency curves, ablation bars, pretraining loss curves.

Inputs come from the store (records, predictions) and the cache (embeddings, pretrained models,
datasets); a figure whose inputs are absent is not made and the page says why.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from astrobench.benchmark import figures
from astrobench.tasks.search import cosine_topk
from astrobench.benchmark.leaderboard import (
    BASELINE_TAGS, _render_ablation, ablation_table, budget_order, render, results_frame, select,
)
from astrobench.benchmark.store import load_results

PREFERRED_LABELS = ("redshift", "morphology", "dwarf")
SIMILARITY_LABELS = ("dwarf", "morphology")
N_QUERIES, TOP_K, N_RECONSTRUCTIONS, MAX_PHOTOZ_PANELS = 4, 8, 6, 12


@dataclass
class Figure:
    file: str
    caption: str


@dataclass
class Section:
    key: str
    title: str
    intro: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    html_extra: str = ""


def filter_records(records: list[dict[str, Any]], **filters: Any) -> list[dict[str, Any]]:
    """The records whose fields match every filter (same semantics as the leaderboard's filters)."""
    def value(record: dict[str, Any], key: str) -> str:
        if key == "label_budget":
            return "all" if record.get("label_budget") is None else str(int(record["label_budget"]))
        if key == "tag":
            return record.get("tag") or ""
        return str(record.get(key))

    out = []
    for record in records:
        keep = True
        for key, wanted in filters.items():
            if wanted is None:
                continue
            values = [wanted] if not isinstance(wanted, (list, tuple, set)) else list(wanted)
            keep &= value(record, key) in {str(v) for v in values}
        if keep:
            out.append(record)
    return out


def build_report(results_dir: Path, out_dir: Path, cache_dir: Path | None = None, *,
                 log: Callable[[str], None] | None = None, max_points: int = 1500, **filters: Any) -> Path:
    """Write ``out_dir/index.html`` and its figures for the results under ``results_dir``; returns the page.

    ``cache_dir`` overrides each result's own cache folder (where its embeddings and models live).
    ``filters`` are the leaderboard's (task, dataset, profile, protocol, method, label_budget, tag).
    Raises ``LookupError`` when no result matches.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    all_records = load_results(results_dir)
    _load_record_plugins(all_records)
    select(all_records, **filters)  # LookupError with the leaderboard's message when nothing matches
    records = filter_records(all_records, **filters)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("fig-*.png"):  # figures of an earlier report into the same folder
        old.unlink()
    ctx = _Context(records, results_dir, out_dir, cache_dir, log or (lambda text: None), max_points)
    sections = []
    for title, maker in ((EMBEDDINGS, _embeddings_section), (SIMILARITY, _similarity_section),
                         (RECONSTRUCTIONS, _reconstruction_section), (PHOTOZ, _photoz_section),
                         (CURVES, _curves_section), (ABLATION, _ablation_section), (TRAINING, _training_section)):
        ctx.log(f"report: {title}")
        try:
            sections.append(maker(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the whole page; it is reported on it
            section = Section(_slug(title), title, "")
            section.notes.append(f"not made: {type(exc).__name__}: {exc}")
            if os.environ.get("ASTROBENCH_DEBUG"):
                section.notes.append(traceback.format_exc())
            sections.append(section)
    index = out_dir / "index.html"
    tmp = out_dir / ".index.html.tmp"
    tmp.write_text(_page(ctx, sections), encoding="utf-8")
    os.replace(tmp, index)
    return index


# -- context: caches of datasets, embeddings and models --------------------------------------------
class _Context:
    def __init__(self, records: list[dict[str, Any]], results_dir: Path, out_dir: Path, cache_dir: Path | None,
                 log: Callable[[str], None], max_points: int):
        self.records, self.results_dir, self.out_dir = records, results_dir, out_dir
        self.cache_dir, self.log, self.max_points = cache_dir, log, max_points
        self.hashes: dict[tuple[str, str], set[str]] = {}
        for r in records:
            self.hashes.setdefault((r["method"], r.get("tag") or ""), set()).add(r["config_hash"])
        self._datasets: dict[str, Any] = {}
        self.files: list[str] = []

    def row(self, record: dict[str, Any]) -> str:
        """The leaderboard's row label of ``record``."""
        text = record["method"]
        if len(self.hashes[(record["method"], record.get("tag") or "")]) > 1:
            text += f" [{record['config_hash'][:6]}]"
        if record.get("tag"):
            text += f" ({record['tag']})"
        return text

    def cache_for(self, record: dict[str, Any], relative: str) -> Path | None:
        """Where ``relative`` (an artifact path) lives: --cache-dir, the record's cache folder, the defaults."""
        candidates: list[Path] = []
        if self.cache_dir is not None:
            candidates.append(Path(self.cache_dir))
        stored = record.get("cache_dir")
        if stored:
            stored = Path(stored)
            candidates += [stored] if stored.is_absolute() else [Path.cwd() / stored, self.results_dir.parent / stored]
        if os.environ.get("ASTROBENCH_CACHE"):
            candidates.append(Path(os.environ["ASTROBENCH_CACHE"]))
        candidates.append(Path.home() / ".cache" / "astrobench")
        for base in candidates:
            if (base / relative).exists():
                return base
        return None

    def dataset(self, record: dict[str, Any]):
        """The evaluation dataset of ``record`` (loaded once per name, options and profile)."""
        config = record.get("resolved_config") or {}
        name = config.get("eval_dataset") or config.get("dataset") or record["dataset"]
        options = (record.get("dataset_options") or {}).get("eval") or {}
        key = json.dumps([name, options, record["profile"]], sort_keys=True, default=str)
        if key not in self._datasets:
            from astrobench.benchmark.runner import load_dataset

            base = self.cache_dir or self.cache_for(record, record.get("artifacts", {}).get("embeddings_file", "")) \
                or Path(os.environ.get("ASTROBENCH_CACHE", Path.home() / ".cache" / "astrobench"))
            self.log(f"report: loading dataset {name!r}")
            data, _ = load_dataset(name, dict(options), record["profile"], Path(base))
            self._datasets[key] = data
        return self._datasets[key]

    def embeddings(self, record: dict[str, Any]) -> np.ndarray:
        relative = record.get("artifacts", {}).get("embeddings_file")
        if not relative:
            raise FileNotFoundError("the result names no embeddings file")
        base = self.cache_for(record, relative)
        if base is None:
            raise FileNotFoundError(f"embeddings {relative} are not in the cache (pass --cache-dir)")
        return np.load(base / relative)

    def model(self, record: dict[str, Any]):
        from astrobench.benchmark.runner import load_pretrained

        relative = record.get("artifacts", {}).get("pretrain_dir")
        if not relative:
            raise FileNotFoundError("the result names no pretrained model")
        base = self.cache_for(record, relative)
        if base is None:
            raise FileNotFoundError(f"pretrained model {relative} is not in the cache (pass --cache-dir)")
        return load_pretrained(base / relative)

    def figure_path(self, name: str) -> tuple[Path, str]:
        file = f"fig-{_slug(name)}.png"
        self.files.append(file)
        return self.out_dir / file, file

    def representatives(self) -> list[tuple[str, dict[str, Any]]]:
        """One record per leaderboard row (lowest seed, all labels preferred), one row per embedding.

        Ablation variants (tags other than ``full`` / untagged) are left out when the method has a
        baseline variant: their maps would repeat the baseline's.
        """
        with_baseline = {r["method"] for r in self.records if (r.get("tag") or "") in BASELINE_TAGS}
        chosen: dict[str, dict[str, Any]] = {}
        for r in sorted(self.records, key=lambda r: (r["seed"], budget_order(r["label_budget"]) * -1, r["task"])):
            if r["method"] in with_baseline and (r.get("tag") or "") not in BASELINE_TAGS:
                continue
            chosen.setdefault(self.row(r), r)
        seen, out = set(), []
        for row, r in sorted(chosen.items()):
            emb = r.get("artifacts", {}).get("embeddings_file")
            if emb in seen:
                continue
            seen.add(emb)
            out.append((row, r))
        return out


def _load_record_plugins(records: list[dict[str, Any]]) -> None:
    """Import the plugins the runs used (datasets and methods they registered are needed to reload them)."""
    from astrobench.registry import load_plugin

    done: set[str] = set()
    for r in records:
        for plugin in (r.get("resolved_config") or {}).get("plugins") or []:
            if plugin in done:
                continue
            done.add(plugin)
            try:
                load_plugin(plugin)
            except Exception:  # noqa: BLE001 - a plugin that is gone only costs the figures that need it
                pass


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "x"


def _bad(record_row: str, exc: Exception) -> str:
    return f"{record_row}: not made ({type(exc).__name__}: {exc})"


# -- cutouts ------------------------------------------------------------------------------------------
def _cutout(data: Any, i: int) -> np.ndarray:
    image = np.asarray(data.image[i], dtype=np.float32)
    return np.where(np.asarray(data.mask[i]), 0.0, image)


def _rgb(data: Any, i: int) -> np.ndarray:
    image = _cutout(data, i)
    return figures.asinh_rgb(image, data.bands, minimum=figures.noise_floor(image, data.bands))


def _label_names(data: Any) -> dict[str, list[str]]:
    names = {"dwarf": ["not dwarf", "dwarf"]}
    classes = (data.manifest or {}).get("morphology_classes")
    if classes:
        names["morphology"] = [str(c) for c in classes]
    return names


def _one_d_labels(data: Any) -> dict[str, np.ndarray]:
    out = {}
    for name, values in data.labels.items():
        values = np.asarray(values)
        if values.ndim != 1:
            continue
        numeric = values.astype(np.float64)
        valid = np.isfinite(numeric) & ~((values.dtype.kind in "iu") & (numeric < 0))
        if valid.any():
            out[name] = values
    return out


def _colour_labels(data: Any) -> dict[str, np.ndarray]:
    labels = _one_d_labels(data)
    preferred = {k: labels[k] for k in PREFERRED_LABELS if k in labels}
    return preferred or dict(list(labels.items())[:3])


def _similarity_label(ctx: _Context, data: Any) -> str | None:
    labels = _one_d_labels(data)
    for r in ctx.records:
        name = (r.get("details") or {}).get("label") if r["task"] == "similarity" else None
        if name in labels:
            return name
    for name in SIMILARITY_LABELS:
        if name in labels:
            return name
    for name, values in labels.items():
        if figures.is_categorical(values) and np.unique(values[np.asarray(values, float) >= 0]).size >= 2:
            return name
    return None


def _queries(values: np.ndarray, gallery: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` query rows of ``gallery``, round-robin over its classes from the rarest (e.g. dwarfs first)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(values, dtype=np.float64)[gallery]
    valid = np.isfinite(y) & (y >= 0)
    classes, counts = np.unique(y[valid], return_counts=True)
    pools = [list(rng.permutation(gallery[valid & (y == c)])) for c in classes[np.argsort(counts, kind="stable")]]
    out: list[int] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(int(pool.pop()))
    return np.array(out, dtype=int)


def _gallery(data: Any) -> np.ndarray:
    from astrobench.datasets.splits import split_indices

    test = split_indices(data).get("test", np.arange(0))
    return test if len(test) > TOP_K + N_QUERIES else np.arange(len(data))


# -- sections ------------------------------------------------------------------------------------------
EMBEDDINGS, SIMILARITY, RECONSTRUCTIONS = "Embeddings (t-SNE)", "Similarity search", "Masked-autoencoder reconstructions"
PHOTOZ, CURVES, ABLATION, TRAINING = "Photometric redshift", "Label efficiency", "Augmentation ablations", "Training curves"


def _embeddings_section(ctx: _Context) -> Section:
    section = Section("embeddings", EMBEDDINGS,
                      f"t-SNE of each method's embeddings of the evaluation data (one seed, at most {ctx.max_points} "
                      "objects), coloured by label; grey points have no label.")
    for row, record in ctx.representatives():
        try:
            data = ctx.dataset(record)
            emb = ctx.embeddings(record)
            if len(emb) != len(data):
                raise ValueError(f"{len(emb)} embeddings for {len(data)} objects of the evaluation data")
            rows, xy = figures.tsne_2d(emb, ctx.max_points, seed=0)
            labels = {k: np.asarray(v)[rows] for k, v in _colour_labels(data).items()}
            path, file = ctx.figure_path(f"tsne-{row}")
            figures.embedding_map(xy, labels, f"{row} (seed {record['seed']})", path, _label_names(data))
            section.figures.append(Figure(file, f"{row}, seed {record['seed']}: {len(rows)} objects of "
                                                f"{record['dataset']}, coloured by {', '.join(labels) or 'nothing'}."))
        except Exception as exc:  # noqa: BLE001
            section.notes.append(_bad(row, exc))
    if not ctx.representatives():
        section.notes.append("not made: no result names embeddings")
    return section


def _similarity_section(ctx: _Context) -> Section:
    section = Section("similarity", SIMILARITY,
                      f"For {N_QUERIES} query galaxies (blue frame; rarest class first), the {TOP_K} most "
                      "cosine-similar galaxies of the test split in each method's embedding space. "
                      "Green frame: same label as the query; red: another label.")
    for row, record in ctx.representatives():
        try:
            data = ctx.dataset(record)
            label = _similarity_label(ctx, data)
            if label is None:
                section.notes.append(f"{row}: not made (the evaluation data has no class label)")
                continue
            emb = ctx.embeddings(record)
            if len(emb) != len(data):
                raise ValueError(f"{len(emb)} embeddings for {len(data)} objects")
            gallery = _gallery(data)
            values = np.asarray(data.labels[label], dtype=np.float64)
            queries = _queries(values, gallery, N_QUERIES)
            query_rows = np.searchsorted(gallery, queries)
            k = min(TOP_K, len(gallery) - 1)
            _, local = cosine_topk(emb[gallery][query_rows], emb[gallery], k, exclude=query_rows)
            neighbours = gallery[local]
            matches = values[neighbours] == values[queries][:, None]
            names = _label_names(data).get(label)
            text = [f"{label}\n{names[int(values[q])] if names and 0 <= values[q] < len(names) else _num(values[q])}"
                    for q in queries]
            q_rgb = np.stack([_rgb(data, q) for q in queries])
            n_rgb = np.stack([np.stack([_rgb(data, j) for j in row_n]) for row_n in neighbours])
            path, file = ctx.figure_path(f"similarity-{row}")
            figures.similarity_grid(q_rgb, n_rgb, matches, text, f"{row}: top-{local.shape[1]} neighbours by {label}", path)
            section.figures.append(Figure(file, f"{row}: {int(matches.sum())} of {matches.size} neighbours share the "
                                                f"query's {label} label (gallery: {len(gallery)} objects)."))
        except Exception as exc:  # noqa: BLE001
            section.notes.append(_bad(row, exc))
    return section


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def _reconstruction_section(ctx: _Context) -> Section:
    import torch

    from astrobench.benchmark.batches import make_batch

    section = Section("reconstructions", RECONSTRUCTIONS,
                      "Masked autoencoders on test galaxies: the input view, the input with the hidden patches "
                      "in grey, the reconstruction, and the reconstruction with the visible patches pasted back. "
                      "All four panels of a galaxy share one asinh stretch and black point.")
    from astrobench.registry import METHODS

    for row, record in ctx.representatives():
        try:
            cls = METHODS.get(record["method"])
        except Exception:  # noqa: BLE001 - a method that is not registered here cannot be rebuilt
            continue
        if not callable(getattr(cls, "reconstruct", None)):
            continue
        try:
            model = ctx.model(record)
            data = ctx.dataset(record)
            rows = _gallery(data)[:N_RECONSTRUCTIONS]
            torch.manual_seed(0)
            with torch.no_grad():
                view = model.views.eval_view(make_batch(data, rows, "cpu"))
                recon, mask = model.reconstruct(view)
            norm = model.views.normalizer
            scales = np.asarray(norm.scales, dtype=np.float64).reshape(1, -1, 1, 1)
            to_flux = (lambda x: np.sinh(x) * scales) if norm.is_flux else (lambda x: x * scales)
            original = to_flux(view.detach().cpu().double().numpy())
            rebuilt = to_flux(recon.detach().cpu().double().numpy())
            hidden = mask.detach().cpu().numpy()[:, 0] > 0.5
            pasted = np.where(hidden[:, None], rebuilt, original)
            panels: dict[str, list[np.ndarray]] = {"input": [], "masked": [], "reconstruction": [], "recon. + visible": []}
            for i in range(len(rows)):
                floor = figures.noise_floor(original[i], data.bands)
                stretch = figures.display_stretch(original[i : i + 1], data.bands, minimum=floor)
                shown = figures.asinh_rgb(original[i], data.bands, stretch=stretch, minimum=floor)
                masked = shown.copy()
                masked[hidden[i]] = 128
                panels["input"].append(shown)
                panels["masked"].append(masked)
                panels["reconstruction"].append(figures.asinh_rgb(rebuilt[i], data.bands, stretch=stretch, minimum=floor))
                panels["recon. + visible"].append(figures.asinh_rgb(pasted[i], data.bands, stretch=stretch, minimum=floor))
            path, file = ctx.figure_path(f"reconstruction-{row}")
            figures.reconstruction_grid({k: np.stack(v) for k, v in panels.items()}, f"{row} (seed {record['seed']})", path)
            section.figures.append(Figure(file, f"{row}, seed {record['seed']}: {len(rows)} test galaxies, "
                                                f"{100 * hidden.mean():.0f}% of the pixels hidden."))
        except Exception as exc:  # noqa: BLE001
            section.notes.append(_bad(row, exc))
    if not section.figures and not section.notes:
        section.notes.append("not made: no method in these results has a reconstruct() (e.g. mae)")
    return section


def _predictions(record: dict[str, Any]):
    import pandas as pd

    name = record.get("predictions_file")
    if not name:
        return None
    path = Path(record["_path"]).with_name(name)
    return pd.read_parquet(path) if path.is_file() else None


def _photoz_section(ctx: _Context) -> Section:
    section = Section("photoz", PHOTOZ,
                      "Photometric (z_phot) against spectroscopic (z_spec) redshift of the test objects, one seed per "
                      "method and protocol with every label used; the dashed lines are |Δz| = 0.05 (1 + z).")
    chosen: dict[tuple[str, str, str], dict[str, Any]] = {}
    order = sorted(ctx.records, key=lambda r: (-budget_order(r["label_budget"]), r["seed"]))
    for r in order:
        if r.get("predictions_file"):
            chosen.setdefault((ctx.row(r), r["task"], r["protocol"]), r)
    panels = []
    for (row, task, protocol), r in sorted(chosen.items()):
        try:
            pred = _predictions(r)
        except Exception as exc:  # noqa: BLE001
            section.notes.append(_bad(row, exc))
            continue
        if pred is None or not {"z_spec", "z_phot"} <= set(pred.columns):
            continue
        budget = "all" if r["label_budget"] is None else r["label_budget"]
        outlier = float((r.get("task_params") or {}).get("outlier_threshold", 0.05) or 0.05)
        panels.append({"title": f"{row} · {task} · {protocol} · n={budget} · seed {r['seed']}",
                       "z_spec": pred["z_spec"].to_numpy(), "z_phot": pred["z_phot"].to_numpy(), "outlier": outlier})
    if not panels:
        section.notes.append("not made: no result has redshift predictions (z_spec, z_phot); run the redshift task")
        return section
    if len(panels) > MAX_PHOTOZ_PANELS:
        section.notes.append(f"{len(panels) - MAX_PHOTOZ_PANELS} more method/protocol panels left out")
        panels = panels[:MAX_PHOTOZ_PANELS]
    path, file = ctx.figure_path("photoz")
    figures.photoz_plot(panels, path, outlier=panels[0]["outlier"])
    section.figures.append(Figure(file, f"{len(panels)} panel(s); σ_MAD and η computed from the stored predictions."))
    return section


def _curves_section(ctx: _Context) -> Section:
    section = Section("curves", CURVES,
                      "Main score against the number of labelled training objects (mean ± std over seeds), one "
                      "line per method: the field's 'fewer labels' claim is a curve, not a number.")
    df = results_frame(ctx.records)
    df = df.assign(row=[ctx.row(r) for r in ctx.records for _ in r["scores"]])  # results_frame's row order
    df = df[df["is_main"]]
    n_all: dict[tuple[str, str], list[float]] = {}
    for r in ctx.records:
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
        ticks = [x_of[b] for b in budgets]
        labels = [f"all\n({all_x:.0f})" if b == "all" else str(b) for b in budgets]
        panels.append({"title": f"{task} · {protocol}", "ylabel": metric, "lines": lines, "xticks": ticks,
                       "xticklabels": labels})
    if panels:
        path, file = ctx.figure_path("label-efficiency")
        figures.label_efficiency_plot(panels, path)
        section.figures.append(Figure(file, f"{len(panels)} task/protocol panel(s); 'all' is every labelled "
                                            "training object."))
        try:
            section.html_extra = render(ctx.records, "html", view="curves")
        except LookupError:
            pass
    else:
        section.notes.append("not made: no task was run at two or more label budgets (astrobench run --labels 50,100,all)")
    return section


def _ablation_section(ctx: _Context) -> Section:
    section = Section("ablation", ABLATION,
                      "Change of the main score of each ablation variant (the run's --tag) against the method's "
                      "'full' (or untagged) variant; error bars are the spread over seeds of the per-seed change.")
    df = results_frame(ctx.records)
    methods = sorted(m for m, tags in df.groupby("method")["tag"].agg(lambda t: set(t)).items() if len(tags) > 1)
    tables = []
    for method in methods:
        try:
            table = ablation_table(df[df["method"] == method])
        except LookupError as exc:
            section.notes.append(f"{method}: not made ({exc})")
            continue
        path, file = ctx.figure_path(f"ablation-{method}")
        figures.ablation_bars(table, path)
        section.figures.append(Figure(file, f"{method}: {len(table['rows']) - 1} variant(s) against "
                                            f"{table['baseline']}."))
        tables.append(f"<h3>{html.escape(method)}</h3>\n" + _render_ablation(table, "html"))
    section.html_extra = "".join(tables)
    if not methods:
        section.notes.append("not made: no method has results under several tags (astrobench run --tag full / --tag -GN ...)")
    return section


def _training_section(ctx: _Context) -> Section:
    section = Section("training", TRAINING, "Pretraining loss against optimisation step, one line per run (seed).")
    curves: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    seen: set[str] = set()
    for r in sorted(ctx.records, key=lambda r: (ctx.row(r), r["seed"])):
        curve = (r.get("pretrain") or {}).get("loss_curve")
        key = (r.get("artifacts") or {}).get("pretrain_dir") or r.get("pretrain_key") or r["_path"]
        if not curve or key in seen:
            continue
        seen.add(key)
        arr = np.asarray(curve, dtype=np.float64).reshape(-1, 2)
        label = f"seed {r['seed']}"
        runs = curves.setdefault(ctx.row(r), [])
        if any(existing == label for existing, _, _ in runs):  # a supervised model per task and label budget
            label += f" · {r['task']} n={'all' if r['label_budget'] is None else r['label_budget']}"
        runs.append((label, arr[:, 0], arr[:, 1]))
    if not curves:
        section.notes.append("not made: no result has a pretraining loss curve (only untrained baselines)")
        return section
    path, file = ctx.figure_path("training-curves")
    figures.training_curves(curves, path)
    section.figures.append(Figure(file, f"{len(curves)} method(s); log scale where every loss is positive."))
    return section


# -- the page ------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#fafbfc;line-height:1.45}
main{max-width:1340px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:8px 0 4px}
h2{font-size:20px;margin:36px 0 8px;padding-bottom:4px;border-bottom:2px solid #dde3ea}
h3{font-size:16px;margin:18px 0 6px}
p.lead{color:#4a5568;margin:0 0 16px}
nav{font-size:14px;margin:8px 0 20px}
nav a{margin-right:14px;color:#2166ac;text-decoration:none}
table{border-collapse:collapse;font-size:13px;margin:8px 0 12px;background:#fff}
th,td{border:1px solid #dde3ea;padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#eef2f7;font-weight:600}
td:nth-child(2),th:nth-child(2){text-align:left}
tbody tr:nth-child(even){background:#f6f8fb}
td.best{background:#e6f4ea}
table.provenance td,table.provenance th{text-align:left;white-space:normal}
table.provenance th{width:180px}
.scroll{overflow-x:auto}
.gallery{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin:10px 0 18px}
figure{margin:0;background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:10px;display:inline-block;max-width:100%;box-sizing:border-box}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#4a5568;margin-top:6px}
p.note{font-size:13px;color:#8a5a00;background:#fff8e6;border-left:3px solid #f0b429;padding:6px 10px;margin:6px 0}
footer{margin-top:40px;font-size:12px;color:#718096}
"""


def _values(records: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> str:
    seen = []
    for r in records:
        try:
            value = get(r)
        except (KeyError, TypeError):
            value = None
        if value is not None and str(value) not in seen:
            seen.append(str(value))
    return ", ".join(seen) if seen else "unknown"


def _provenance(ctx: _Context) -> str:
    import astrobench

    recs = ctx.records
    created = sorted(str(r["created_at"]) for r in recs if r.get("created_at"))
    rows = [
        ("results", f"{len(recs)} result file(s) under {ctx.results_dir}"),
        ("astrobench version", _values(recs, lambda r: r.get("astrobench_version"))),
        ("git SHA", _values(recs, lambda r: (r.get("git_sha") or None) and r["git_sha"][:12])),
        ("devices", _values(recs, lambda r: r.get("device") and f"{r['device']} × {r.get('world_size', 1)}")),
        ("datasets", _values(recs, lambda r: r["dataset"])),
        ("profiles", _values(recs, lambda r: r["profile"])),
        ("methods", _values(recs, lambda r: r["method"])),
        ("tasks", _values(recs, lambda r: f"{r['task']} v{r.get('task_version', '?')}")),
        ("library versions", _values(recs, lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["versions"].items()))
                                     if r.get("versions") else None)),
        ("runs made", f"{created[0]} … {created[-1]}" if created else "unknown"),
        ("report", f"astrobench {astrobench.__version__}, {time.strftime('%Y-%m-%d %H:%M:%S %z')}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="provenance">{body}</table>'


def _page(ctx: _Context, sections: list[Section]) -> str:
    leaderboard = render(ctx.records, "html")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>astrobench report</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>astrobench report</h1>",
        '<p class="lead">Self-supervised representations of survey images: leaderboard and figures built from '
        "the results store and the cache.</p>",
        "<nav>" + '<a href="#provenance">Provenance</a><a href="#leaderboard">Leaderboard</a>'
        + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections) + "</nav>",
        '<h2 id="provenance">Provenance</h2>', _provenance(ctx),
        '<h2 id="leaderboard">Leaderboard</h2>',
        '<p class="lead">Main score of each task, mean ± std over seeds; the best per column in bold '
        "(respecting each metric's direction); rows ranked by mean rank.</p>",
        f'<div class="scroll">{leaderboard}</div>',
    ]
    for s in sections:
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.intro:
            parts.append(f'<p class="lead">{html.escape(s.intro)}</p>')
        for note in s.notes:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        if s.html_extra:
            parts.append(f'<div class="scroll">{s.html_extra}</div>')
        if s.figures:
            parts.append('<div class="gallery">')
            for f in s.figures:
                parts.append(f'<figure><img src="{html.escape(f.file)}" alt="{html.escape(f.caption)}">'
                             f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
            parts.append("</div>")
        parts.append("</section>")
    parts.append('<footer>Generated by <code>astrobench report</code>; a static page: no server, no network.</footer>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
