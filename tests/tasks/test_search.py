"""Exact cosine top-k and rankings: brute-force agreement, self-exclusion, ties, bad input."""

import numpy as np
import pytest

from astrobench.tasks.search import cosine_ranking, cosine_topk


def _brute_force(queries, gallery, exclude=None):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sim = q @ g.T
    if exclude is not None:
        sim[np.arange(len(q)), exclude] = -np.inf
    return sim, np.argsort(-sim, axis=1, kind="stable")


def test_topk_matches_brute_force_across_chunks():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    sim, order = _brute_force(queries.astype(np.float64), gallery.astype(np.float64))
    values, indices = cosine_topk(queries, gallery, 10, chunk_size=8, device="cpu")
    assert indices.tolist() == order[:, :10].tolist()
    assert values == pytest.approx(np.take_along_axis(sim, order[:, :10], 1), abs=1e-5)


def test_topk_excludes_self_matches():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    _, indices = cosine_topk(x, x, 5, exclude=np.arange(50), chunk_size=7, device="cpu")
    assert not np.any(indices == np.arange(50)[:, None])
    _, order = _brute_force(x.astype(np.float64), x.astype(np.float64), exclude=np.arange(50))
    assert indices.tolist() == order[:, :5].tolist()


def test_ties_rank_by_lower_gallery_index():
    # rows 0, 2, 3, 5 are the same direction as the query (different lengths: equal cosine 1);
    # the top 3 must be 0, 2, 3 in that order, at the boundary too (row 5 is tied with row 3)
    gallery = np.array([[1, 0], [0, 1], [2, 0], [3, 0], [-1, 0], [5, 0]], dtype=np.float32)
    values, indices = cosine_topk(np.array([[1.0, 0.0]]), gallery, 3, device="cpu")
    assert indices.tolist() == [[0, 2, 3]]
    assert values.tolist() == [[1.0, 1.0, 1.0]]
    # identical embeddings everywhere: the ranking is the gallery order
    same = np.ones((6, 3), dtype=np.float32)
    _, idx = cosine_topk(same, same, 5, exclude=np.arange(6), device="cpu")
    assert idx[0].tolist() == [1, 2, 3, 4, 5] and idx[3].tolist() == [0, 1, 2, 4, 5]
    ranked = np.concatenate([r for _, r in cosine_ranking(same, same, exclude=np.arange(6), chunk_size=4)])
    assert ranked[2].tolist() == [0, 1, 3, 4, 5]


def test_ranking_matches_stable_argsort():
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=(40, 4)), 1).astype(np.float32)
    chunks = list(cosine_ranking(x, x, exclude=np.arange(40), chunk_size=16, device="cpu"))
    assert [start for start, _ in chunks] == [0, 16, 32]
    ranked = np.concatenate([r for _, r in chunks])
    _, order = _brute_force(x.astype(np.float64), x.astype(np.float64), exclude=np.arange(40))
    assert ranked.shape == (40, 39)
    # same neighbours; orders may differ only where float32 and float64 similarities disagree on ties
    assert np.mean(ranked == order[:, :39]) > 0.99


def test_zero_vector_has_zero_similarity():
    values, _ = cosine_topk(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), 2, device="cpu")
    assert values.tolist() == [[0.0, 0.0]]


def test_bad_input_is_a_clear_error():
    g = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="no queries"):
        cosine_topk(np.zeros((0, 3)), g, 1)
    with pytest.raises(ValueError, match="gallery is empty"):
        cosine_topk(np.ones((1, 3)), np.zeros((0, 3)), 1)
    with pytest.raises(ValueError, match="dimension"):
        cosine_topk(np.ones((1, 4)), g, 1)
    with pytest.raises(ValueError, match="k=5"):
        cosine_topk(g, g, 5, exclude=np.arange(5))
    with pytest.raises(ValueError, match="non-finite"):
        cosine_topk(np.array([[np.nan, 0, 0]]), g, 1)
    with pytest.raises(ValueError, match="exclude"):
        cosine_topk(g, g, 1, exclude=np.arange(4))
