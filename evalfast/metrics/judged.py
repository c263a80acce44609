"""A run seen through the qrels (Judged), and the per-query prefix sums every metric kernel reads (Prefixes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from evalfast.data.qrels import Qrels, pair_keys
from evalfast.data.run import pack_rows


@dataclass(frozen=True)
class Judged:
    """A run seen through the qrels: what each metric kernel needs.

    gains float64 (n_queries, depth): relevance of the doc at each rank; 0 where the doc is unjudged, judged
        with relevance <= 0, or no hit (-1).
    n_relevant int64 (n_queries,): judged docs with relevance > 0.
    ideal_gains float64 (n_queries, m): each query's positive relevances sorted descending, zero padded;
        m = max(max n_relevant, 1).
    relevant_hits int64 (h,) or None: the flat indices (query * depth + rank index) of the positive gains,
        ascending. judge() records them as it finds them; None lets prefixes() look for them in gains.
    """

    gains: np.ndarray
    n_relevant: np.ndarray
    ideal_gains: np.ndarray
    relevant_hits: np.ndarray | None = None


def judge(run_doc_ids: np.ndarray, qrels: Qrels) -> Judged:
    """Look up every ranked doc in the qrels at once.

    Sorts each run row together with its query's judgments, in blocks of rows on THREADS threads
    (_gains_by_row_sort); np.searchsorted on (query, doc) keys where that does not apply (_gains_by_search).
    run_doc_ids int64 (n_queries, depth), -1 = no hit. Row i is query i, so n_queries >= qrels.n_queries (rows
    past qrels.n_queries have no judgments); doc ids may reach past qrels.n_docs (docs nobody judged).
    """
    run_doc_ids = np.asarray(run_doc_ids, np.int64)
    n_queries = run_doc_ids.shape[0]
    if n_queries < qrels.n_queries:
        raise ValueError(f"judge: run has {n_queries} query rows, qrels has {qrels.n_queries} queries")
    query, doc, relevance = qrels.by_query()
    with ThreadPoolExecutor(THREADS) as pool:
        ideal = pool.submit(_ideal_gains, query, relevance, n_queries)  # alongside the lookup's blocks
        found = _gains_by_row_sort(run_doc_ids, query, doc, relevance, pool)
        ideal_gains, n_relevant = ideal.result()
    gains, relevant_hits = found if found is not None else (_gains_by_search(run_doc_ids, qrels), None)
    return Judged(gains=gains, n_relevant=n_relevant, ideal_gains=ideal_gains, relevant_hits=relevant_hits)


def _ideal_gains(query: np.ndarray, relevance: np.ndarray, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(ideal_gains, n_relevant) as in Judged, from judgments grouped by query (Qrels.by_query)."""
    positive = np.flatnonzero(relevance > 0)
    relevant_query = query[positive]
    ideal_gains = pack_rows(relevant_query, -relevance[positive], n_queries, 0.0, min_width=1)
    ideal_gains.sort(axis=1)  # the negated gains ascending: largest gain first, the zero padding last
    np.subtract(0.0, ideal_gains, out=ideal_gains)  # 0.0 - x: no -0.0 in the padding
    return ideal_gains, np.bincount(relevant_query, minlength=n_queries)


def at_level(judged: Judged, qrels: Qrels, level: int) -> Judged:
    """The judged run with a document relevant when its judgment is >= level (an integer >= 1), each gain 1.

    What every measure except nDCG needs under a relevance level (ir-measures' rel=, trec_eval's -l). judged is
    judge(run, qrels): its gains are the judgments where those are > 0 (else 0), so the threshold is read from them
    without a second lookup.
    """
    if level < 1:
        raise ValueError(f"at_level: level {level} < 1")
    relevant = judged.gains >= level
    query, _, relevance = qrels.by_query()
    ideal_gains, n_relevant = _ideal_gains(query, (relevance >= level).astype(np.float64), judged.gains.shape[0])
    hits = judged.relevant_hits
    return Judged(gains=relevant.astype(np.float64), n_relevant=n_relevant, ideal_gains=ideal_gains,
                  relevant_hits=None if hits is None else hits[relevant.ravel()[hits]])


BLOCK_ENTRIES = 1 << 18
"""About how many codes _gains_by_row_sort sorts per block of rows: few enough to stay in the CPU caches."""

THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
"""Threads judge() works on: one per usable CPU (numpy releases the GIL while it sorts and scans)."""


