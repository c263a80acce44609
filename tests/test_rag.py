"""RAG-style metrics (evalfast.metrics.rag) against RAGAS's definitions, written out here query by query.

RAGAS's context precision@k is sum over ranks i <= k of precision@i * v_i, divided by the number of relevant
contexts in the top k (0 when there is none); context recall is the share of the reference contexts retrieved.
The thresholded variants decide relevance by similarity instead: a retrieved context counts when its similarity
with some reference reaches the threshold, a reference is found when some retrieved context reaches it.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalfast.data.qrels import Qrels
from evalfast.metrics import judge
from evalfast.metrics.rag import context_precision, rag_metrics


def ragas_context_precision(relevant: list[bool]) -> float:
    hits = 0
    total = 0.0
    for rank, is_relevant in enumerate(relevant, 1):
        if is_relevant:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def random_case(seed: int, n_queries: int = 40, n_docs: int = 60, depth: int = 12, dim: int = 8):
    rng = np.random.default_rng(seed)
    run = np.stack([rng.choice(n_docs, depth, replace=False) for _ in range(n_queries)])
    run[rng.random(run.shape) < 0.1] = -1  # some queries retrieve fewer documents
    run = np.where(np.cumsum(run < 0, axis=1) > 0, -1, run)  # padding only at the end
    pairs = {(q, int(d)) for q in range(n_queries) for d in rng.choice(n_docs + 5, rng.integers(0, 6), replace=False)}
    query, doc = (np.array(column, np.int64) for column in zip(*sorted(pairs)))
    relevance = rng.choice([0.0, 1.0, 2.0], len(query), p=[0.3, 0.4, 0.3])
    qrels = Qrels(query, doc, relevance, n_queries, n_docs + 5)  # docs past n_docs: judged, not in the corpus
    vectors = rng.normal(size=(n_docs, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return run, qrels, vectors


@pytest.mark.parametrize("seed", range(5))
def test_the_four_metrics_follow_ragas_definitions_query_by_query(seed: int) -> None:
    run, qrels, vectors = random_case(seed)
    k, threshold = 10, 0.3
    got = rag_metrics(judge(run, qrels), run, qrels, vectors, k, threshold)
    for q in range(qrels.n_queries):
        references = [int(d) for d, r, qq in zip(qrels.doc, qrels.relevance, qrels.query) if qq == q and r > 0]
        retrieved = [int(d) for d in run[q, :k] if d >= 0]
        assert got["context_precision@10"][q] == pytest.approx(ragas_context_precision([d in references for d in retrieved]))
        expected_recall = len(set(retrieved) & set(references)) / len(references) if references else 0.0
        assert got["context_recall@10"][q] == pytest.approx(expected_recall)

        def similar(a: int, b: int) -> bool:
            return b < len(vectors) and float(vectors[a] @ vectors[b]) >= threshold

        close = [any(similar(d, r) for r in references) for d in retrieved]
        assert got["context_precision@10 (cosine >= 0.3)"][q] == pytest.approx(ragas_context_precision(close))
        found = sum(any(similar(d, r) for d in retrieved) for r in references)
        assert got["context_recall@10 (cosine >= 0.3)"][q] == pytest.approx(found / len(references) if references else 0)


def test_context_precision_weighs_each_relevant_rank_by_the_precision_there() -> None:
    """Relevant at ranks 1 and 3 of 3: (1/1 + 2/3) / 2; nothing relevant: 0."""
    relevant = np.array([[True, False, True], [False, False, False], [False, True, False]])
    np.testing.assert_allclose(context_precision(relevant), [(1 + 2 / 3) / 2, 0.0, 0.5])


def test_the_cutoff_is_capped_at_the_run_depth_and_named_by_it() -> None:
    run, qrels, vectors = random_case(7, depth=4)
    got = rag_metrics(judge(run, qrels), run, qrels, vectors, 10, 0.5, similarity="dot")
    assert set(got) == {"context_precision@4", "context_recall@4", "context_precision@4 (dot >= 0.5)",
                        "context_recall@4 (dot >= 0.5)"}
