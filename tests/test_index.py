"""FAISS search against a brute-force numpy reference that breaks ties as trec_eval does; blocked and memmapped
corpora give the same runs as one in-memory block."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import evalfast.search.index
from evalfast.data.run import descending_name_rank
from evalfast.search.index import search


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def brute_force(docs, queries, k, names):
    scores = queries.astype(np.float64) @ docs.T.astype(np.float64)
    ranked = []
    for row in scores:  # reference only: plain Python sort by (-score, name descending)
        order = sorted(range(len(names)), key=lambda d: (-round(row[d], 5), [-ord(c) for c in names[d]]))
        ranked.append(order[:k])
    return np.array(ranked)


def corpus_with_ties(seed: int, n_base: int = 40, dim: int = 8):
    """Unit documents whose second half duplicates the first (exact score ties), names shuffled so that tied
    documents are not ordered by position; and unit queries."""
    rng = np.random.default_rng(seed)
    base = unit(rng.normal(size=(n_base, dim)))
    docs = np.concatenate([base, base[: n_base // 2]])
    names = [f"doc-{i:03d}" for i in rng.permutation(len(docs))]
    return docs, names, unit(rng.normal(size=(15, dim)))


def as_memmap(array: np.ndarray, path) -> np.memmap:
    """A read-only float32 memmap of ``array`` written to ``path``."""
    writer = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=array.shape)
    writer[:] = array
    writer.flush()
    del writer
    return np.load(path, mmap_mode="r")


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


@pytest.mark.parametrize("block", [1, 3, 7, 16, 59, 60, 1000])  # < k, not dividing 60 documents, one block
def test_blocked_search_equals_whole_corpus_search(monkeypatch, block):
    docs, names, queries = corpus_with_ties(4)
    tie_rank = descending_name_rank(names)
    whole = search(docs, queries, 10, tie_rank)
    monkeypatch.setattr(evalfast.search.index, "DOC_BLOCK", block)
    blocked = search(docs, queries, 10, tie_rank)
    np.testing.assert_array_equal(blocked.doc_ids, whole.doc_ids)
    np.testing.assert_array_equal(blocked.scores, whole.scores)
    np.testing.assert_array_equal(blocked.doc_ids, brute_force(docs, queries, 10, names))


def test_memmap_corpus_gives_the_in_memory_run(monkeypatch, tmp_path):
    docs, names, queries = corpus_with_ties(5)
    tie_rank = descending_name_rank(names)
    in_memory = search(docs, queries, 10, tie_rank)
    mapped = as_memmap(docs, tmp_path / "docs.npy")
    monkeypatch.setattr(evalfast.search.index, "DOC_BLOCK", 7)
    from_disk = search(mapped, queries, 10, tie_rank)
    np.testing.assert_array_equal(from_disk.doc_ids, in_memory.doc_ids)
    np.testing.assert_array_equal(from_disk.scores, in_memory.scores)


def test_ties_wider_than_the_margin_are_broken_by_name():
    rng = np.random.default_rng(5)
    far = unit(rng.normal(size=(20, 8)))
    target = unit(rng.normal(size=(1, 8)))
    docs = np.concatenate([far * -1, np.repeat(target, 30, axis=0)])  # 30 identical best documents
    names = [f"d{i:03d}" for i in range(len(docs))]
    run = search(docs, target, 3, descending_name_rank(names))
    # all 30 tie; trec_eval takes the names in descending order: d049, d048, d047
    assert [names[i] for i in run.doc_ids[0]] == ["d049", "d048", "d047"]


@pytest.mark.parametrize("block", [4, 7, 1000])
def test_wide_ties_across_blocks_are_broken_by_name(monkeypatch, block):
    rng = np.random.default_rng(6)
    query = unit(rng.normal(size=(1, 8)))
    tied = unit(query + 0.1 * rng.normal(size=(1, 8)))
    # the query itself (best), 30 identical runners-up and 25 far documents, shuffled over many blocks
    kinds = rng.permutation(np.repeat(["best", "tied", "far"], [1, 30, 25]))
    docs = np.empty((len(kinds), 8), np.float32)
    docs[kinds == "best"], docs[kinds == "tied"] = query, tied
    docs[kinds == "far"] = -unit(rng.normal(size=(25, 8)))
    names = [f"d{i:03d}" for i in rng.permutation(len(docs))]
    queries = np.concatenate([query, unit(rng.normal(size=(3, 8)))])  # one open row among closed ones
    monkeypatch.setattr(evalfast.search.index, "DOC_BLOCK", block)
    run = search(docs, queries, 12, descending_name_rank(names))
    best = [names[i] for i in np.flatnonzero(kinds == "best")]
    runners_up = sorted((names[i] for i in np.flatnonzero(kinds == "tied")), reverse=True)
    assert [names[i] for i in run.doc_ids[0]] == best + runners_up[:11]
    np.testing.assert_array_equal(run.doc_ids, brute_force(docs, queries, 12, names))


def test_a_memmapped_corpus_is_never_copied_whole(monkeypatch, tmp_path):
    rng = np.random.default_rng(7)
    docs = unit(rng.normal(size=(40_000, 64)))  # 10 MB
    docs[-300:] = docs[-1]  # 300 identical documents: query 0's ties reach past the margin, into the fallback
    mapped = as_memmap(docs, tmp_path / "docs.npy")
    queries = np.concatenate([docs[-1:], unit(rng.normal(size=(4, 64)))])
    tie_rank = descending_name_rank([f"{i:05d}" for i in range(len(docs))])
    monkeypatch.setattr(evalfast.search.index, "DOC_BLOCK", 2_000)
    monkeypatch.setattr(evalfast.search.index, "PAIR_BLOCK", 1_024)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        run = search(mapped, queries, 20, tie_rank)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < docs.nbytes / 4
    np.testing.assert_array_equal(run.doc_ids[0], np.arange(39_999, 39_979, -1))  # names descending


@pytest.mark.parametrize("block, scores_per_call", [(1000, 1 << 28), (7, 1 << 28), (16, 40)])
def test_onnxruntime_top_k_gives_the_faiss_run(monkeypatch, block, scores_per_call):
    """The GPU search graph, run here on onnxruntime's CPU provider: same runs as FAISS, blocked and in query
    slices (40 scores per call: two queries at a time over a 16-document block)."""
    docs, names, queries = corpus_with_ties(6)
    tie_rank = descending_name_rank(names)
    with_faiss = search(docs, queries, 10, tie_rank)
    monkeypatch.setattr(evalfast.search.index, "DOC_BLOCK", block)
    monkeypatch.setattr(evalfast.search.index, "GPU_SCORES", scores_per_call)
    monkeypatch.setattr(evalfast.search.index, "_faiss_top", evalfast.search.index._OnnxTop("cpu"))
    with_onnx = search(docs, queries, 10, tie_rank)
    np.testing.assert_array_equal(with_onnx.doc_ids, with_faiss.doc_ids)
    np.testing.assert_array_equal(with_onnx.scores, with_faiss.scores)