def _gains_by_row_sort(run_doc_ids: np.ndarray, query: np.ndarray, doc: np.ndarray, relevance: np.ndarray,
                       pool: ThreadPoolExecutor) -> tuple[np.ndarray, np.ndarray] | None:
    """(gains, relevant_hits) as in Judged, found by sorting each run row together with its query's judgments.

    query, doc, relevance (n,): the judgments, grouped by query (Qrels.by_query). Works through blocks of
    rows on the pool's threads (see _judged_ranks); None where it does not apply: a query with more judgments
    than the run is deep (the packed rows would outgrow the run), doc ids too large to pack, or a row that ranks
    one doc twice.
    """
    n_queries, depth = run_doc_ids.shape
    per_query = np.bincount(query, minlength=n_queries)
    most = int(per_query.max(initial=0))
    if depth == 0 or most > depth:
        return None
    first = np.concatenate(([0], np.cumsum(per_query)))  # query q's judgments are first[q]:first[q + 1]
    gains = np.zeros((n_queries, depth))
    rows_per_block = max(1, BLOCK_ENTRIES // (most + depth))

    def judge_block(lo: int) -> np.ndarray | None:
        """Fill rows lo:lo + rows_per_block of gains; int64 flat indices of their positive gains, ascending."""
        hi = min(lo + rows_per_block, n_queries)
        judgments = slice(first[lo], first[hi])
        found = _judged_ranks(run_doc_ids[lo:hi], query[judgments] - lo, doc[judgments])
        if found is None:
            return None
        row, rank, judgment = found
        at, gain = row * depth + rank, np.maximum(relevance[judgments][judgment], 0.0)
        gains[lo:hi].ravel()[at] = gain
        return np.sort(at[gain > 0]) + lo * depth

    relevant_hits = list(pool.map(judge_block, range(0, n_queries, rows_per_block)))
    if any(hits is None for hits in relevant_hits):
        return None
    return gains, np.concatenate([np.empty(0, np.int64), *relevant_hits])


def _judged_ranks(run_doc_ids: np.ndarray, query: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """(row, rank index, judgment) int64 (h,) for every ranked doc that is judged, or None (see below).

    run_doc_ids int64 (n_rows, depth); query, doc int64 (n,): the judgments of these rows, grouped by row.
    Row q of an (n_rows, m + depth) matrix holds row q's judged docs (m = most judgments of one row; unused
    slots hold distinct negative docs), then its ranked docs, each packed as (doc << bits) | slot, where a slot < m
    is the judgment's place within its row and a slot >= m is m + the rank index. Once each row is sorted, a
    ranked doc that was judged sits right after its judgment. int32 codes when they fit, else int64; None when
    not even int64 holds them, or when a row ranks one doc twice.
    """
    n_rows, depth = run_doc_ids.shape
    per_row = np.bincount(query, minlength=n_rows)
    m = int(per_row.max(initial=0))
    width = m + depth
    bits = (width - 1).bit_length()
    low = min(int(run_doc_ids.min(initial=-1)), -1 - m)
    high = max(int(run_doc_ids.max(initial=-1)), int(doc.max(initial=-1)))
    fits = [dtype for dtype, value_bits in ((np.int32, 31), (np.int64, 63))
            if -(2 ** (value_bits - bits)) <= low and high < 2 ** (value_bits - bits)]
    if not fits:
        return None
    dtype = fits[0]

    start = np.cumsum(per_row) - per_row
    slot = np.arange(query.size) - start[query]
    slots = np.arange(width, dtype=dtype)
    codes = np.empty((n_rows, width), dtype)
    codes[:, :m] = ((-2 - slots[:m]) << bits) | slots[:m]
    codes.ravel()[query * width + slot] = (doc << bits) | slot
    np.left_shift(run_doc_ids, bits, out=codes[:, m:], casting="unsafe")  # in range: checked above
    codes[:, m:] |= slots[m:]
    codes.sort(axis=1)

    flat = codes.ravel()
    unsigned = np.dtype(dtype).str.replace("i", "u")
    left = np.flatnonzero((flat[1:] ^ flat[:-1]).view(unsigned) < (1 << bits))  # same doc as the next entry
    left = left[(left + 1) % width != 0]  # not the last entry of a row
    row, left_code, right_code = left // width, flat[left], flat[left + 1]
    left_slot = left_code & ((1 << bits) - 1)
    if np.any((left_slot >= m) & (right_code >= 0)):
        return None  # two ranks of one row hold the same doc
    # Judged docs are distinct within a query, so the entry after a judgment with the same doc is a rank.
    hit = (left_slot < m) & (right_code >= 0)
    row = row[hit]
    return row, (right_code[hit] & ((1 << bits) - 1)) - m, start[row] + left_slot[hit]


def _gains_by_search(run_doc_ids: np.ndarray, qrels: Qrels) -> np.ndarray:
    """gains float64 (n_queries, depth) by np.searchsorted of the keys q * stride + doc on the sorted qrel keys."""
    n_queries = run_doc_ids.shape[0]
    stride = max(qrels.n_docs, int(run_doc_ids.max(initial=-1)) + 1)
    judged_keys = pair_keys(qrels.query, qrels.doc, stride)
    order = np.argsort(judged_keys)
    # A sentinel above every real key keeps searchsorted's answer a valid index.
    sorted_keys = np.append(judged_keys[order], np.iinfo(np.int64).max)
    relevance = np.append(qrels.relevance[order], 0.0)
    keys = pair_keys(np.arange(n_queries)[:, None], run_doc_ids, stride)
    pos = np.searchsorted(sorted_keys, keys)
    found = (run_doc_ids >= 0) & (sorted_keys[pos] == keys)  # a -1 key could alias the previous row's last doc
    return np.where(found, np.maximum(relevance[pos], 0.0), 0.0)


@dataclass(frozen=True)
class Prefixes:
    """Per-query sums over the top k ranks for several cutoffs k at once: what every metric kernel reads.

    Row j of each (c, n_queries) array is cutoff ks[j] (see column).
    relevant int64 (c, n_queries): relevant docs (gain > 0) in the top k.
    dcg float64 (c, n_queries): sum over the top k ranks r of gain / log2(r + 1).
    ideal_dcg float64 (c, n_queries): the same over Judged.ideal_gains.
    precision_sum float64 (c, n_queries): sum over the relevant ranks r <= k of |relevant in top r| / r.
    first_relevant int64 (n_queries,): rank of the first relevant doc, 0 if none.
    n_relevant int64 (n_queries,): Judged.n_relevant.
    hit_query, hit_rank int64 (h,): query and rank (1-based) of each relevant doc in the run, by query then rank.
    """

    ks: tuple[int, ...]
    relevant: np.ndarray
    dcg: np.ndarray
    ideal_dcg: np.ndarray
    precision_sum: np.ndarray
    first_relevant: np.ndarray
    n_relevant: np.ndarray
    hit_query: np.ndarray
    hit_rank: np.ndarray

    def column(self, k: int) -> int:
        """The row of cutoff k in the (c, n_queries) arrays; ValueError if these prefixes were not built for k."""
        if k not in self.ks:
            raise ValueError(f"Prefixes hold cutoffs {self.ks}, not k={k}")
        return self.ks.index(k)


def prefixes(judged: Judged, ks: Sequence[int]) -> Prefixes:
    """Prefixes of the judged run at every cutoff in ks (ints >= 1), from its relevant hits only.

    A hit at rank index i counts for every cutoff k > i: a bincount by (first such cutoff, query), then a
    cumulative sum over the cutoffs in ascending order. The ideal DCG is summed the same way over the positive
    entries of Judged.ideal_gains. No BLAS: its threads stall on a busy machine.
    """
    n_queries, depth = judged.gains.shape
    ks = tuple(dict.fromkeys(int(k) for k in ks))
    cuts = np.array(sorted(ks), np.int64)
    ideal_width = judged.ideal_gains.shape[1]
    ranks = np.arange(max(depth, ideal_width))  # rank indices
    first_cut_above = np.searchsorted(cuts, ranks, side="right")
    discount = 1.0 / np.log2(ranks + 2)

    def bucket(query: np.ndarray, index: np.ndarray) -> np.ndarray:
        """int64 (h,): (first cutoff above the rank index) * n_queries + query of each hit."""
        return first_cut_above[index] * n_queries + query

    def in_top(buckets: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """(c, n_queries), rows in ks order: per-query sums of weights (None: 1) over the hits in the top k."""
        summed = np.bincount(buckets, weights, (cuts.size + 1) * n_queries).reshape(cuts.size + 1, n_queries)
        for i in range(1, cuts.size):  # cumulative over the cutoffs; one vector add per cutoff
            summed[i] += summed[i - 1]
        return summed[np.searchsorted(cuts, ks)]

    flat = judged.relevant_hits if judged.relevant_hits is not None else np.flatnonzero(judged.gains > 0)
    query, index = np.divmod(flat, depth)
    per_query = np.bincount(query, minlength=n_queries)
    start = np.cumsum(per_query) - per_query
    first_relevant = np.zeros(n_queries, np.int64)
    first_relevant[per_query > 0] = index[start[per_query > 0]] + 1
    hits = bucket(query, index)
    ideal_flat = np.flatnonzero(judged.ideal_gains > 0)
    ideal_query, ideal_index = np.divmod(ideal_flat, ideal_width)
    ideal_weights = judged.ideal_gains.ravel()[ideal_flat] * discount[ideal_index]
    return Prefixes(
        ks=ks,
        relevant=in_top(hits, None),
        dcg=in_top(hits, judged.gains.ravel()[flat] * discount[index]),
        ideal_dcg=in_top(bucket(ideal_query, ideal_index), ideal_weights),
        precision_sum=in_top(hits, (np.arange(flat.size) - start[query] + 1) / (index + 1)),
        first_relevant=first_relevant,
        n_relevant=np.asarray(judged.n_relevant, np.int64),
        hit_query=query,
        hit_rank=index + 1,
    )


def as_prefixes(source: Judged | Prefixes, k: int) -> Prefixes:
    """source itself if it is a Prefixes, else prefixes(source, [k])."""
    return source if isinstance(source, Prefixes) else prefixes(source, [k])


def divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """float64 (n,): numerator (>= 0) / denominator, 0 where denominator <= 0 (queries without relevant docs)."""
    return numerator / np.where(denominator > 0, denominator, np.inf)
