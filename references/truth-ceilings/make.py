"""Truth-level ceilings of the simulated survey: the tasks' own probes on the catalogue's noise-free truth.

A representation that had measured these catalogue quantities perfectly, and nothing else, would
score this. They are not strict bounds (an image also holds profile shape, clumps and neighbours),
but they say where a measured-colour representation can get on this survey, and so whether a target
is reachable: issue 19 asked for dwarf linear >= 0.90 and >= 23 dwarfs among the 25 nearest
neighbours of a dwarf.

Feature sets (from the dataset's label columns; never the label being predicted):
- ``truth-colours``: the noise-free, extinction-free magnitudes in every band and the adjacent
  colours: the ``colours`` baseline's representation without photometric noise.
- ``truth-catalogue``: the same plus log10 half-light radius and r-band surface brightness.

Each is standardised over all objects with one constant coordinate appended (as ``colours`` does,
so the cosine kNN ranks by standardised Euclidean distance), then scored by ``astrobench.evaluate``:
the same splits, probes, label draws and metrics as every leaderboard row.

    python3 references/truth-ceilings/make.py --profile quick --results-dir references/truth-ceilings
    astrobench leaderboard --results-dir references/truth-ceilings --profile quick --all-metrics --task dwarfs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import astrobench
from astrobench.benchmark.build import build_dataset
from astrobench.benchmark.config import RunConfig

ANCHOR = 10.0  # the colours baseline's constant coordinate (methods/classical.py)


def feature_sets(labels: dict[str, np.ndarray], bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    mags = np.stack([labels[f"mag_{band}"] for band in bands], axis=1).astype(np.float64)
    colours = mags[:, :-1] - mags[:, 1:]
    size = np.stack([np.log10(labels["half_light_radius_arcsec"]), labels["surface_brightness_r"]], axis=1)
    return {"truth-colours": np.hstack([mags, colours]),
            "truth-catalogue": np.hstack([mags, colours, size])}


def standardised(features: np.ndarray) -> np.ndarray:
    z = (features - features.mean(axis=0)) / features.std(axis=0)
    return np.hstack([z, np.full((len(z), 1), ANCHOR)]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--results-dir", type=Path, default=Path("references/truth-ceilings"))
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data, _ = build_dataset("synthetic", {}, args.profile, Path(RunConfig().cache_dir))
    for name, features in feature_sets(data.labels, data.bands).items():
        vectors = standardised(features)
        astrobench.evaluate(dict(zip(data.object_id, vectors)), tasks=["redshift", "dwarfs"], name=name,
                            protocols=["linear", "knn"], seeds=seeds, profile=args.profile,
                            results_dir=args.results_dir)
        print(f"{name}: {vectors.shape[1] - 1} features scored")


if __name__ == "__main__":
    main()
