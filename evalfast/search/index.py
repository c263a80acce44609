"""Exact inner-product search over unit vectors, block by block, returning a trec_eval-ordered :class:`Run`.

The corpus is searched ``DOC_BLOCK`` rows at a time, on a CPU with FAISS's brute-force kernel (a BLAS GEMM and a
heap per query), on a GPU with a two-node onnxruntime graph (Gemm and TopK on the CUDA provider, fp32 without
TF32), and each block's candidates are merged into a running top list. The corpus is only read, never copied
whole, so it may be a read-only np.memmap larger than memory: memory is O(DOC_BLOCK x dim + n_queries x k).

Each candidate's score is then recomputed pair by pair, so that identical documents get bit-identical scores
whatever the batch (BLAS kernels do not promise that), and ties are broken as trec_eval breaks them. A tie that
reaches past the candidates is resolved against every document, again reading the corpus in blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from evalfast.data.run import Run, order_like_trec_eval

DOC_BLOCK = 1 << 18  # corpus rows per FAISS call: 384 MB of float32 at 384 dims, read in place from a memmap
TIE_MARGIN = 8  # candidates fetched past k, so ties and rounding at the cutoff are decided exactly
PAIR_BLOCK = 1 << 14  # (query, document) pairs rescored at once
GPU_SCORES = 1 << 28  # query x document scores one GPU call holds (1 GiB of float32)


def exact_scores(query_vectors: np.ndarray, doc_vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """float32 (n, depth): inner product of query row i with document ``ids[i, j]``; -inf where ids is -1.

    Every pair is computed by the same float32 reduction, so equal vectors give equal scores. Only the
    documents named in ``ids`` are read from doc_vectors, ``PAIR_BLOCK`` pairs at a time.
    """
    scores = np.full(ids.shape, -np.inf, np.float32)
    flat_scores, flat_ids = scores.reshape(-1), ids.reshape(-1)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    for start in range(0, flat_ids.size, PAIR_BLOCK):
        block = slice(start, start + PAIR_BLOCK)
        valid = np.flatnonzero(flat_ids[block] >= 0) + start
        docs = np.asarray(doc_vectors[flat_ids[valid]], np.float32)
        flat_scores[valid] = np.einsum("ij,ij->i", query_vectors[rows[valid]], docs)
    return scores


def _candidates(doc_vectors: np.ndarray, query_vectors: np.ndarray, depth: int, device: str) -> np.ndarray:
    """int64 (n_queries, depth): the ``depth`` best documents per query by a GEMM-rounded inner product.

    Each ``DOC_BLOCK`` of doc_vectors is searched for all queries at once (so a memmap is read from disk once)
    and its hits, offset by the block start, are merged into one heap per query.
    """
    import faiss

    block_top = _faiss_top if device == "cpu" else _OnnxTop(device)
    heap = faiss.ResultHeap(len(query_vectors), depth, keep_max=True)
    for start in range(0, len(doc_vectors), DOC_BLOCK):
        block = np.ascontiguousarray(doc_vectors[start : start + DOC_BLOCK], np.float32)  # a view if float32 rows
        scores, ids = block_top(query_vectors, block, min(depth, len(block)))
        heap.add_result(scores, ids + start)
    heap.finalize()
    return heap.I


def _faiss_top(query_vectors: np.ndarray, docs: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    return faiss.knn(query_vectors, docs, depth, metric=faiss.METRIC_INNER_PRODUCT)


def _top_k_graph() -> bytes:
    """ONNX graph: scores = queries @ docs.T, then the ``k`` largest per row (values and column indices)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Gemm", ["queries", "docs"], ["scores"], transB=1),
         helper.make_node("TopK", ["scores", "k"], ["values", "indices"], axis=1, largest=1, sorted=1)],
        "top_k",
        [helper.make_tensor_value_info("queries", TensorProto.FLOAT, ["q", "dim"]),
         helper.make_tensor_value_info("docs", TensorProto.FLOAT, ["n", "dim"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["q", "k"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["q", "k"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


class _OnnxTop:
    """Block top-k through onnxruntime: each document block is copied to the device once and queried in slices of
    queries small enough that their score matrix stays within ``GPU_SCORES``."""

    def __init__(self, device: str):
        from evalfast.model.sessions import import_onnxruntime, onnx_session

        self.device = device
        self.session = onnx_session(_top_k_graph(), device)
        self.value_type = import_onnxruntime().OrtValue

    def __call__(self, query_vectors: np.ndarray, docs: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        resident = self.value_type.ortvalue_from_numpy(docs, self.device, 0)
        k = np.array([depth], np.int64)
        step = max(1, GPU_SCORES // len(docs))
        values, indices = [], []
        for start in range(0, len(query_vectors), step):
            binding = self.session.io_binding()
            binding.bind_cpu_input("queries", query_vectors[start : start + step])
            binding.bind_ortvalue_input("docs", resident)
            binding.bind_cpu_input("k", k)
            binding.bind_output("values")
            binding.bind_output("indices")
            self.session.run_with_iobinding(binding)
            slice_values, slice_indices = binding.copy_outputs_to_cpu()
            values.append(slice_values)
            indices.append(slice_indices)
        return np.concatenate(values), np.concatenate(indices)


def _rank_every_document(doc_vectors: np.ndarray, query_vectors: np.ndarray, k: int, tie_rank: np.ndarray) -> Run:
    """Top ``k`` of the whole corpus for a few queries (float32 (n, dim)), scored exactly, ordered like trec_eval.

    The fallback for ties wider than the margin. Documents are scored ``max(k, PAIR_BLOCK // n)`` at a time and
    merged into the running top ``k``: one pass over the corpus, memory bounded by the step.
    """
    n_queries, n_docs = len(query_vectors), len(doc_vectors)
    best = Run(np.empty((n_queries, 0), np.int64), np.empty((n_queries, 0), np.float32))
    step = max(k, PAIR_BLOCK // n_queries)
    for start in range(0, n_docs, step):
        docs = np.arange(start, min(start + step, n_docs))
        block_ids = np.broadcast_to(docs, (n_queries, len(docs)))
        ranked = order_like_trec_eval(
            np.concatenate([best.doc_ids, block_ids], axis=1),
            np.concatenate([best.scores, exact_scores(query_vectors, doc_vectors, block_ids)], axis=1), tie_rank)
        best = Run(ranked.doc_ids[:, :k], ranked.scores[:, :k])
    return best


def search(doc_vectors: np.ndarray, query_vectors: np.ndarray, k: int, tie_rank: np.ndarray,
           device: str = "cpu", candidates: Callable[[np.ndarray, int], np.ndarray] | None = None) -> Run:
    """Top-``k`` documents per query by inner product (cosine for unit vectors), best first.

    doc_vectors float32 (n_docs, dim), an array or a read-only np.memmap (read in blocks, never copied whole);
    query_vectors float32 (n_queries, dim); ``k`` is capped at n_docs. Equal scores are ordered as trec_eval
    orders them (``tie_rank``, see :func:`descending_name_rank`). ``device`` "cuda" finds the candidates on the
    GPU (onnxruntime-gpu); rescoring and tie-breaking stay on the CPU, so both devices return the same run.
    ``candidates(queries, depth)``, when given, finds the int64 (n_queries, depth) candidates instead (the Ray
    engine searches its shards so); doc_vectors then only needs to be indexable by id arrays.
    """
    query_vectors = np.ascontiguousarray(query_vectors, np.float32)
    if candidates is None:
        doc_vectors = np.asarray(doc_vectors)  # a memmap stays a view of the file
        candidates = partial(_candidates, doc_vectors, device=device)
    n_docs = len(doc_vectors)
    k = min(k, n_docs)
    depth = min(n_docs, k + TIE_MARGIN)
    ids = candidates(query_vectors, depth)
    run = order_like_trec_eval(ids, exact_scores(query_vectors, doc_vectors, ids), tie_rank)
    doc_ids, scores = run.doc_ids[:, :k].copy(), run.scores[:, :k].copy()
    if 0 < k and depth < n_docs:
        open_rows = np.flatnonzero(run.scores[:, k - 1] == run.scores[:, -1])
        if open_rows.size:  # rare: more documents tie at the cutoff than the margin holds
            full = _rank_every_document(doc_vectors, query_vectors[open_rows], k, tie_rank)
            doc_ids[open_rows], scores[open_rows] = full.doc_ids, full.scores
    return Run(doc_ids, scores)
