"""FAISS search against a brute-force numpy reference that breaks ties as trec_eval does."""

from __future__ import annotations

import numpy as np
import pytest

from evalfast.index import search
from evalfast.run import descending_name_rank


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def brute_force(docs, queries, k, names):
    scores = queries.astype(np.float64) @ docs.T.astype(np.float64)
    ranked = []
    for row in scores:  # reference only: plain Python sort by (-score, name descending)
        order = sorted(range(len(names)), key=lambda d: (-round(row[d], 5), [-ord(c) for c in names[d]]))
        ranked.append(order[:k])
    return np.array(ranked)


@pytest.mark.parametrize("k", [1, 4, 10, 50])
def test_search_matches_brute_force_with_ties(k):
    rng = np.random.default_rng(3)
    base = unit(rng.normal(size=(12, 8)))
    docs = np.concatenate([base, base[:6]])  # documents 12..17 duplicate 0..5: exact score ties
    names = [f"doc-{i:02d}" for i in range(len(docs))]
    queries = unit(rng.normal(size=(20, 8)))
    run = search(docs, queries, k, descending_name_rank(names))
    expected = brute_force(docs, queries, min(k, len(docs)), names)
    np.testing.assert_array_equal(run.doc_ids, expected)
    assert run.doc_ids.shape == (20, min(k, len(docs)))
    assert np.all(np.diff(run.scores, axis=1) <= 1e-6)


def test_query_batches_do_not_change_results(monkeypatch):
    import evalfast.index

    rng = np.random.default_rng(4)
    docs, queries = unit(rng.normal(size=(30, 8))), unit(rng.normal(size=(25, 8)))
    tie_rank = descending_name_rank([str(i) for i in range(30)])
    whole = search(docs, queries, 5, tie_rank)
    monkeypatch.setattr(evalfast.index, "QUERY_BATCH", 7)
    batched = search(docs, queries, 5, tie_rank)
    np.testing.assert_array_equal(whole.doc_ids, batched.doc_ids)


def test_ties_wider_than_the_margin_are_broken_by_name():
    rng = np.random.default_rng(5)
    far = unit(rng.normal(size=(20, 8)))
    target = unit(rng.normal(size=(1, 8)))
    docs = np.concatenate([far * -1, np.repeat(target, 30, axis=0)])  # 30 identical best documents
    names = [f"d{i:03d}" for i in range(len(docs))]
    run = search(docs, target, 3, descending_name_rank(names))
    # all 30 tie; trec_eval takes the names in descending order: d049, d048, d047
    assert [names[i] for i in run.doc_ids[0]] == ["d049", "d048", "d047"]
