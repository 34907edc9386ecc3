"""Speed of the task machinery (pytest-benchmark; never asserted as a wall time).

Run:  python -m pytest benchmarks/bench_tasks.py --benchmark-enable -p no:cacheprovider -s

- exact cosine top-10 of 1000 queries over 10^6 x 128 float32 embeddings: ``search.cosine_topk``
  (chunked matrix product + topk, torch) against plain NumPy (similarity rows, then ``np.argsort``
  of each full row). Compare the two means for the ratio.
- a linear probe on 10^5 x 512 embeddings (10 classes): scikit-learn ``LogisticRegression`` (lbfgs)
  after ``StandardScaler`` against ``TorchLinearProbe`` (full-batch L-BFGS) on the CPU, and on the
  GPU when one is present.

Sizes can be shrunk for a quick look with ASTROBENCH_BENCH_GALLERY / _QUERIES / _PROBE_ROWS.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from astrobench.tasks.probes import TorchLinearProbe, fit_probe, sklearn_linear_classifier
from astrobench.tasks.search import cosine_topk

N_GALLERY = int(os.environ.get("ASTROBENCH_BENCH_GALLERY", 1_000_000))
N_QUERIES = int(os.environ.get("ASTROBENCH_BENCH_QUERIES", 1000))
DIM, K = 128, 10
N_PROBE, PROBE_DIM, PROBE_CLASSES = int(os.environ.get("ASTROBENCH_BENCH_PROBE_ROWS", 100_000)), 512, 10


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


@pytest.fixture(scope="module")
def probe_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, PROBE_CLASSES, N_PROBE)
    centres = rng.standard_normal((PROBE_CLASSES, PROBE_DIM), dtype=np.float32) * 0.05
    x = rng.standard_normal((N_PROBE, PROBE_DIM), dtype=np.float32) + centres[y]
    return x, y


def test_linear_probe_sklearn(benchmark, probe_data):
    x, y = probe_data
    benchmark.extra_info.update(n=N_PROBE, dim=PROBE_DIM, classes=PROBE_CLASSES)
    probe = benchmark.pedantic(fit_probe, args=(sklearn_linear_classifier(), x, y), rounds=1, iterations=1)
    benchmark.extra_info["n_iter"] = int(probe[-1].n_iter_[0])
    benchmark.extra_info["train_accuracy"] = float(np.mean(probe.predict(x) == y))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))])
def test_linear_probe_torch(benchmark, probe_data, device):
    x, y = probe_data
    benchmark.extra_info.update(n=N_PROBE, dim=PROBE_DIM, classes=PROBE_CLASSES, device=device)
    probe = benchmark.pedantic(fit_probe, args=(TorchLinearProbe(device=device), x, y), rounds=1 if device == "cpu" else 3, iterations=1)
    benchmark.extra_info["n_iter"] = probe.n_iter_
    benchmark.extra_info["train_accuracy"] = float(np.mean(probe.predict(x) == y))
