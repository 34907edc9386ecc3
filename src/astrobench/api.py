"""Score your own encoder, or embeddings you saved, on the registered tasks (MTEB style)::

    import astrobench
    records = astrobench.evaluate(my_encoder, tasks=["redshift", "dwarfs"], dataset="synthetic")
    records = astrobench.evaluate("embeddings.npz", tasks=["redshift"], name="my-ssl")

``my_encoder`` is any ``torch.nn.Module`` mapping a batch of images (B, C, H, W) to vectors
(B, D): it sees the dataset's images normalised as every method sees them (per band, divided by
the band's robust noise scale, asinh-stretched for flux; invalid pixels 0). Saved embeddings are a
``.npz`` file with arrays ``object_id`` (N,) and ``embeddings`` (N, D), or a mapping
``{object_id: vector}``: every object of the dataset needs a row, and an id the dataset does not
have is an error (embeddings of another dataset), so nothing is silently dropped or invented.

Each (task, protocol, label budget, seed) is written as a result like a run's (``method`` is
``name``, its ``config_hash`` a hash of the weights or the embeddings), so ``astrobench
leaderboard`` shows it beside the methods. Built on the runner's pieces: ``benchmark.build``
(dataset and tasks from names), the normaliser, the result store and the provenance.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrobench.augment.normalize import Normalizer
from astrobench.benchmark.build import build_dataset, build_task, fingerprint, resolve_device
from astrobench.benchmark.config import PROFILES, ConfigError, RunConfig
from astrobench.benchmark.embed import embed_rows
from astrobench.benchmark.flags import result_flags
from astrobench.benchmark.model_card import architecture
from astrobench.benchmark.provenance import provenance
from astrobench.benchmark.store import result_path, stable_hash, write_result
from astrobench.datasets.schema import DataError, SurveyData
from astrobench.datasets.splits import split_indices
from astrobench.tasks.base import EmbeddingInputs, Task, score_bootstrap_std
from astrobench.tasks.probes import needs_model



def evaluate(encoder_or_embeddings: "torch.nn.Module | str | os.PathLike | Mapping[str, Any]",
             tasks: Sequence[str], dataset: str = "synthetic", *, name: str | None = None,
             dataset_options: Mapping[str, Any] | None = None,
             task_options: Mapping[str, Mapping[str, Any]] | None = None,
             protocols: Sequence[str] | None = None, seeds: Sequence[int] = (0,),
             label_budgets: Sequence[int | None] = (None,), profile: str = "quick",
             results_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
             device: str = "auto", overwrite: bool = False) -> list[dict[str, Any]]:
    """Score ``encoder_or_embeddings`` on ``tasks`` of ``dataset``; returns the written result records.

    ``name``: the leaderboard row (default: the encoder's class name, or the file's stem, or
    ``"embeddings"``). ``protocols``: each task's defaults when None (fine-tuning is not offered:
    it needs an astrobench method). ``results_dir`` and ``cache_dir`` default as for ``astrobench
    run`` (``RunConfig``'s defaults: ``./results`` or ``$ASTROBENCH_RESULTS``, ``~/.cache/astrobench`` or
    ``$ASTROBENCH_CACHE``).
    An existing result is kept unless ``overwrite``.
    """
    # every check that needs no data comes first: a misspelt task fails before any loading
    if profile not in PROFILES:
        raise ConfigError(f"profile {profile!r} is not one of {list(PROFILES)}")
    if isinstance(tasks, str) or not tasks:
        raise ConfigError(f"tasks must be a non-empty list of task names, got {tasks!r}")
    task_options = dict(task_options or {})
    unknown = sorted(set(task_options) - set(tasks))
    if unknown:
        raise ConfigError(f"task_options given for {unknown}, which are not among tasks {list(tasks)}")
    built = {t: build_task(t, dict(task_options.get(t, {}))) for t in tasks}
    plan = {t: _protocols(t, task, protocols) for t, task in built.items()}
    source = _Source.of(encoder_or_embeddings, name)
    defaults = RunConfig()  # the run's folders: ./results or $ASTROBENCH_RESULTS, the cache as documented
    results = Path(results_dir or defaults.results_dir)
    cache = Path(cache_dir or defaults.cache_dir)
    run_device = resolve_device(device)

    data, resolved_options = build_dataset(dataset, dict(dataset_options or {}), profile, cache)
    for task in built.values():
        task.check_data(data)
    splits = split_indices(data)
    embeddings = source.embeddings(data, splits, run_device)
    data_hash = fingerprint(data)
    dataset_id = f"{dataset}-{data_hash[:8]}"
    config_hash = source.config_hash(embeddings)
    inputs = EmbeddingInputs(embeddings, data.object_id, data.labels, splits, run_device)
    written = []
    for task_name, task in built.items():
        budgets = list(label_budgets) if task.supports_label_budget else [None]
        for protocol in plan[task_name]:
            for budget in budgets:
                for seed in seeds:
                    path = result_path(results, dataset=dataset_id, profile=profile, task=task_name,
                                       method=source.name, config_hash=config_hash, protocol=protocol,
                                       label_budget=budget, seed=int(seed))
                    if path.exists() and not overwrite:
                        continue
                    t0 = time.perf_counter()
                    result = task.evaluate(inputs, protocol=protocol, seed=int(seed), label_budget=budget)
                    record = {
                        "kind": "astrobench-result", "method": source.name, "method_config": source.identity(),
                        "config_hash": config_hash, "dataset": dataset, "dataset_id": dataset_id,
                        "dataset_options": {"pretrain": resolved_options, "eval": resolved_options},
                        "data_manifest_hash": {"pretrain": data_hash, "eval": data_hash}, "profile": profile,
                        "task": task_name, "task_version": task.version, "task_params": task.params(),
                        "protocol": protocol, "label_budget": budget, "seed": int(seed), "tag": None,
                        "scores": {k: float(v) for k, v in result.scores.items()},
                        "flags": result_flags(result.predictions),
                        "bootstrap_std": score_bootstrap_std(task, result),
                        "main_score": task.main_score, "higher_is_better": dict(task.higher_is_better),
                        "details": result.details, "pretrain": None,
                        "model": source.model_card(embeddings), "artifacts": {}, "cache_dir": str(cache),
                        "eval_wall_time_s": time.perf_counter() - t0, **provenance(run_device),
                    }
                    write_result(path, record, result.predictions)
                    written.append({**record, "_path": str(path)})
    return written


def _protocols(task_name: str, task: Task, wanted: Sequence[str] | None) -> list[str]:
    chosen = [p for p in (wanted or task.default_protocols) if p in task.protocols and not needs_model(p)]
    if wanted is not None:
        missing = [p for p in wanted if p not in chosen]
        if missing:
            offered = [p for p in task.protocols if not needs_model(p)]
            raise ConfigError(f"task {task_name!r}: protocol(s) {missing} are not offered here; "
                              f"evaluate() offers {offered} (fine-tuning needs an astrobench method)")
    return chosen


class _Source:
    """Where the vectors come from: an encoder, or saved embeddings keyed by object id."""

    def __init__(self, name: str, encoder: torch.nn.Module | None = None,
                 saved: tuple[np.ndarray, np.ndarray] | None = None, origin: str = "in memory"):
        self.name, self.encoder, self.saved, self.origin = name, encoder, saved, origin

    @classmethod
    def of(cls, value: Any, name: str | None) -> "_Source":
        if isinstance(value, torch.nn.Module):
            return cls(name or architecture(value), encoder=value)
        if isinstance(value, (str, os.PathLike)):
            path = Path(value)
            return cls(name or path.stem, saved=_read_npz(path), origin=str(path))
        if isinstance(value, Mapping):
            if not value:
                raise DataError("evaluate(): the embeddings mapping is empty")
            ids = np.asarray([str(k) for k in value])
            vectors = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in value.values()])
            return cls(name or "embeddings", saved=(ids, vectors))
        raise TypeError("evaluate() scores a torch.nn.Module, a .npz file of 'object_id' and 'embeddings', or a "
                        f"mapping object id -> vector; got {type(value).__name__}")

    def embeddings(self, data: SurveyData, splits: dict[str, np.ndarray], device: torch.device) -> np.ndarray:
        if self.encoder is None:
            return _align(*self.saved, data, self.origin)
        # the normaliser every method uses, fitted on the training split as the runner fits it
        normalizer = Normalizer.fit(data.subset(splits["train"]))
        return _embed(self.encoder, normalizer, data, device, self.name)

    def identity(self) -> dict[str, Any]:
        if self.encoder is not None:
            cls = type(self.encoder)
            return {"method": self.name, "target": f"{cls.__module__}:{cls.__qualname__}",
                    "options": {"backbone": architecture(self.encoder)}, "source": "astrobench.evaluate (encoder)"}
        return {"method": self.name, "target": None, "options": {}, "source": f"astrobench.evaluate ({self.origin})"}

    def config_hash(self, embeddings: np.ndarray) -> str:
        """A hash of the weights (an encoder) or of the vectors (saved embeddings): other weights,
        another row."""
        digest = hashlib.sha256()
        if self.encoder is not None:
            digest.update(type(self.encoder).__qualname__.encode())
            for key, tensor in sorted(self.encoder.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(np.ascontiguousarray(embeddings).tobytes())
        return stable_hash(digest.hexdigest(), 12)

    def model_card(self, embeddings: np.ndarray) -> dict[str, Any]:
        if self.encoder is None:
            return {"backbone": None, "parameters": None, "embedding_dim": int(embeddings.shape[1]), "images_seen": None}
        return {"backbone": architecture(self.encoder), "embedding_dim": int(embeddings.shape[1]),
                "parameters": int(sum(p.numel() for p in self.encoder.parameters())), "images_seen": None}


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: embeddings file does not exist")
    try:
        with np.load(path, allow_pickle=False) as saved:  # never unpickle: reading data runs no code
            missing = [k for k in ("object_id", "embeddings") if k not in saved.files]
            if missing:
                raise DataError(f"{path}: no array {missing[0]!r} (it holds {saved.files}); save it with "
                                "np.savez(path, object_id=ids, embeddings=vectors)")
            return saved["object_id"].astype(str), np.asarray(saved["embeddings"], dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc


def _align(ids: np.ndarray, vectors: np.ndarray, data: SurveyData, origin: str) -> np.ndarray:
    """The saved rows in the dataset's row order; every object needs exactly one row."""
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise DataError(f"{origin}: embeddings must be (N, D) with one row per object id; got shape "
                        f"{vectors.shape} for {len(ids)} ids")
    if len(set(ids.tolist())) != len(ids):
        raise DataError(f"{origin}: object ids are not unique")
    if not np.isfinite(vectors).all():
        row = int(np.where(~np.isfinite(vectors).all(axis=1))[0][0])
        raise DataError(f"{origin}: the embedding of object {ids[row]!r} is not finite")
    row_of = {oid: i for i, oid in enumerate(ids.tolist())}
    wanted = [str(o) for o in data.object_id]
    absent = [o for o in wanted if o not in row_of]
    if absent:
        raise DataError(f"{origin}: {len(absent)} of the dataset's {len(wanted)} objects have no embedding, "
                        f"e.g. {absent[0]!r}")
    extra = len(ids) - len(wanted)
    if extra:
        known = set(wanted)
        stray = next(o for o in ids.tolist() if o not in known)
        raise DataError(f"{origin}: {extra} object id(s) are not in the dataset, e.g. {stray!r} "
                        "(embeddings of another dataset?)")
    return vectors[[row_of[o] for o in wanted]]


def _embed(encoder: torch.nn.Module, normalizer: Normalizer, data: SurveyData, device: torch.device,
           label: str) -> np.ndarray:
    def embed_batch(batch: dict) -> torch.Tensor:
        out = encoder(normalizer(batch["image"], batch["mask"]))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(batch["image"]):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"{label}: the encoder must map (B, C, H, W) images to (B, D) vectors; for "
                             f"{tuple(batch['image'].shape)} it returned {shape}")
        return out

    was_training = encoder.training
    encoder.eval().to(device)
    try:
        embeddings = embed_rows(embed_batch, data, device, with_ivar=False)
    finally:
        encoder.train(was_training)
    if not np.isfinite(embeddings).all():
        raise FloatingPointError(f"{label}: non-finite embeddings; nothing was written")
    return embeddings
