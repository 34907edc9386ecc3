"""Augmentation ablations: which augmentations make the representations useful.

Each variant is an ordinary run of the same method with another list of views, stored as a
leaderboard row tagged with the variant's name, so ablations are cached, resumable and shown by
the leaderboard's ``ablation`` view (``leaderboard.ablation_table``) like everything else. That
table shows each variant's change Δ against ``full`` and bolds it only when it exceeds 2 standard
errors of the change (the per-seed spread of Δ over the paired seeds and both variants' bootstrap
over the test objects): most single-augmentation effects at a few seeds are within noise, and the
table says so instead of crowning the largest one.

Modes (for augmentations A1..An, in the given order):
- ``leave-one-out``: ``full`` and ``-Ai`` (all but one);
- ``add-one``: ``none``, then ``+A1``, ``+A1+A2``, ... (cumulative, as in the seed study's figure),
  where the last one is tagged ``full``;
- ``single``: ``full``, ``none`` and ``only-Ai``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from astrobench.benchmark.config import RunConfig, ViewsConfig
from astrobench.benchmark.store import load_results

MODES = ("leave-one-out", "add-one", "single")
DEFAULT_AUGS = ("RR", "JC", "GN", "GR", "PS")


def ablation_variants(augs: list[str] | tuple[str, ...], mode: str) -> dict[str, list[str]]:
    """Variant tag -> augmentation codes."""
    augs = list(augs)
    if len(set(augs)) != len(augs):
        raise ValueError(f"augmentations listed twice in {augs}")
    if mode not in MODES:
        raise ValueError(f"ablation mode {mode!r} is not one of {list(MODES)}")
    if mode == "leave-one-out":
        return {"full": augs, **{f"-{a}": [b for b in augs if b != a] for a in augs}}
    if mode == "add-one":
        steps = {"+" + "+".join(augs[: i + 1]): augs[: i + 1] for i in range(len(augs) - 1)}
        return {"none": [], **steps, "full": augs}
    return {"full": augs, "none": [], **{f"only-{a}": [a] for a in augs}}


def variant_configs(base: RunConfig, method: str, augs: list[str], mode: str) -> dict[str, RunConfig]:
    """One ``RunConfig`` per variant: same everything, other views, tagged with the variant."""
    if base.methods != [method]:
        raise ValueError(f"an ablation runs one method, got {base.methods}")
    params = base.views[method].params if method in base.views else {}
    out = {}
    for tag, codes in ablation_variants(augs, mode).items():
        views = dict(base.views)
        views[method] = ViewsConfig(codes=list(codes), params={c: p for c, p in params.items() if c in codes})
        out[tag] = dataclasses.replace(base, views=views, tag=tag)
    return out


def run_ablation(base: RunConfig, method: str, augs: list[str], mode: str, reporter: Any = None) -> list[dict[str, Any]]:
    """Run (or reuse) every variant; return exactly this ablation's result records."""
    from astrobench.benchmark.runner import Runner

    paths: set[str] = set()
    for config in variant_configs(base, method, augs, mode).values():
        summary = Runner(config, reporter).run()
        paths.update(str(p) for p in summary.written + summary.skipped)
    # older ablations under the same tags may hold other settings: keep only this one's results
    return [r for r in load_results(Path(base.results_dir)) if r["_path"] in paths]
