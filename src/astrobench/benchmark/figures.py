"""Figures for the HTML report, as PNG files (matplotlib, Agg backend; no display, no network).

Every function takes plain arrays (never records or models: ``report.py`` gathers those) and writes
one PNG, returning its path. Cutouts arrive as RGB composites (``datasets/display.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

MATCH, MISMATCH, QUERY = "#1a9850", "#d73027", "#2166ac"


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    plt = _pyplot()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return out


def _frame(ax: Any, colour: str, width: float = 4.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)
        spine.set_visible(True)


# -- embeddings ------------------------------------------------------------------------------------
def tsne_2d(embeddings: np.ndarray, max_points: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows used, (n, 2) t-SNE coordinates) of a random subsample of at most ``max_points`` rows."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    n = len(embeddings)
    rows = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    x = np.asarray(embeddings[rows], dtype=np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    if len(rows) < 5:
        raise ValueError(f"t-SNE needs at least 5 objects, got {len(rows)}")
    perplexity = float(min(30.0, (len(rows) - 1) / 3))
    # one OpenMP thread: Barnes-Hut's threads spin on a busy machine (30x slower on 2 loaded cores)
    with threadpool_limits(1):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500).fit_transform(x)
    return rows, xy


def is_categorical(values: np.ndarray) -> bool:
    values = np.asarray(values)
    return values.dtype.kind in "biu" or (values.dtype.kind == "f" and np.unique(values[np.isfinite(values)]).size <= 12)


def embedding_map(xy: np.ndarray, labels: dict[str, np.ndarray], title: str, out: Path,
                  class_names: dict[str, Sequence[str]] | None = None) -> Path:
    """t-SNE map, one panel per label: continuous labels with a colour bar, classes with a legend."""
    plt = _pyplot()
    names = list(labels) or ["(no labels)"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.1 * len(names), 2.9), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.set_xticks([])
        ax.set_yticks([])
        if name not in labels:
            ax.scatter(xy[:, 0], xy[:, 1], s=6, c="#555555", linewidths=0)
            ax.set_title("no labels")
            continue
        values = np.asarray(labels[name])
        if is_categorical(values):
            values = values.astype(np.float64)
            valid = np.isfinite(values) & (values >= 0)
            ax.scatter(xy[~valid, 0], xy[~valid, 1], s=5, c="#cccccc", linewidths=0, label="no label" if (~valid).any() else None)
            classes = np.unique(values[valid]).astype(int)
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            names_for = (class_names or {}).get(name)
            for k, c in enumerate(classes):
                sel = valid & (values == c)
                text = str(names_for[c]) if names_for is not None and 0 <= c < len(names_for) else str(c)
                ax.scatter(xy[sel, 0], xy[sel, 1], s=7, color=cmap(k % cmap.N), linewidths=0, label=text)
            ax.legend(fontsize=7, markerscale=2, loc="best", framealpha=0.8)
        else:
            values = values.astype(np.float64)
            valid = np.isfinite(values)
            ax.scatter(xy[~valid, 0], xy[~valid, 1], s=5, c="#cccccc", linewidths=0)
            sc = ax.scatter(xy[valid, 0], xy[valid, 1], s=7, c=values[valid], cmap="viridis", linewidths=0)
            fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


# -- similarity search -----------------------------------------------------------------------------
def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], np.uint8)


def mosaic(tiles: np.ndarray, borders: np.ndarray | None = None, min_tile: int = 96, border: int = 4,
           gap: int = 6) -> np.ndarray:
    """One uint8 image of a (rows, cols, h, w, 3) grid of RGB tiles, enlarged (nearest) to >= ``min_tile`` px,
    each framed in ``borders[row][col]`` (a '#rrggbb' colour, or None for no frame), on white."""
    rows, cols, h, w, _ = tiles.shape
    factor = max(1, math.ceil(min_tile / max(h, w)))
    th, tw = h * factor + 2 * border, w * factor + 2 * border
    out = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 255, np.uint8)
    for i in range(rows):
        for j in range(cols):
            y, x = i * (th + gap), j * (tw + gap)
            colour = None if borders is None else borders[i][j]
            if colour:
                out[y : y + th, x : x + tw] = _hex_rgb(colour)
            tile = np.repeat(np.repeat(tiles[i, j][::-1], factor, axis=0), factor, axis=1)  # origin lower
            out[y + border : y + border + h * factor, x + border : x + border + w * factor] = tile
    return out


def _show_mosaic(image: np.ndarray, rows: int, cols: int, row_labels: Sequence[str], col_labels: Sequence[str],
                 title: str, out: Path) -> Path:
    """A mosaic with its row labels at the left and column labels on top, as one axes (fast to save)."""
    plt = _pyplot()
    height, width = image.shape[:2]
    longest = max((len(line) for text in row_labels for line in str(text).splitlines()), default=0)
    margin_left, margin_top = max(40, 6 * longest + 24), 50
    fig = plt.figure(figsize=((width + margin_left + 10) / 100, (height + margin_top + 10) / 100), dpi=100)
    ax = fig.add_axes([margin_left / (width + margin_left + 10), 10 / (height + margin_top + 10),
                       width / (width + margin_left + 10), height / (height + margin_top + 10)])
    ax.imshow(image, interpolation="nearest")
    ax.axis("off")
    for i, text in enumerate(row_labels):
        ax.text(-8, (i + 0.5) * height / rows, text, ha="right", va="center", fontsize=8)
    for j, text in enumerate(col_labels):
        ax.text((j + 0.5) * width / cols, -6, text, ha="center", va="bottom", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 8 / (height + margin_top + 10), va="top")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, facecolor="white")
    plt.close(fig)
    return out


def similarity_grid(query_rgb: np.ndarray, neighbour_rgb: np.ndarray, matches: np.ndarray, query_text: Sequence[str],
                    title: str, out: Path) -> Path:
    """Rows: a query (blue frame) and its top-k neighbours, framed green when they share its label, else red."""
    nq, k = matches.shape
    tiles = np.concatenate([query_rgb[:, None], neighbour_rgb], axis=1)
    borders = [[QUERY] + [MATCH if m else MISMATCH for m in row] for row in matches]
    image = mosaic(tiles, borders)
    return _show_mosaic(image, nq, k + 1, query_text, ["query"] + [f"#{j + 1}" for j in range(k)], title, out)


# -- masked autoencoder reconstructions ------------------------------------------------------------
def reconstruction_grid(panels: dict[str, np.ndarray], title: str, out: Path) -> Path:
    """Columns are the named panels (e.g. input, masked input, reconstruction), rows are galaxies."""
    names = list(panels)
    tiles = np.stack([panels[name] for name in names], axis=1)
    n = tiles.shape[0]
    image = mosaic(tiles, None, border=0)
    return _show_mosaic(image, n, len(names), [f"#{i + 1}" for i in range(n)], names, title, out)


# -- photometric redshift --------------------------------------------------------------------------
def photoz_plot(panels: list[dict[str, Any]], out: Path) -> Path:
    """z_phot against z_spec per panel ({title, z_spec, z_phot, outlier, sigma_mad, eta_percent}: the
    metrics come computed, from ``tasks/metrics.py``), with the 1:1 line and |Δz| = outlier lines."""
    plt = _pyplot()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels):
        z_spec, z_phot = np.asarray(panel["z_spec"], float), np.asarray(panel["z_phot"], float)
        outlier = panel["outlier"]
        lo = float(min(z_spec.min(initial=0), z_phot.min(initial=0)))
        hi = float(max(z_spec.max(initial=0.1), z_phot.max(initial=0.1)))
        grid = np.linspace(lo, hi, 50)
        if len(z_spec) > 2000:
            ax.hexbin(z_spec, z_phot, gridsize=60, bins="log", cmap="Blues", extent=(lo, hi, lo, hi))
        else:
            ax.scatter(z_spec, z_phot, s=12, alpha=0.7, color="#2166ac", linewidths=0)
        ax.plot(grid, grid, color="k", lw=1)
        ax.plot(grid, grid + outlier * (1 + grid), color="#d73027", lw=0.8, ls="--")
        ax.plot(grid, grid - outlier * (1 + grid), color="#d73027", lw=0.8, ls="--")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("z_spec")
        ax.set_ylabel("z_phot")
        ax.set_title(panel["title"], fontsize=9)
        ax.text(0.03, 0.97, f"σ_MAD = {panel['sigma_mad']:.4f}\nη = {panel['eta_percent']:.1f}%\nN = {len(z_spec)}", transform=ax.transAxes,
                va="top", fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    fig.tight_layout()
    return _save(fig, out)


# -- label efficiency ------------------------------------------------------------------------------
def label_efficiency_plot(panels: list[dict[str, Any]], out: Path) -> Path:
    """One panel per (task, protocol, metric): {title, ylabel, lines: {method: (x, mean, std)}, xticks, xticklabels}."""
    plt = _pyplot()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.8 * nrows), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels):
        for method, (x, mean, std) in panel["lines"].items():
            x, mean, std = (np.asarray(v, float) for v in (x, mean, std))
            ax.errorbar(x, mean, yerr=np.nan_to_num(std), marker="o", ms=4, capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xticks(panel["xticks"])
        ax.set_xticklabels(panel["xticklabels"])
        ax.minorticks_off()
        ax.set_xlabel("labelled training objects")
        ax.set_ylabel(panel["ylabel"])
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


# -- ablations -------------------------------------------------------------------------------------
def ablation_bars(table: dict[str, Any], out: Path) -> Path:
    """Horizontal bars of each tag's change Δ against the baseline, per column, ± the spread over seeds."""
    plt = _pyplot()
    columns, rows, cells, baseline = table["columns"], table["rows"], table["cells"], table["baseline"]
    variants = [r for r in rows if r != baseline]
    fig, axes = plt.subplots(1, len(columns), figsize=(5.0 * len(columns), 0.45 * len(variants) + 1.6), squeeze=False)
    for ax, column in zip(axes[0], columns):
        present = [r for r in variants if (r, column) in cells]
        delta = np.array([cells[(r, column)]["delta"] for r in present], float)
        err = np.nan_to_num(np.array([cells[(r, column)]["delta_std"] for r in present], float))
        direction = np.array([cells[(r, column)]["direction"] for r in present], float)
        colours = [MATCH if d * s >= 0 else MISMATCH for d, s in zip(delta, direction)]
        y = np.arange(len(present))
        ax.barh(y, np.nan_to_num(delta), xerr=err, color=colours, capsize=3)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(present)
        ax.invert_yaxis()
        ax.set_xlabel(f"Δ vs {baseline}")
        ax.set_title(column, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"ablation of {table['method']} (green: better than {baseline}, red: worse)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


# -- training curves -------------------------------------------------------------------------------
def training_curves(curves: dict[str, list[tuple[str, np.ndarray, np.ndarray]]], out: Path) -> Path:
    """One panel per method: pretraining loss against step, one line per run (seed)."""
    plt = _pyplot()
    names = list(curves)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        positive = True
        for label, steps, loss in curves[name]:
            ax.plot(steps, loss, lw=1.2, label=label, marker="o" if len(steps) < 20 else None, ms=3)
            positive &= bool(np.all(np.asarray(loss) > 0))
        if positive:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
