"""The seed's row-wise pairs protocol and its simulated metrics, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalfast.metrics.pairs import pairs_metrics
from evalfast.metrics.similarity import SIMULATED, pair_similarities, similarity_metrics

# Two queries' top 5 (doc ids, best first).
RUN = np.array([[4, 2, 7, 1, 0],
                [3, 5, 6, 8, 9]])


def test_pairs_hand_computed():
    query = np.array([0, 0, 0, 1, 1])
    doc = np.array([2, 9, 4, 3, 6])
    relevance = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    values = pairs_metrics(RUN, query, doc, relevance)
    # row 0: positive, doc 2 at rank 2 -> P@1 0, P@3 1/3, P@5 1/5, mrr 1/2, ndcg 1/log2(3)
    # row 1: positive, doc 9 not in q0's top 5 -> all 0
    # row 2: negative, doc 4 at rank 1 -> present in every top k -> P@k 0; mrr, ndcg 0
    # row 3: negative, doc 3 at rank 1 of q1 -> 0 everywhere
    # row 4: positive, doc 6 at rank 3 -> P@1 0, P@3 1/3, P@5 1/5, mrr 1/3, ndcg 1/2
    np.testing.assert_allclose(values["precision@1"], [0, 0, 0, 0, 0])
    np.testing.assert_allclose(values["precision@3"], [1 / 3, 0, 0, 0, 1 / 3])
    np.testing.assert_allclose(values["precision@5"], [1 / 5, 0, 0, 0, 1 / 5])
    np.testing.assert_allclose(values["mrr"], [1 / 2, 0, 0, 0, 1 / 3])
    np.testing.assert_allclose(values["ndcg@5"], [1 / math.log2(3), 0, 0, 0, 1 / 2])


def test_negative_row_absent_scores_one():
    values = pairs_metrics(RUN, np.array([1]), np.array([4]), np.array([0.0]))
    assert [values[f"precision@{k}"][0] for k in (1, 3, 5)] == [1.0, 1.0, 1.0]


def test_negative_row_below_cutoff_counts_only_where_absent():
    # doc 8 is rank 4 for q1: absent from top 1 and top 3, present in top 5
    values = pairs_metrics(RUN, np.array([1]), np.array([8]), np.array([0.0]))
    assert [values[f"precision@{k}"][0] for k in (1, 3, 5)] == [1.0, 1.0, 0.0]


def test_pair_similarities_are_row_dot_products():
    q = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    d = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(pair_similarities(q, d, np.array([0, 1, 1]), np.array([1, 0, 1])), [1.0, 0.8, 0.6], atol=1e-7)


def test_simulated_metrics_follow_the_seed_formulas_and_repeat():
    cosines = np.random.default_rng(0).uniform(-0.2, 1.0, 5000)
    first, again, other = (similarity_metrics(cosines, seed) for seed in (7, 7, 8))
    np.testing.assert_array_equal(first["similarity"], cosines)
    for name, (scale, noise) in SIMULATED.items():
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])
        assert first[name].min() >= 0.0 and first[name].max() <= 1.0
        inside = (scale * cosines - noise > 0) & (scale * cosines + noise < 1)
        deviation = first[name][inside] - scale * cosines[inside]
        assert np.abs(deviation).max() <= noise
        assert deviation.std() == pytest.approx(2 * noise / math.sqrt(12), rel=0.1)  # uniform(-w, w)
