"""The report's sections drawn from each method's embeddings, data and model: t-SNE maps,
similarity-search grids and masked-autoencoder reconstructions (``report_results.py`` holds the
sections drawn from the stored results alone).

A section collects what it could not draw as (method, reason) pairs; the page shows each distinct
reason once, in one line naming the methods it hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astrobench.benchmark import figures
from astrobench.benchmark.report_artifacts import Artifacts
from astrobench.datasets.display import asinh_rgb, display_stretch, noise_floor
from astrobench.tasks.search import cosine_topk

PREFERRED_LABELS = ("redshift", "morphology", "dwarf")
SIMILARITY_LABELS = ("dwarf", "morphology")
N_QUERIES, TOP_K, N_RECONSTRUCTIONS = 4, 8, 6


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
    tables: list[tuple[str, str]] = field(default_factory=list)  # (heading, HTML table)
    failures: dict[str, list[str]] = field(default_factory=dict)  # reason -> rows it hit
    traces: list[str] = field(default_factory=list)  # tracebacks, with ASTROBENCH_DEBUG set

    def failed(self, row: str, exc: Exception) -> None:
        self.failures.setdefault(f"{type(exc).__name__}: {exc}", []).append(row)

    def note_lines(self) -> list[str]:
        """The notes, then one line per distinct reason something was not drawn."""
        lines = list(self.notes)
        for reason, rows in self.failures.items():
            lines.append(f"not made for {', '.join(rows)}: {reason}")
        return lines


# -- labels and cutouts ---------------------------------------------------------------------------------
def _cutout_rgb(data: Any, i: int) -> np.ndarray:
    image = np.where(np.asarray(data.mask[i]), 0.0, np.asarray(data.image[i], dtype=np.float32))
    return asinh_rgb(image, data.bands, minimum=noise_floor(image, data.bands))


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


def _similarity_label(art: Artifacts, data: Any) -> str | None:
    """The label a result's task searched by (its ``details["label"]``), else a class label of the data."""
    labels = _one_d_labels(data)
    for r in art.records:
        name = (r.get("details") or {}).get("label")
        if isinstance(name, str) and name in labels and figures.is_categorical(labels[name]):
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


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def _embeddings_and_data(art: Artifacts, record: dict[str, Any]) -> tuple[np.ndarray, Any]:
    emb = art.embeddings(record)  # first: a missing cache file fails before a dataset is built
    data = art.dataset(record)
    if len(emb) != len(data):
        raise ValueError(f"{len(emb)} embeddings for {len(data)} objects of the evaluation data")
    return emb, data


# -- sections ------------------------------------------------------------------------------------------
def embeddings_section(art: Artifacts, section: Section) -> Section:
    section.intro = (f"t-SNE of each method's embeddings of the evaluation data (one seed, at most {art.max_points} "
                     "objects), coloured by label; grey points have no label.")
    for row, record in art.representatives():
        try:
            emb, data = _embeddings_and_data(art, record)
            if emb.ndim != 2 or emb.shape[1] < 2:
                # the chance line's embedding is one number: nothing to map
                section.failures.setdefault("an embedding of one dimension has no 2-D map", []).append(row)
                continue
            rows, xy = figures.tsne_2d(emb, art.max_points, seed=0)
            labels = {k: np.asarray(v)[rows] for k, v in _colour_labels(data).items()}
            path, file = art.figure_path(f"tsne-{row}")
            figures.embedding_map(xy, labels, f"{row} (seed {record['seed']})", path, _label_names(data))
            section.figures.append(Figure(file, f"{row}, seed {record['seed']}: {len(rows)} objects of "
                                                f"{record['dataset']}, coloured by {', '.join(labels) or 'nothing'}."))
        except Exception as exc:  # noqa: BLE001 - one method's missing input costs only its figure
            section.failed(row, exc)
    if not art.representatives():
        section.notes.append("not made: no result names embeddings")
    return section


