"""A run seen through the qrels (Judged), and the per-query prefix sums every metric kernel reads (Prefixes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalfast.qrels import Qrels, pair_keys
from evalfast.run import pack_rows


@dataclass(frozen=True)
class Judged:
    """A run seen through the qrels: what each metric kernel needs.

    gains float64 (n_queries, depth): relevance of the doc at each rank; 0 where the doc is unjudged, judged
        with relevance <= 0, or no hit (-1).
    n_relevant int64 (n_queries,): judged docs with relevance > 0.
    ideal_gains float64 (n_queries, m): each query's positive relevances sorted descending, zero padded;
        m = max(max n_relevant, 1).
    """

    gains: np.ndarray
    n_relevant: np.ndarray
    ideal_gains: np.ndarray


def judge(run_doc_ids: np.ndarray, qrels: Qrels) -> Judged:
    """Look up every ranked doc in the qrels at once.

    run_doc_ids int64 (n_queries, depth), -1 = no hit. Row i is query i, so n_queries >= qrels.n_queries (rows
    past qrels.n_queries have no judgments); doc ids may reach past qrels.n_docs (docs nobody judged).
    """
    run_doc_ids = np.asarray(run_doc_ids, np.int64)
    n_queries = run_doc_ids.shape[0]
    if n_queries < qrels.n_queries:
        raise ValueError(f"judge: run has {n_queries} query rows, qrels has {qrels.n_queries} queries")
    by_query = np.argsort(qrels.query, kind="stable")
    gains = _gains_by_row_sort(run_doc_ids, qrels, by_query)
    if gains is None:
        gains = _gains_by_search(run_doc_ids, qrels)
    return Judged(
        gains=gains,
        n_relevant=np.pad(qrels.relevant_counts(), (0, n_queries - qrels.n_queries)),
        ideal_gains=_ideal_gains(qrels, by_query, n_queries),
    )


def _gains_by_row_sort(run_doc_ids: np.ndarray, qrels: Qrels, by_query: np.ndarray) -> np.ndarray | None:
    """gains float64 (n_queries, depth) found by sorting each run row together with its query's judgments.

    Row q of an (n_queries, m + depth) matrix holds query q's judged docs (m = most judgments of one query; unused
    slots hold distinct negative docs), then its ranked docs, each packed as (doc << bits) | slot, where a slot < m
    is the judgment's place in by_query order and a slot >= m is m + the rank index. Once each row is sorted, a
    ranked doc that was judged sits right after its judgment. int32 codes when they fit, else int64.

    None where this does not apply: a query with more judgments than the run is deep (the matrix would outgrow
    the run), doc ids too large to pack, or a row that ranks one doc twice.
    """
    n_queries, depth = run_doc_ids.shape
    query = qrels.query[by_query]
    per_query = np.bincount(query, minlength=n_queries)
    m = int(per_query.max(initial=0))
    if m > depth or depth == 0:
        return None
    width = m + depth
    bits = (width - 1).bit_length()
    low = min(int(run_doc_ids.min(initial=-1)), -1 - m)
    high = max(int(run_doc_ids.max(initial=-1)), int(qrels.doc.max(initial=-1)))
    dtype = next((t for t in (np.int32, np.int64) if -(2 ** (np.iinfo(t).bits - 1 - bits)) <= low
                  and high < 2 ** (np.iinfo(t).bits - 1 - bits)), None)
    if dtype is None:
        return None

    start = np.cumsum(per_query) - per_query
    slot = np.arange(query.size) - start[query]
    slots = np.arange(width, dtype=dtype)
    codes = np.empty((n_queries, width), dtype)
    codes[:, :m] = ((-2 - slots[:m]) << bits) | slots[:m]
    codes.ravel()[query * width + slot] = (qrels.doc[by_query] << bits) | slot
    np.left_shift(run_doc_ids, bits, out=codes[:, m:], casting="unsafe")  # in range: checked above
    codes[:, m:] |= slots[m:]
    codes.sort(axis=1)

    unsigned = np.dtype(dtype).str.replace("i", "u")
    same_doc = np.flatnonzero((codes[:, 1:] ^ codes[:, :-1]).view(unsigned) < (1 << bits))
    row = same_doc // (width - 1)
    left = codes.ravel()[same_doc + row]
    right = codes.ravel()[same_doc + row + 1]
    left_slot = left & ((1 << bits) - 1)
    if np.any((left_slot >= m) & (right >= 0)):
        return None  # two ranks of one row hold the same doc
    # Judged docs are distinct within a query, so the entry after a judgment with the same doc is a rank.
    hit = (left_slot < m) & (right >= 0)
    row, judgment, rank = row[hit], by_query[start[row[hit]] + left_slot[hit]], (right[hit] & ((1 << bits) - 1)) - m
    gains = np.zeros((n_queries, depth))
    gains.ravel()[row * depth + rank] = np.maximum(qrels.relevance[judgment], 0.0)
    return gains


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


def _ideal_gains(qrels: Qrels, by_query: np.ndarray, n_queries: int) -> np.ndarray:
    """float64 (n_queries, max(max n_relevant, 1)): each query's positive relevances, descending, zero padded.

    by_query int64 (n,): a stable order of the judgments by query.
    """
    gain = qrels.relevance[by_query]
    positive = gain > 0
    # Sorting the negated gains ascending puts the largest first and the 0.0 padding last.
    return -np.sort(-pack_rows(qrels.query[by_query][positive], gain[positive], n_queries, 0.0, min_width=1), axis=1)


@dataclass(frozen=True)
class Prefixes:
    """Per-query sums over the top k ranks for several cutoffs k at once: what every metric kernel reads.

    ks tuple (c,): the cutoffs, one column each (see column).
    relevant int64 (n_queries, c): relevant docs (gain > 0) in the top k.
    dcg float64 (n_queries, c): sum over the top k ranks r of gain / log2(r + 1).
    ideal_dcg float64 (n_queries, c): the same over Judged.ideal_gains.
    precision_sum float64 (n_queries, c): sum over the relevant ranks r <= k of |relevant in top r| / r.
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
        """The column of cutoff k; ValueError if these prefixes were not built for k."""
        if k not in self.ks:
            raise ValueError(f"Prefixes hold cutoffs {self.ks}, not k={k}")
        return self.ks.index(k)


