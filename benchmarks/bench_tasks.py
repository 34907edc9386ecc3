"""Speed of the task machinery (pytest-benchmark; never asserted as a wall time).

Run:  python -m pytest benchmarks/bench_tasks.py --benchmark-enable -p no:cacheprovider -s

- exact cosine top-10 of 1000 queries over 10^6 x 128 float32 embeddings: ``search.cosine_topk``
  (chunked matrix product + topk, torch) against plain NumPy (similarity rows, then ``np.argsort``
  of each full row). Compare the two means for the ratio.
- the redshift linear probe at the ``quick`` size: ``RedshiftTask(n_bins=180)`` (the default) on
  6,000 x 512 synthetic embeddings (70% train), the whole ``evaluate`` (fit, predict, scores),
  against scikit-learn's ``StandardScaler`` + ``LogisticRegression`` on the same training rows
  (the reference the torch probe replaced: ~80 s on 16 cores for real quick-set embeddings).
- ``probe_timing(n, d, n_classes, device)``: fit + predict of the ``linear`` probe on n x d
  synthetic embeddings with redshift-like bins, generated on the device; the GPU check calls it
  for 200,000 x 2048 x 180 classes on CUDA (``python -c "from benchmarks.bench_tasks import
  probe_timing; print(probe_timing(200_000, 2048, 180, 'cuda'))"`` from the repository root).

Sizes can be shrunk for a quick look with ASTROBENCH_BENCH_GALLERY / _QUERIES / _PROBE_ROWS.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from astrobench.tasks.base import EmbeddingInputs
from astrobench.tasks.linear_probe import LinearProbe
from astrobench.tasks.probes import Target, fit_probe
from astrobench.tasks.redshift import RedshiftTask
from astrobench.tasks.search import cosine_topk

N_GALLERY = int(os.environ.get("ASTROBENCH_BENCH_GALLERY", 1_000_000))
N_QUERIES = int(os.environ.get("ASTROBENCH_BENCH_QUERIES", 1000))
DIM, K = 128, 10
N_PROBE, PROBE_DIM = int(os.environ.get("ASTROBENCH_BENCH_PROBE_ROWS", 6000)), 512


@pytest.fixture(scope="module")
def embeddings() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((N_GALLERY, DIM), dtype=np.float32)
    queries = gallery[rng.choice(N_GALLERY, N_QUERIES, replace=False)] + 0.1 * rng.standard_normal((N_QUERIES, DIM), dtype=np.float32)
    return queries, gallery


def numpy_argsort_topk(queries: np.ndarray, gallery: np.ndarray, k: int, rows_per_block: int = 32) -> np.ndarray:
    """The plain baseline: normalise, full similarity rows, argsort each whole row, keep k."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), rows_per_block):  # blocks only bound memory; every row is fully sorted
        sim = q[start : start + rows_per_block] @ g.T
        out[start : start + rows_per_block] = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return out


def test_topk_chunked_torch_cpu(benchmark, embeddings):
    queries, gallery = embeddings
    benchmark.extra_info.update(n_gallery=N_GALLERY, n_queries=N_QUERIES, dim=DIM, k=K, device="cpu")
    _, indices = benchmark.pedantic(cosine_topk, args=(queries, gallery, K), kwargs={"device": "cpu"}, rounds=3, iterations=1)
    # same neighbours as the baseline on a few queries (a correctness check, not a timing)
    assert np.array_equal(indices[:4], numpy_argsort_topk(queries[:4], gallery, K))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_topk_chunked_torch_cuda(benchmark, embeddings):
    queries, gallery = embeddings
    gallery_gpu = torch.as_tensor(gallery, device="cuda")
    benchmark.extra_info.update(n_gallery=N_GALLERY, n_queries=N_QUERIES, dim=DIM, k=K, device="cuda")
    benchmark.pedantic(cosine_topk, args=(queries, gallery_gpu, K), kwargs={"device": "cuda"}, rounds=5, iterations=1, warmup_rounds=1)


def test_topk_numpy_argsort_baseline(benchmark, embeddings):
    queries, gallery = embeddings
    benchmark.extra_info.update(n_gallery=N_GALLERY, n_queries=N_QUERIES, dim=DIM, k=K, device="cpu (numpy)")
    benchmark.pedantic(numpy_argsort_topk, args=(queries, gallery, K), rounds=1, iterations=1)