def similarity_section(art: Artifacts, section: Section) -> Section:
    section.intro = (f"For {N_QUERIES} query galaxies (blue frame; rarest class first), the {TOP_K} most "
                     "cosine-similar galaxies of the test split in each method's embedding space. "
                     "Green frame: same label as the query; red: another label.")
    for row, record in art.representatives():
        try:
            emb, data = _embeddings_and_data(art, record)
            label = _similarity_label(art, data)
            if label is None:
                raise LookupError("the evaluation data has no class label")
            gallery = _gallery(data)
            values = np.asarray(data.labels[label], dtype=np.float64)
            queries = _queries(values, gallery, N_QUERIES)
            query_rows = np.searchsorted(gallery, queries)
            _, local = cosine_topk(emb[gallery][query_rows], emb[gallery], min(TOP_K, len(gallery) - 1),
                                   exclude=query_rows)
            neighbours = gallery[local]
            matches = values[neighbours] == values[queries][:, None]
            names = _label_names(data).get(label)
            text = [f"{label}\n{names[int(values[q])] if names and 0 <= values[q] < len(names) else _num(values[q])}"
                    for q in queries]
            q_rgb = np.stack([_cutout_rgb(data, q) for q in queries])
            n_rgb = np.stack([np.stack([_cutout_rgb(data, j) for j in row_n]) for row_n in neighbours])
            path, file = art.figure_path(f"similarity-{row}")
            figures.similarity_grid(q_rgb, n_rgb, matches, text, f"{row}: top-{local.shape[1]} neighbours by {label}", path)
            section.figures.append(Figure(file, f"{row}: {int(matches.sum())} of {matches.size} neighbours share the "
                                                f"query's {label} label (gallery: {len(gallery)} objects)."))
        except Exception as exc:  # noqa: BLE001
            section.failed(row, exc)
    return section


def reconstruction_section(art: Artifacts, section: Section) -> Section:
    import torch

    from astrobench.datasets.batches import make_batch
    from astrobench.registry import METHODS

    section.intro = ("Masked autoencoders on test galaxies: the input view, the input with the hidden patches "
                     "in grey, the reconstruction, and the reconstruction with the visible patches pasted back. "
                     "All four panels of a galaxy share one asinh stretch and black point.")
    for row, record in art.representatives():
        # only registered methods (built-ins, --plugin) are rebuilt: reading results imports nothing they name
        if record["method"] not in METHODS:
            section.failed(row, LookupError("method not registered here (load its plugin with --plugin)"))
            continue
        if not callable(getattr(METHODS.get(record["method"]), "reconstruct", None)):
            continue
        try:
            model = art.model(record)
            data = art.dataset(record)
            rows = _gallery(data)[:N_RECONSTRUCTIONS]
            torch.manual_seed(0)
            with torch.no_grad():
                view = model.views.eval_view(make_batch(data, rows, "cpu"))
                recon, mask = model.reconstruct(view)
                original = model.views.normalizer.invert(view.double()).cpu().numpy()
                rebuilt = model.views.normalizer.invert(recon.double()).cpu().numpy()
            hidden = mask.detach().cpu().numpy()[:, 0] > 0.5
            pasted = np.where(hidden[:, None], rebuilt, original)
            panels: dict[str, list[np.ndarray]] = {"input": [], "masked": [], "reconstruction": [], "recon. + visible": []}
            for i in range(len(rows)):
                floor = noise_floor(original[i], data.bands)
                stretch = display_stretch(original[i : i + 1], data.bands, minimum=floor)
                shown = asinh_rgb(original[i], data.bands, stretch=stretch, minimum=floor)
                masked = shown.copy()
                masked[hidden[i]] = 128
                panels["input"].append(shown)
                panels["masked"].append(masked)
                panels["reconstruction"].append(asinh_rgb(rebuilt[i], data.bands, stretch=stretch, minimum=floor))
                panels["recon. + visible"].append(asinh_rgb(pasted[i], data.bands, stretch=stretch, minimum=floor))
            path, file = art.figure_path(f"reconstruction-{row}")
            figures.reconstruction_grid({k: np.stack(v) for k, v in panels.items()}, f"{row} (seed {record['seed']})", path)
            section.figures.append(Figure(file, f"{row}, seed {record['seed']}: {len(rows)} test galaxies, "
                                                f"{100 * hidden.mean():.0f}% of the pixels hidden."))
        except Exception as exc:  # noqa: BLE001
            section.failed(row, exc)
    if not section.figures and not section.failures:
        section.notes.append("not made: no method in these results has a reconstruct() (e.g. mae)")
    return section
