"""What the report reads besides the result JSON: embeddings, pretrained models, datasets and
predictions, found through each result's ``artifacts`` and ``cache_dir``.

Reading never imports or runs code named by a result: datasets and methods are rebuilt from
their registered names only (built-ins and the plugins the user loaded with ``--plugin``), through
the public building functions (``build.build_dataset``, ``pretrained.load_pretrained``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from astrobench.benchmark.config import default_cache_dir
from astrobench.benchmark.leaderboard import BASELINE_TAGS, budget_order
from astrobench.benchmark.store import slug


class Artifacts:
    """The selected records and lazy, cached access to what they point at."""

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

    def cache_candidates(self, record: dict[str, Any]) -> list[Path]:
        """Where a record's artefacts may be: --cache-dir, the record's cache folder, the default cache."""
        candidates: list[Path] = []
        if self.cache_dir is not None:
            candidates.append(Path(self.cache_dir))
        stored = record.get("cache_dir")
        if stored:
            stored = Path(stored)
            candidates += [stored] if stored.is_absolute() else [Path.cwd() / stored, self.results_dir.parent / stored]
        candidates.append(default_cache_dir())
        return list(dict.fromkeys(candidates))

    def artifact(self, record: dict[str, Any], key: str, what: str) -> Path:
        """The path of artefact ``key`` (``embeddings_file``, ``pretrain_dir``) of ``record``.

        The error names what is missing and where it was looked for, not the per-result file, so
        that one missing cache reads as one line however many methods it hits."""
        relative = (record.get("artifacts") or {}).get(key)
        if not relative:
            raise FileNotFoundError(f"the results name no {what}")
        candidates = self.cache_candidates(record)
        for base in candidates:
            if (base / relative).exists():
                return base / relative
        raise FileNotFoundError(f"{what} not in the cache (looked in {', '.join(map(str, candidates))}; pass --cache-dir)")

    def dataset(self, record: dict[str, Any]):
        """The evaluation dataset of ``record`` (built once per name, options and profile)."""
        from astrobench.benchmark.build import build_dataset

        config = record.get("resolved_config") or {}
        name = config.get("eval_dataset") or config.get("dataset") or record["dataset"]
        options = (record.get("dataset_options") or {}).get("eval") or {}
        key = json.dumps([name, options, record["profile"]], sort_keys=True, default=str)
        if key not in self._datasets:
            candidates = self.cache_candidates(record)
            embeddings = (record.get("artifacts") or {}).get("embeddings_file")
            base = (self.cache_dir or next((c for c in candidates if embeddings and (c / embeddings).exists()), None)
                    or next((c for c in candidates if c.is_dir()), default_cache_dir()))
            self.log(f"report: loading dataset {name!r}")
            self._datasets[key], _ = build_dataset(name, dict(options), record["profile"], Path(base))
        return self._datasets[key]

    def embeddings(self, record: dict[str, Any]) -> np.ndarray:
        return np.load(self.artifact(record, "embeddings_file", "embeddings"))

    def model(self, record: dict[str, Any]):
        from astrobench.benchmark.pretrained import load_pretrained

        return load_pretrained(self.artifact(record, "pretrain_dir", "pretrained model"))

    @staticmethod
    def predictions(record: dict[str, Any]):
        """The stored predictions frame of ``record``, or None when it has none."""
        import pandas as pd

        name = record.get("predictions_file")
        if not name:
            return None
        path = Path(record["_path"]).with_name(name)
        return pd.read_parquet(path) if path.is_file() else None

    def figure_path(self, name: str) -> tuple[Path, str]:
        file = f"fig-{slug(name).lower()}.png"
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
            emb = (r.get("artifacts") or {}).get("embeddings_file")
            if emb in seen:
                continue
            seen.add(emb)
            out.append((row, r))
        return out
