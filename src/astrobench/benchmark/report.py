"""``astrobench report``: a self-contained static HTML page (no server, no network) of a results store.

``build_report(results_dir, out_dir, cache_dir, **filters)`` writes ``out_dir/index.html`` with the
run's provenance, the leaderboard, and PNG figures beside it:

- t-SNE maps of each method's embeddings, similarity-search grids, masked-autoencoder
  reconstructions (``report_sections.py``: from embeddings, data and models);
- photometric against spectroscopic redshift, label-efficiency curves, ablation bars, pretraining
  loss curves (``report_results.py``: from the stored results alone).

Inputs come from the store and the cache (``report_artifacts.py``); the page is rendered from
``templates/report.html.j2``. Reading results never imports or runs code they name: models and
datasets are rebuilt from registered names only (built-ins and ``--plugin``). A figure whose
inputs are absent is not made, and the page says why once per reason.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from astrobench.benchmark.leaderboard import filter_frame, render, select
from astrobench.benchmark.report_artifacts import Artifacts
from astrobench.benchmark.report_results import ablation_section, curves_section, photoz_section, training_section
from astrobench.benchmark.report_sections import Section, embeddings_section, reconstruction_section, similarity_section
from astrobench.benchmark.store import load_results

# (anchor, title, maker): a maker fills in the section it is given
SECTIONS: tuple[tuple[str, str, Callable[[Artifacts, Section], Section]], ...] = (
    ("embeddings", "Embeddings (t-SNE)", embeddings_section),
    ("similarity", "Similarity search", similarity_section),
    ("reconstructions", "Masked-autoencoder reconstructions", reconstruction_section),
    ("photoz", "Photometric redshift", photoz_section),
    ("curves", "Label efficiency", curves_section),
    ("ablation", "Augmentation ablations", ablation_section),
    ("training", "Training curves", training_section),
)
TEMPLATE = "report.html.j2"


def _filter_value(record: dict[str, Any], key: str) -> Any:
    """``record``'s field as the leaderboard's frame holds it (label budget "all" or int, tag "" when none)."""
    if key == "label_budget":
        return "all" if record.get("label_budget") is None else int(record["label_budget"])
    if key == "tag":
        return record.get("tag") or ""
    return record.get(key)


def filter_records(records: list[dict[str, Any]], **filters: Any) -> list[dict[str, Any]]:
    """The records whose fields match every filter, by the leaderboard's own ``filter_frame``."""
    import pandas as pd

    given = {k: v for k, v in filters.items() if v is not None}
    frame = pd.DataFrame([{k: _filter_value(r, k) for k in given} for r in records], index=range(len(records)))
    return [records[i] for i in filter_frame(frame, **given).index]


def build_report(results_dir: Path, out_dir: Path, cache_dir: Path | None = None, *,
                 log: Callable[[str], None] | None = None, max_points: int = 1500, **filters: Any) -> Path:
    """Write ``out_dir/index.html`` and its figures for the results under ``results_dir``; returns the page.

    ``cache_dir`` overrides each result's own cache folder (where its embeddings and models live).
    ``filters`` are the leaderboard's (task, dataset, profile, protocol, method, label_budget, tag).
    Raises ``LookupError`` when no result matches.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    all_records = list(load_results(results_dir))
    select(all_records, **filters)  # LookupError with the leaderboard's message when nothing matches
    records = filter_records(all_records, **filters)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("fig-*.png"):  # figures of an earlier report into the same folder
        old.unlink()
    art = Artifacts(records, results_dir, out_dir, cache_dir, log or (lambda text: None), max_points)
    sections = []
    for key, title, make in SECTIONS:
        art.log(f"report: {title}")
        section = Section(key, title, "")
        try:
            make(art, section)
        except Exception as exc:  # noqa: BLE001 - one broken section must not cost the whole page; it says why
            section = Section(key, title, section.intro, notes=[f"not made: {type(exc).__name__}: {exc}"])
            if os.environ.get("ASTROBENCH_DEBUG"):
                section.traces.append(traceback.format_exc())
        sections.append(section)
    page = render_page(art, sections)
    index = out_dir / "index.html"
    tmp = out_dir / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


def render_page(art: Artifacts, sections: list[Section]) -> str:
    """The page from the jinja2 template (HTML-escaping every value except the leaderboard's tables)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("astrobench.benchmark", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(
        provenance=provenance_rows(art), leaderboard=render(art.records, "html"), sections=sections,
    )


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


def provenance_rows(art: Artifacts) -> list[tuple[str, str]]:
    import astrobench

    recs = art.records
    created = sorted(str(r["created_at"]) for r in recs if r.get("created_at"))
    return [
        ("results", f"{len(recs)} result file(s) under {art.results_dir}"),
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