def prefixes(judged: Judged, ks: Sequence[int]) -> Prefixes:
    """Prefixes of the judged run at every cutoff in ks (ints >= 1), from its relevant hits only.

    Each hit adds to every cutoff k > its rank index: a 2-D bincount by (query, first such cutoff), then a
    cumulative sum across cutoffs.
    """
    n_queries, depth = judged.gains.shape
    ks = tuple(int(k) for k in dict.fromkeys(ks))
    flat = np.flatnonzero(judged.gains > 0)
    query, index = np.divmod(flat, depth)
    per_query = np.bincount(query, minlength=n_queries)
    start = np.cumsum(per_query) - per_query
    rank_among_relevant = np.arange(flat.size) - start[query] + 1

    cuts = np.array(sorted(ks), np.int64)
    bucket = query * (cuts.size + 1) + np.searchsorted(cuts, index, side="right")

    def in_top(weights: np.ndarray | None) -> np.ndarray:
        """(n_queries, c) in ks order: per-query sums of weights over the hits in the top k."""
        binned = np.bincount(bucket, weights, minlength=n_queries * (cuts.size + 1)).reshape(n_queries, -1)
        return np.cumsum(binned, axis=1)[:, np.searchsorted(cuts, ks)]

    ideal_width = judged.ideal_gains.shape[1]
    ideal_discount = (np.arange(ideal_width)[:, None] < np.array(ks)) / np.log2(np.arange(2, ideal_width + 2))[:, None]
    first_relevant = np.zeros(n_queries, np.int64)
    first_relevant[per_query > 0] = index[start[per_query > 0]] + 1
    return Prefixes(
        ks=ks,
        relevant=in_top(None).astype(np.int64),
        dcg=in_top(judged.gains.ravel()[flat] / np.log2(index + 2)),
        ideal_dcg=judged.ideal_gains @ ideal_discount,
        precision_sum=in_top(rank_among_relevant / (index + 1)),
        first_relevant=first_relevant,
        n_relevant=np.asarray(judged.n_relevant, np.int64),
        hit_query=query,
        hit_rank=index + 1,
    )


def as_prefixes(source: Judged | Prefixes, k: int) -> Prefixes:
    """source itself if it is a Prefixes, else prefixes(source, [k])."""
    return source if isinstance(source, Prefixes) else prefixes(source, [k])


def divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """float64 (n,): numerator / denominator, 0 where denominator <= 0 (queries without relevant docs)."""
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator)), where=denominator > 0)