def synthetic_embeddings(n: int, d: int, device: str | torch.device = "cpu", seed: int = 0,
                         z_max: float = 0.4) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, d) float32 embeddings and redshifts, made on ``device``: a smooth code of z (sines and
    cosines of 5 frequencies) and 24 nuisance factors mixed into d correlated tanh features plus
    noise, like an encoder's output; z ~ Gamma(3, 0.035) as in a shallow galaxy survey."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    uniform = torch.rand(n, 3, generator=g, device=device, dtype=torch.float64).clamp_min(1e-12)
    z = (-0.035 * uniform.log().sum(1)).clamp(1e-4, 0.6)  # a sum of 3 exponentials: Gamma(3)
    phase = torch.pi * (z / z_max)[:, None] * torch.arange(1, 6, device=device, dtype=torch.float64)
    code = torch.cat([phase.sin(), phase.cos(), (z / z_max)[:, None]], 1).float() * 1.5
    latent = torch.cat([code, torch.randn(n, 24, generator=g, device=device)], 1)
    mixing = torch.randn(latent.shape[1], d, generator=g, device=device) / latent.shape[1] ** 0.5
    x = torch.tanh(latent @ mixing)
    x += 0.3 * torch.randn(n, d, generator=g, device=device)
    return x, z


def _bins(z: torch.Tensor, n_bins: int, z_max: float = 0.4) -> np.ndarray:
    return np.minimum((z.cpu().numpy() / (z_max / n_bins)).astype(np.int64), n_bins - 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe_timing(n: int, d: int, n_classes: int = 180, device: str | torch.device = "cpu", seed: int = 0,
                 dtype: str = "float32") -> dict:
    """Seconds to fit the ``linear`` probe on n x d embeddings over ``n_classes`` redshift bins and to
    predict the same n rows, on ``device`` (the data are made there first, not timed)."""
    device = torch.device(device)
    x, z = synthetic_embeddings(n, d, device, seed)
    target = Target.of_binned(z.cpu().numpy(), _bins(z, n_classes), n_classes)
    _sync(device)
    start = time.perf_counter()
    fitted = fit_probe(LinearProbe(dtype=dtype), x, target)
    _sync(device)
    fitted_at = time.perf_counter()
    probabilities = fitted.predict(x).probabilities
    done = time.perf_counter()
    accuracy = float(np.mean(probabilities.argmax(1) == target.classes))
    return {"n": n, "d": d, "n_classes": n_classes, "device": str(device), "fit_s": fitted_at - start,
            "predict_s": done - fitted_at, "total_s": done - start, "train_accuracy": accuracy, **fitted.info}


@pytest.fixture(scope="module")
def quick_redshift() -> EmbeddingInputs:
    x, z = synthetic_embeddings(N_PROBE, PROBE_DIM)
    order = np.random.default_rng(0).permutation(N_PROBE)
    splits = {"train": order[: int(0.7 * N_PROBE)], "val": order[int(0.7 * N_PROBE) : int(0.8 * N_PROBE)],
              "test": order[int(0.8 * N_PROBE) :]}
    return EmbeddingInputs(x.numpy(), np.arange(N_PROBE).astype(str), {"redshift": z.numpy()}, splits)


def test_redshift_linear_probe_quick(benchmark, quick_redshift):
    task = RedshiftTask()  # 180 bins over 0 < z < 0.4
    result = benchmark.pedantic(task.evaluate, args=(quick_redshift,), kwargs={"protocol": "linear", "seed": 0, "label_budget": None},
                                rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(n=N_PROBE, dim=PROBE_DIM, threads=torch.get_num_threads(), sigma_mad=result.scores["sigma_mad"],
                                **{k: v for k, v in result.details["probe_info"].items()})


def test_redshift_linear_probe_sklearn_reference(benchmark, quick_redshift):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = quick_redshift.splits["train"]
    bins = RedshiftTask().to_bins(quick_redshift.labels["redshift"][train])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    fitted = benchmark.pedantic(model.fit, args=(quick_redshift.embeddings[train], bins), rounds=1, iterations=1)
    benchmark.extra_info.update(n_train=len(train), n_iter=int(fitted[-1].n_iter_[0]))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))])
def test_probe_timing(benchmark, device):
    n, d = (N_PROBE, PROBE_DIM) if device == "cpu" else (200_000, 2048)
    out = benchmark.pedantic(probe_timing, args=(n, d, 180, device), rounds=1, iterations=1)
    benchmark.extra_info.update(out)
