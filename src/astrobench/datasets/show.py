"""``astrobench data show``: a PNG grid of asinh RGB cutouts with labels, and the physical relations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from astrobench.datasets.display import asinh_rgb, noise_floor
from astrobench.datasets.schema import SurveyData
from astrobench.datasets.storage import load_survey

MORPHOLOGY_NAMES = ("elliptical", "lenticular", "spiral", "barred_spiral", "edge_on", "irregular", "merger")


def _pick_examples(data: SurveyData, count: int, seed: int = 0) -> np.ndarray:
    """Examples spread over classes (and dwarfs) where labels exist, otherwise the first ones."""
    rng = np.random.default_rng(seed)
    n = len(data)
    groups: list[np.ndarray] = []
    if "morphology" in data.labels:
        morph = np.asarray(data.labels["morphology"])
        groups += [np.flatnonzero(morph == k) for k in range(int(morph.max()) + 1)]
    if "dwarf" in data.labels:
        groups.append(np.flatnonzero(np.asarray(data.labels["dwarf"], dtype=bool)))
    if not groups:
        return np.arange(min(n, count))
    per_group = max(1, count // len(groups))
    chosen = [rng.choice(g, size=min(per_group, len(g)), replace=False) for g in groups if len(g)]
    picked = np.unique(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(n), picked)
    extra = rng.choice(rest, size=min(len(rest), max(0, count - len(picked))), replace=False)
    return np.concatenate([picked, extra])[:count]


def _label_text(data: SurveyData, i: int) -> str:
    parts = []
    labels = data.labels
    if "morphology" in labels and labels["morphology"][i] >= 0:
        classes = data.manifest.get("morphology_classes", MORPHOLOGY_NAMES)
        parts.append(str(classes[int(labels["morphology"][i])]))
    if "dwarf" in labels and bool(labels["dwarf"][i]):
        parts.append("DWARF")
    if "redshift" in labels and np.isfinite(labels["redshift"][i]):
        parts.append(f"z={float(labels['redshift'][i]):.3f}")
    r_mag = next((k for k in ("mag_r", "mag_g") if k in labels), None)
    if r_mag:
        parts.append(f"{r_mag[4:]}={float(labels[r_mag][i]):.1f}")
    return "\n".join([" ".join(parts[:2]), " ".join(parts[2:])]) if parts else str(data.object_id[i])


def cutout_grid(data: SurveyData, out: Path, rows: int = 6, cols: int = 8) -> Path:
    import matplotlib.pyplot as plt

    picks = _pick_examples(data, rows * cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.7, rows * 1.9))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), picks):
        image = np.where(data.mask[i], 0.0, data.image[i])
        ax.imshow(asinh_rgb(image, data.bands, minimum=noise_floor(image, data.bands)), origin="lower", interpolation="nearest")
        ax.set_title(_label_text(data, int(i)), fontsize=6.5)
    fig.suptitle(f"{data.origin}: {len(data)} objects, bands {''.join(data.bands)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _running_median(x: np.ndarray, y: np.ndarray, bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    centres, medians = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (x >= lo) & (x <= hi)
        if sel.sum() >= 5:
            centres.append(np.median(x[sel]))
            medians.append(np.median(y[sel]))
    return np.array(centres), np.array(medians)


def relations_plot(data: SurveyData, out: Path) -> Path | None:
    """Size and colour against redshift, surface brightness of dwarfs and non-dwarfs, z histogram."""
    import matplotlib.pyplot as plt

    labels = data.labels
    if "redshift" not in labels:
        return None
    z = np.asarray(labels["redshift"], dtype=float)
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    ax = axes[0, 0]
    ax.hist(z, bins=60, color="0.4")
    ax.set(xlabel="redshift", ylabel="count", title="redshift distribution")
    if "half_light_radius_arcsec" in labels:
        ax = axes[0, 1]
        hlr = np.asarray(labels["half_light_radius_arcsec"], dtype=float)
        ax.scatter(z, hlr, s=2, alpha=0.3, color="C0")
        ax.plot(*_running_median(z, hlr), color="k", lw=2, label="median")
        ax.set(xlabel="redshift", ylabel="half-light radius [arcsec]", yscale="log", xscale="log", title="size vs redshift")
        ax.legend()
    colour = next(((a, b) for a, b in (("g", "r"), ("g", "z"), ("u", "r")) if f"mag_{a}" in labels and f"mag_{b}" in labels), None)
    if colour:
        ax = axes[1, 0]
        col = np.asarray(labels[f"mag_{colour[0]}"], float) - np.asarray(labels[f"mag_{colour[1]}"], float)
        morph = np.asarray(labels.get("morphology", np.full(len(z), -1)))
        for k, name, c in ((0, "elliptical", "C3"), (2, "spiral", "C0"), (5, "irregular", "C2")):
            sel = morph == k
            if sel.sum() > 5:
                ax.scatter(z[sel], col[sel], s=3, alpha=0.4, color=c, label=name)
                ax.plot(*_running_median(z[sel], col[sel], 8), color=c, lw=2)
        ax.set(xlabel="redshift", ylabel=f"{colour[0]} - {colour[1]} (true, observed frame)", title="colour vs redshift")
        ax.legend(markerscale=3)
    if "surface_brightness_r" in labels and "dwarf" in labels and "mag_r" in labels:
        ax = axes[1, 1]
        dwarf = np.asarray(labels["dwarf"], dtype=bool)
        mag, sb = np.asarray(labels["mag_r"], float), np.asarray(labels["surface_brightness_r"], float)
        ax.scatter(mag[~dwarf], sb[~dwarf], s=3, alpha=0.35, color="0.5", label="non-dwarf")
        ax.scatter(mag[dwarf], sb[dwarf], s=5, alpha=0.6, color="C1", label="dwarf")
        ax.set(xlabel="r magnitude", ylabel="mean surface brightness within r_e [mag/arcsec²]",
               title="surface brightness: dwarfs vs non-dwarfs")
        ax.invert_yaxis()
        ax.legend(markerscale=3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def show_dataset(path_or_data: SurveyData | str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``cutouts.png`` (and ``relations.png`` where the labels allow) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    data = path_or_data if isinstance(path_or_data, SurveyData) else load_survey(path_or_data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [cutout_grid(data, out_dir / "cutouts.png")]
    relations = relations_plot(data, out_dir / "relations.png")
    if relations is not None:
        written.append(relations)
    return written
